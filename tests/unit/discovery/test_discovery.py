"""Live discovery sources: parsers on hostile bytes; each source against the lab's real
responders (gmediarender's SSDP, python-zeroconf's mDNS, the kernel's ARP) is in
tests/lab/test_discovery_lab.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotrate.discovery.http import title_of
from iotrate.discovery.ssdp import SsdpError, location_allowed, parse_message


def test_parse_ssdp_answer() -> None:
    start, headers = parse_message(
        b"HTTP/1.1 200 OK\r\nLOCATION: http://10.0.0.5:49152/d.xml\r\n"
        b"server: Linux UPnP/1.0\r\n\r\n"
    )
    assert start == "HTTP/1.1 200 OK"
    assert headers["LOCATION"] == "http://10.0.0.5:49152/d.xml"
    assert headers["SERVER"] == "Linux UPnP/1.0"


def test_absurd_headers_are_capped() -> None:
    data = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 5000) for i in range(500))
    _, headers = parse_message(data)
    assert len(headers) <= 64
    assert all(len(v) <= 1024 for v in headers.values())


@given(st.binary(max_size=4096))
def test_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SsdpError:
        pass


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ("http://10.0.0.5:49152/d.xml", True),
        ("https://10.0.0.5/d.xml", True),
        ("http://10.0.0.6/d.xml", False),  # another host
        ("http://127.0.0.1:8080/", False),  # the scanner's own loopback
        ("file:///etc/passwd", False),
        ("http://router.local/d.xml", False),  # names could resolve anywhere
        ("http://10.0.0.5:99999/", False),
        ("gopher://10.0.0.5/", False),
        ("http://[::1]/", False),
    ],
)
def test_location_only_from_the_sender(location: str, ok: bool) -> None:
    assert location_allowed(location, "10.0.0.5") is ok


def test_title_is_printable_and_bounded() -> None:
    assert title_of(b"<html><TITLE>Web\x1b[2J UI</TITLE>") == "Web\\x1b[2J UI"
    assert title_of(b"no title") is None
    assert len(title_of(b"<title>" + b"x" * 10000 + b"</title>") or "") <= 201


def test_probe_evidence_feeds_identification() -> None:
    """A device that announces nothing is still named by what its probes read."""
    from iotrate.discovery.observe import identify_device, probe_observations
    from iotrate.identify.observations import MacObservation
    from iotrate.models import Device, Evidence, Finding, Severity

    def finding(check: str, port: int, data: dict[str, Any]) -> Finding:
        ev = Evidence(summary=check, port=port, data=data)
        return Finding(check=check, severity=Severity.INFO, title=check, evidence=[ev])

    hub = Device(
        id="h",
        address="10.0.0.13",
        findings=[
            finding("svc.snmp.readable", 161, {"sysDescr": "Tuya Zigbee Gateway TYGWZ-01 Linux"}),
            finding("tls.summary", 443, {"certificate": {"subject": "O=Tuya Smart,CN=gw"}}),
        ],
    )
    plug = Device(
        id="p",
        address="10.0.0.15",
        findings=[finding("tls.summary", 443, {"certificate": {"subject": "CN=tapo-p110"}})],
    )
    assert [o.protocol for o in probe_observations(hub)] == ["snmp", "x509"]  # type: ignore[union-attr]
    mac = MacObservation(device="10.0.0.15", kind="mac", mac="54:a7:03:9d:e6:21")
    named = identify_device(plug, [mac, *probe_observations(plug)])
    assert (named.category, named.vendor) == ("plug", "TP-Link")
    assert identify_device(hub, probe_observations(hub)).category == "hub"


def test_stalling_descriptions_cost_one_deadline_not_one_per_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the hostile lab: descriptions were fetched device after device, so N devices
    whose description never ends cost N fetch deadlines."""
    import asyncio
    import time

    from iotrate.discovery import ssdp

    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<root>")
        await writer.drain()
        await asyncio.sleep(30)

    async def main() -> tuple[float, list[Any]]:
        servers = [await asyncio.start_server(stall, a, 0) for a in addresses]
        found = {}
        for a, server in zip(addresses, servers, strict=True):
            port = server.sockets[0].getsockname()[1]
            loc = f"http://{a}:{port}/d.xml"
            found[a] = ssdp.SsdpFound(a, [{"LOCATION": loc}], [loc])

        async def fake_search(*args: Any, **kwargs: Any) -> dict[str, ssdp.SsdpFound]:
            return found

        monkeypatch.setattr(ssdp, "search", fake_search)
        t0 = time.monotonic()
        obs = await ssdp.discover(addresses, listen=0)
        elapsed = time.monotonic() - t0
        for server in servers:
            server.close()
        return elapsed, obs

    elapsed, obs = asyncio.run(main())
    assert [o.device for o in obs] == addresses
    assert all(o.description_xml is None for o in obs)
    assert elapsed < 3.0 * 1.8, elapsed  # one 3 s deadline, not three
