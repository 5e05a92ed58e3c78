"""Discovery's connect scan against real servers on 127.0.0.1, and its parsers on bytes.

Loopback servers stand in for the lab here (the lab tests run the real daemons); they let these
tests run without root and cover hostile behaviour: tarpits, floods, escape sequences."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from iotrate.probes.base import Probe, ProbeContext

from iotrate.discovery.portscan import (
    PortSpec,
    ScanLimits,
    banner_text,
    classify,
    iot_ports,
    port_specs,
    scan_hosts,
)
from iotrate.models import Transport
from iotrate.net import printable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = ScanLimits(connect_timeout=0.5, banner_timeout=0.5, udp_timeout=0.3)


async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


async def scan_ports(*ports: int) -> list:  # type: ignore[type-arg]
    specs = port_specs(",".join(str(p) for p in ports))
    (host,) = await scan_hosts(["127.0.0.1"], specs, FAST)
    return host.services


def test_curated_list_is_sane() -> None:
    ports = iot_ports()
    keys = [(p.port, p.transport) for p in ports]
    assert len(keys) == len(set(keys))
    for must in [
        (23, Transport.TCP),
        (1883, Transport.TCP),
        (5555, Transport.TCP),
        (161, Transport.UDP),
    ]:
        assert must in keys
    assert any(p.discovery for p in ports)


def test_every_curated_port_says_who_uses_it_and_where_that_is_documented() -> None:
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("iotrate").joinpath("data/ports.yaml").read_text())
    assert len(raw) == len(iot_ports())
    for entry in raw:
        assert entry["why"] and str(entry["source"]).startswith("https://"), entry
    # the platforms' documented local APIs are in: cast, AirPlay, RTSP, Roku, Android TV
    keys = {(p.port, p.transport) for p in iot_ports()}
    for port in (554, 7000, 8008, 8009, 8060, 8554, 6466, 8123):
        assert (port, Transport.TCP) in keys, port


def test_port_selection_parsing() -> None:
    assert [p.port for p in port_specs("22,80-82")] == [22, 80, 81, 82]
    assert port_specs("U:161")[0].transport is Transport.UDP
    assert len(port_specs("all")) > 65535
    for bad in ("0", "70000", "a-b", "U:9"):
        with pytest.raises(ValueError):
            port_specs(bad)


def test_classify_and_banners() -> None:
    assert classify(b"SSH-2.0-dropbear_2022.83\r\n") == "ssh"
    kexinit = b"SSH-2.0-dropbear_2022.83\r\n\x00\x00\x01\xfc\x07\x14_curve25519-sha256"
    assert banner_text(kexinit, "ssh") == "SSH-2.0-dropbear_2022.83"
    assert classify(b"\xff\xfd\x01\xff\xfd\x1f") == "telnet"
    assert classify(b"220 (vsFTPd 3.0.3)\r\n") == "ftp"
    assert classify(b"RTSP/1.0 200 OK\r\n") == "rtsp"
    assert classify(b"") is None
    assert banner_text(
        b"HTTP/1.1 401 Unauthorized\r\nServer: lighttpd/1.4.35\r\nX: y\r\n\r\n", "http"
    ) == ("HTTP/1.1 401 Unauthorized | Server: lighttpd/1.4.35")
    assert banner_text(b"\xff\xfb\x01\xff\xfb\x03fridge login: ", "telnet") == "fridge login:"


def test_printable_neutralises_escapes() -> None:
    assert printable(b"\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert printable("a\u202eb") == "a\\x202eb"
    assert len(printable(b"x" * 10_000)) <= 257


@given(st.binary(max_size=2048))
def test_parsers_never_raise(data: bytes) -> None:
    classify(data)
    out = banner_text(data, classify(data))
    if out is not None:
        assert "\x1b" not in out and "\x00" not in out


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 200 OK\r\nServer: GoAhead-Webs\r\n\r\n")
    await writer.drain()
    writer.close()


async def _ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-dropbear_2019.78\r\n")
    await writer.drain()
    await asyncio.sleep(2)
    writer.close()


async def _tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(2000):
            writer.write(b"\x1b]0;pwned\x07<script>" * 100)
            await writer.drain()
    except OSError:
        pass


@pytest.fixture
def cert(tmp_path: Path) -> ssl.SSLContext:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=t",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(tmp_path / "c.pem"),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return ctx


def test_scan_real_loopback_servers(cert: ssl.SSLContext) -> None:
    async def main() -> None:
        servers = [
            await serve(_http),
            await serve(_ssh),
            await serve(_tarpit),
            await serve(_flood),
            await serve(_http, tls=cert),
        ]
        ports = [p for _, p in servers]
        t0 = time.monotonic()
        services = {s.port: s for s in await scan_ports(*ports)}
        elapsed = time.monotonic() - t0
        for s, _ in servers:
            s.close()
        http, ssh, tarpit, flood, https = (services.get(p) for p in ports)
        assert http and http.protocol == "http" and http.banner and "GoAhead-Webs" in http.banner
        assert http.tls is False
        assert ssh and ssh.protocol == "ssh" and ssh.banner == "SSH-2.0-dropbear_2019.78"
        assert tarpit is not None and tarpit.banner is None  # open, silent, cost only timeouts
        assert flood and flood.banner and "\x1b" not in flood.banner and len(flood.banner) < 300
        assert https and https.tls is True and https.protocol == "https"
        # Every wait is bounded: the tarpit costs a few timeouts, not its 30 s.
        assert elapsed < 5

    asyncio.run(main())


def test_closed_ports_are_not_listed_but_host_is_alive() -> None:
    async def main() -> None:
        server, port = await serve(_http)
        server.close()
        await server.wait_closed()
        (host,) = await scan_hosts(["127.0.0.1"], port_specs(str(port)), FAST)
        assert host.alive and host.services == []

    asyncio.run(main())


async def _reset_mid_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(5)
    writer.write(b"\x16\x03\x03\x00\x4a\x02\x00")  # half a ServerHello, then RST
    writer.transport.abort()


def test_a_tls_port_that_fails_its_handshake_stays_unknown_and_gets_the_tls_probes() -> None:
    """Found by the hostile lab: a reset or stalled handshake on 443 was reported as tls=False,
    so the TLS probes skipped the port as "not applicable" and its checks went untested."""
    from iotrate.probes.tls.probes import TlsProbe

    from iotrate.models import Device

    async def main() -> list:  # type: ignore[type-arg]
        found = []
        for handler in (_reset_mid_handshake, _tarpit):
            server, port = await serve(handler)
            spec = PortSpec(port, Transport.TCP, "https", "tls")
            (host,) = await scan_hosts(["127.0.0.1"], (spec,), FAST)
            server.close()
            found += host.services
        return found

    services = asyncio.run(main())
    assert len(services) == 2
    dev = Device(id="d", address="127.0.0.1")
    for svc in services:
        assert svc.protocol == "https" and svc.tls is None, svc
        assert TlsProbe().applies(dev, svc)


class AnyPort(Probe):
    id = "t.any"
    title = "any TCP service"

    def applies(self, device: Any, service: Any) -> bool:
        return service is not None

    async def run(self, ctx: ProbeContext) -> list[Any]:
        return []


def test_ports_a_device_announces_are_scanned_even_off_the_list() -> None:
    """mDNS SRV ports and UPnP URL ports join the sweep's list before probing."""
    from iotrate import scan as scan_mod
    from iotrate.discovery.observe import announced_ports
    from iotrate.discovery.portscan import announced_specs
    from iotrate.identify.observations import MdnsObservation, SsdpObservation
    from iotrate.models import Device
    from iotrate.probing import ProbeRunner
    from iotrate.targets import resolve_targets

    desc = "<root><URLBase>http://10.0.0.5:49153/</URLBase><presentationURL>/</presentationURL>"
    ssdp = SsdpObservation(device="10.0.0.5", kind="ssdp", description_xml=desc + "</root>",
                           headers={"LOCATION": "http://10.0.0.5:1400/xml/device.xml"})  # fmt: skip
    mdns = MdnsObservation(device="10.0.0.5", kind="mdns", service_type="_hap._tcp", port=51827)
    assert announced_ports([ssdp, mdns]) == {1400, 49153, 51827}
    assert [s.port for s in announced_specs({22, 51827}, port_specs("22,80"))] == [51827]

    async def go() -> Device:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        class Shared:
            async def for_host(self, address: str) -> list[MdnsObservation]:
                return [MdnsObservation(device=address, kind="mdns", port=port)]

        run = scan_mod.ScanRun(resolve_targets(["127.0.0.1"]), scan_mod.ScanOptions(ports="22"))
        run.shared = Shared()  # type: ignore[assignment]
        async with server:
            dev = Device(id="d", address="127.0.0.1")
            return await run._announced(dev, ProbeRunner([AnyPort]))

    dev = asyncio.run(go())
    assert len(dev.services) == 1 and dev.services[0].port not in (22,)
    # ... and probed: the new service's probe ran, device-level probes did not run again
    assert [(o.probe, o.port) for o in dev.outcomes] == [("t.any", dev.services[0].port)]


def test_the_sweep_pacer_backs_off_on_drops_and_slow_answers_and_speeds_up_otherwise() -> None:
    from iotrate.discovery.portscan import SweepPacer

    pacer = SweepPacer(ceiling=2000.0, window=100, connect_timeout=1.0)
    assert pacer.rate == 500.0
    for _ in range(100):  # prompt answers: faster, by half
        pacer.record(0.002, answered=True)
    assert pacer.rate == 750.0
    for _ in range(1000):
        pacer.record(0.002, answered=True)
    assert pacer.rate == 2000.0  # never above the ceiling
    for i in range(100):  # 5 % dropped (SYN flood defence): halve
        pacer.record(1.0 if i % 20 == 0 else 0.002, answered=i % 20 != 0)
    assert pacer.rate == 1000.0
    for _ in range(100):  # answers forty times slower than at first (and > 50 ms): halve
        pacer.record(0.08, answered=True)
    assert pacer.rate == 500.0
    for _ in range(2000):
        pacer.record(1.0, answered=False)
    assert pacer.rate == pacer.floor  # a device that stops answering gets the floor


def test_a_lab_sweep_is_paced_per_host_and_reports_progress() -> None:
    from dataclasses import replace

    from iotrate.ratelimit import limiting

    seen: list[tuple[int, int, float]] = []
    limits = replace(
        FAST,
        adaptive_rate=4000.0,
        progress=lambda h, done, total, left: seen.append((done, total, left)),
    )
    specs = port_specs("20000-21100")

    async def go() -> None:
        with limiting(100.0) as limiter:
            await scan_hosts(["127.0.0.1"], specs, limits, assume_alive={"127.0.0.1"})
            assert "127.0.0.1" not in limiter._host_interval  # back to the scan's rate

    asyncio.run(go())
    assert seen and seen[-1][:2] == (len(specs), len(specs)) and seen[-1][2] == 0
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    # below the sweep size nothing is paced and nothing reported
    seen.clear()
    asyncio.run(scan_hosts(["127.0.0.1"], port_specs("20000-20010"), limits))
    assert seen == []


def test_a_host_rate_overrides_the_scans_rate_and_is_restored() -> None:
    from iotrate.ratelimit import HostRateLimiter

    now = [0.0]
    limiter = HostRateLimiter(0, clock=lambda: now[0])  # no limit for the scan
    assert limiter.reserve("a") == limiter.reserve("a") == 0.0
    limiter.set_host_rate("a", 10.0)
    assert limiter.reserve("a") == 0.0 and limiter.reserve("a") == pytest.approx(0.1)
    assert limiter.reserve("b") == 0.0 and limiter.reserve("b") == 0.0
    limiter.set_host_rate("a", None)
    now[0] = 5.0
    assert limiter.reserve("a") == 0.0 and limiter.reserve("a") == 0.0


def test_a_fast_host_rate_is_granted_in_10_ms_slots() -> None:
    """Sleeps cannot space connections half a millisecond apart, so a fast paced host gets
    rate/100 connections per 10 ms: no second ever sees more than the rate."""
    from iotrate.ratelimit import HostRateLimiter

    now = [0.0]
    limiter = HostRateLimiter(100, clock=lambda: now[0])
    limiter.set_host_rate("a", 1000.0)
    assert [limiter.reserve("a") for _ in range(10)] == [0.0] * 10
    assert limiter.reserve("a") == pytest.approx(0.01, abs=1e-3)
    granted = 10
    while now[0] < 1.0 - 1e-9:
        now[0] = round(now[0] + 0.001, 6)
        granted += sum(1 for _ in range(20) if limiter.grant("a") == 0.0)
    assert granted <= 1000 + 10
