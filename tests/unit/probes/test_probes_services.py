"""Exposed-service probes against scripted loopback servers (the answer that is a finding,
the answer that is not, garbage, silence); the real daemons:
tests/lab/test_probes_services_lab.py."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import pytest
from iotrate.probes import adb, coap, ftp, http, modbus, mqtt, rtsp, smb, snmp, telnet, upnp
from iotrate.probes._clients import snmp as snmp_client
from iotrate.probes.base import Policy, Probe
from support.probes import (
    Fake,
    ftp_server,
    garbage,
    http_response,
    http_server,
    mqtt_broker,
    rtsp_server,
    silent,
    snmp_agent,
    tarpit,
    tcp_fake,
    telnet_server,
    udp_fake,
)
from support.probes import device as make_device

from iotrate.models import Device, OutcomeStatus, ProbeOutcome
from iotrate.probing import ProbeRunner, RunnerOptions

ADB_BANNER = b"device::ro.product.name=P8M;ro.product.model=55P8;features=shell_v2\0"


def run(probe: type[Probe], *services: tuple[int, str, str | None], **opts: Any) -> Device:
    async def go() -> Device:
        (d,) = await ProbeRunner([probe], RunnerOptions(**opts)).run([make_device(*services)])
        return d

    return asyncio.run(go())


async def arun(probe: type[Probe], *services: tuple[int, str, str | None], **opts: Any) -> Device:
    (d,) = await ProbeRunner([probe], RunnerOptions(**opts)).run([make_device(*services)])
    return d


def only(d: Device) -> ProbeOutcome:
    (o,) = [o for o in d.outcomes if o.port]
    return o


def checks(d: Device) -> list[str]:
    return sorted(f.check for f in d.findings)


# ---------------------------------------------------------------------------- telnet


class Telnet(telnet.TelnetExposed):
    listen_s = 0.3


def test_telnet_login_prompt_and_shell_without_login() -> None:
    async def go(handler: Any) -> tuple[Device, Fake]:
        async with tcp_fake(handler) as srv:
            return await arun(Telnet, (srv.port, "tcp", "telnet")), srv

    d, srv = asyncio.run(go(telnet_server(("root", "admin"))))
    (f,) = d.findings
    assert f.check == "svc.telnet" and f.evidence[0].data["login_prompt"] is True
    assert srv.logins == []  # passive: read the prompt, typed nothing
    d, _ = asyncio.run(go(telnet_server(None, shell_without_login=True)))
    assert checks(d) == ["auth.none.admin", "svc.telnet"]
    shell = next(f for f in d.findings if f.check == "auth.none.admin")
    assert shell.evidence[0].data["shell"] is True


def test_telnet_silence_fails_and_other_protocol_is_not_applicable() -> None:
    async def go(handler: Any) -> Device:
        async with tcp_fake(handler) as srv:
            return await arun(Telnet, (srv.port, "tcp", "telnet"))

    start = time.monotonic()
    assert only(asyncio.run(go(tarpit))).status is OutcomeStatus.FAILED
    assert time.monotonic() - start < 1.5
    ssh = asyncio.run(go(garbage(b"SSH-2.0-dropbear\r\n")))
    assert only(ssh).status is OutcomeStatus.NOT_APPLICABLE


# -------------------------------------------------------------------------------- FTP


def test_ftp_greeting_and_auth_tls() -> None:
    async def go() -> tuple[Device, Fake]:
        async with tcp_fake(ftp_server(None)) as srv:
            return await arun(ftp.FtpExposed, (srv.port, "tcp", "ftp")), srv

    d, srv = asyncio.run(go())
    (f,) = d.findings
    assert f.check == "svc.ftp" and f.evidence[0].data["auth_tls"] is True
    assert srv.logins == [] and b"FEAT" in srv.seen


# -------------------------------------------------------------------------------- ADB


def adb_device(reply_command: int) -> Any:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        head = await r.readexactly(24)
        length = struct.unpack("<6I", head)[3]
        fake.seen.append(await r.readexactly(length))
        payload = ADB_BANNER if reply_command == adb.A_CNXN else b"\x01" * 20
        w.write(adb.adb_message(reply_command, 0x01000000, 4096, payload))
        await w.drain()
        await asyncio.sleep(5)

    return handler


@pytest.mark.parametrize(
    ("handler", "status", "found"),
    [
        (adb_device(adb.A_CNXN), OutcomeStatus.RAN, ["svc.adb.unauthenticated"]),
        (adb_device(adb.A_AUTH), OutcomeStatus.RAN, []),
        (
            garbage(b"HTTP/1.0 400 Bad Request\r\n\r\n" + b"x" * 40),
            OutcomeStatus.NOT_APPLICABLE,
            [],
        ),
        (tarpit, OutcomeStatus.FAILED, []),
    ],
)
def test_adb_handshake(handler: Any, status: OutcomeStatus, found: list[str]) -> None:
    class Adb(adb.AdbUnauthenticated):
        timeout = 1.0

    async def go() -> Device:
        async with tcp_fake(handler) as srv:
            return await arun(Adb, (srv.port, "tcp", "adb"))

    d = asyncio.run(go())
    assert only(d).status is status and checks(d) == found
    if found:
        data = d.findings[0].evidence[0].data
        assert data["model"] == "55P8" and data["banner"].startswith("device::")


# ------------------------------------------------------------------------------- SNMP


class Snmp(snmp.SnmpReadable):
    timeout = 3.0  # 0.75 s steps (pysnmp's timer ticks every 0.5 s): answers come at once


class SnmpWrite(snmp.SnmpWritable):
    timeout = 3.0


def test_snmp_public_readable() -> None:
    async def go() -> tuple[Device, Fake]:
        async with udp_fake(snmp_agent({"public"})) as agent:
            return await arun(Snmp, (agent.port, "udp", "snmp")), agent

    d, agent = asyncio.run(go())
    (f,) = d.findings
    assert f.evidence[0].data == {
        "community": "public",
        "version": "2c",
        "sysDescr": "Fake agent",
        "sysName": "x",
    }
    assert agent.logins == [("get", "public")]


def test_snmp_silence_to_public_is_tested_and_not_readable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Agents drop a wrong community without a word; silence to v2c and v1 means 'not
    readable with public' (the agent answered discovery's v3 hello, so it is there)."""
    asked: list[tuple[str, str]] = []

    async def no_answer(host: str, port: int, community: str, oids: Any, timeout: float,
                        version: str = "2c") -> None:  # fmt: skip
        asked.append((community, version))

    monkeypatch.setattr(snmp_client, "get", no_answer)
    d = run(Snmp, (161, "udp", "snmp"))
    assert d.findings == [] and only(d).status is OutcomeStatus.RAN
    assert asked == [("public", "2c"), ("public", "1")]


def test_snmp_writable_only_with_intrusive_and_written_back_unchanged() -> None:
    async def go(write: set[str], policy: Policy) -> tuple[Device, Fake]:
        async with udp_fake(snmp_agent({"public"}, write)) as agent:
            d = await arun(SnmpWrite, (agent.port, "udp", "snmp"), policy=policy)
            return d, agent

    d, agent = asyncio.run(go({"private"}, Policy.DEFAULT))
    assert only(d).status is OutcomeStatus.SKIPPED_BY_POLICY and agent.connections == 0
    d, agent = asyncio.run(go({"private"}, Policy.INTRUSIVE))
    (f,) = d.findings
    assert f.check == "svc.snmp.writable" and f.evidence[0].data["community"] == "private"
    assert ("set", "private") in agent.logins
    d, _ = asyncio.run(go(set(), Policy.INTRUSIVE))  # public reads, refuses the write
    assert d.findings == [] and only(d).status is OutcomeStatus.RAN


# ------------------------------------------------------------------------------- UPnP

IGD_XML = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>Fake Router</friendlyName>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<controlURL>/ctl/IPConn</controlURL></service></serviceList>
</device></root>"""


def upnp_http(fake_ok: bool = True) -> Any:
    def route(method: str, path: str, headers: dict[str, str], body: bytes, fake: Fake) -> bytes:
        if path == "/desc.xml":
            return http_response(200, IGD_XML.encode(), {"Content-Type": "text/xml"})
        if path == "/ctl/IPConn" and method == "POST":
            action = headers.get("soapaction", "").split("#")[-1].strip('"')
            fake.logins.append((action, ""))
            return http_response(200 if fake_ok else 500, b"<ok/>")
        return http_response(404)

    return http_server(route)


def ssdp_answer(location: str) -> Any:
    def answer(data: bytes, fake: Fake) -> list[bytes]:
        if not data.startswith(b"M-SEARCH"):
            return []
        return [f"HTTP/1.1 200 OK\r\nLOCATION: {location}\r\nST: upnp:rootdevice\r\n\r\n".encode()]

    return answer


class Upnp(upnp.UpnpControl):
    timeout = 2.5


class PortMap(upnp.UpnpPortMapping):
    timeout = 2.5


def test_upnp_igd_control_and_port_mapping_add_then_delete() -> None:
    async def go(probe: type[Probe], policy: Policy) -> tuple[Device, Fake]:
        async with tcp_fake(upnp_http()) as web:
            async with udp_fake(ssdp_answer(f"http://127.0.0.1:{web.port}/desc.xml")) as ssdp:
                d = await arun(probe, (ssdp.port, "udp", "ssdp"), policy=policy)
                return d, web

    d, web = asyncio.run(go(Upnp, Policy.DEFAULT))
    assert checks(d) == ["svc.upnp.igd-control"]
    assert web.logins == [("GetExternalIPAddress", "")]
    d, web = asyncio.run(go(PortMap, Policy.INTRUSIVE))
    (f,) = d.findings
    assert f.check == "svc.upnp.portmapping-accepted" and f.evidence[0].data["deleted"] is True
    assert [a for a, _ in web.logins] == ["AddPortMapping", "DeletePortMapping"]


def test_upnp_location_elsewhere_is_never_fetched() -> None:
    async def go() -> tuple[Device, Fake]:
        # The LOCATION names another address (127.0.0.2) where a server does listen.
        async with tcp_fake(upnp_http(), host="127.0.0.2") as other:
            async with udp_fake(ssdp_answer(f"http://127.0.0.2:{other.port}/desc.xml")) as ssdp:
                return await arun(Upnp, (ssdp.port, "udp", "ssdp")), other

    d, other = asyncio.run(go())
    assert only(d).status is OutcomeStatus.NOT_APPLICABLE and other.connections == 0


def test_upnp_silence_fails() -> None:
    async def go() -> Device:
        async with udp_fake(silent) as ssdp:
            return await arun(Upnp, (ssdp.port, "udp", "ssdp"))

    assert only(asyncio.run(go())).status is OutcomeStatus.FAILED


# ------------------------------------------------------------------------------- RTSP


@pytest.mark.parametrize(
    ("paths", "status", "found"),
    [
        ({"/live": "open"}, OutcomeStatus.RAN, ["svc.rtsp.unauthenticated"]),
        ({"/": "auth"}, OutcomeStatus.RAN, []),
        ({}, OutcomeStatus.FAILED, []),
    ],
)
def test_rtsp_open_protected_or_unknown(
    paths: dict[str, str], status: OutcomeStatus, found: list[str]
) -> None:
    async def go() -> Device:
        async with tcp_fake(rtsp_server(paths)) as srv:
            return await arun(rtsp.RtspUnauthenticated, (srv.port, "tcp", "rtsp"))

    d = asyncio.run(go())
    assert only(d).status is status and checks(d) == found
    if found:
        assert d.findings[0].evidence[0].data["path"] == "/live"
        assert d.findings[0].evidence[0].data["media"] == ["video"]


# ------------------------------------------------------------------------------- APIs


def test_cast_eureka_info_and_info_disclosure(monkeypatch: pytest.MonkeyPatch) -> None:
    eureka = {"name": "Kitchen", "build_version": "1.42", "mac_address": "F4:F5", "uptime": 3}

    def route(method: str, path: str, headers: dict[str, str], body: bytes, fake: Fake) -> bytes:
        if path == "/setup/eureka_info":
            return http_response(200, json.dumps(eureka).encode(),
                                 {"Content-Type": "application/json"})  # fmt: skip
        return http_response(404)

    async def go() -> Device:
        async with tcp_fake(http_server(route)) as srv:
            monkeypatch.setitem(http.LOCAL_APIS, srv.port, http.LOCAL_APIS[8008])

            class Api(http.LocalApiUnauthenticated):
                ports = frozenset({srv.port})

            return await arun(Api, (srv.port, "tcp", "http"))

    d = asyncio.run(go())
    assert checks(d) == ["svc.api.unauthenticated", "svc.info-disclosure"]
    api = next(f for f in d.findings if f.check == "svc.api.unauthenticated")
    assert api.evidence[0].data["path"] == "/setup/eureka_info"
    leak = next(f for f in d.findings if f.check == "svc.info-disclosure")
    assert leak.evidence[0].data["fields"] == ["build_version", "mac_address"]


# ----------------------------------------------------------------------------- admin UI


@pytest.mark.parametrize(
    ("reply", "found", "confidence"),
    [
        (http_response(401, b"", {"WWW-Authenticate": 'Basic realm="x"'}),
         ["svc.http.admin-cleartext"], "confirmed"),
        (http_response(200, b'<form action="/login"><input type="password" name="p"></form>',
                       {"Content-Type": "text/html"}), ["svc.http.admin-cleartext"], "confirmed"),
        (http_response(200, b"<title>Login</title><h1>Please log in</h1>",
                       {"Content-Type": "text/html"}), ["svc.http.admin-cleartext"], "probable"),
        (http_response(200, b'<form action="https://x/l"><input type="password"></form>',
                       {"Content-Type": "text/html"}), [], None),
        (http_response(200, b"<title>Wireless settings</title><form><label>SSID</label>"
                       b'<input name="ssid"><label>WPA2 key</label><input name="wpa">'
                       b'<label>DNS</label><input name="dns"><button>Save</button></form>',
                       {"Content-Type": "text/html"}), ["auth.none.admin"], "probable"),
        (http_response(200, b"<html><body>hello</body></html>", {"Content-Type": "text/html"}),
         [], None),
    ],
)  # fmt: skip
def test_admin_ui_over_plain_http(reply: bytes, found: list[str], confidence: str | None) -> None:
    async def go() -> Device:
        async with tcp_fake(http_server(lambda *a: reply)) as srv:
            return await arun(http.HttpAdmin, (srv.port, "tcp", "http"))

    d = asyncio.run(go())
    assert checks(d) == found
    if found:
        assert d.findings[0].confidence.value == confidence


def test_admin_ui_redirects_followed_only_on_the_device() -> None:
    async def go() -> tuple[Device, Fake, Device]:
        async with tcp_fake(http_server(lambda *a: http_response(200, b"x"))) as other:
            away = http_response(302, b"", {"Location": f"http://127.0.0.2:{other.port}/"})
            async with tcp_fake(http_server(lambda *a: away)) as srv:
                d1 = await arun(http.HttpAdmin, (srv.port, "tcp", "http"))
            to_tls = http_response(302, b"", {"Location": "https://127.0.0.1/"})
            async with tcp_fake(http_server(lambda *a: to_tls)) as srv:
                d2 = await arun(http.HttpAdmin, (srv.port, "tcp", "http"))
            return d1, other, d2

    d1, other, d2 = asyncio.run(go())
    assert other.connections == 0 and d1.findings == []
    assert d2.findings == [] and only(d2).status is OutcomeStatus.RAN


# --------------------------------------------------------------------- MQTT, CoAP, Modbus, SMB


def test_mqtt_cleartext_without_a_login() -> None:
    async def go(handler: Any) -> tuple[Device, Fake]:
        async with tcp_fake(handler) as srv:
            return await arun(mqtt.MqttCleartext, (srv.port, "tcp", "mqtt")), srv

    d, broker = asyncio.run(go(mqtt_broker(None, anonymous=True)))
    assert checks(d) == ["svc.mqtt.cleartext"] and broker.logins == []
    d, _ = asyncio.run(go(garbage(b"\x00\x00\x00\x00")))
    assert only(d).status is OutcomeStatus.NOT_APPLICABLE


def coap_answer(data: bytes, fake: Fake) -> list[bytes]:
    tkl = data[0] & 0x0F
    head = bytes([0x60 | tkl, 0x45]) + data[2:4] + data[4 : 4 + tkl]
    return [head + b"\xc1\x28\xff" + b'</sensors/temp>;rt="temp",</light>']


def test_coap_well_known_core() -> None:
    async def go(answer: Any) -> Device:
        async with udp_fake(answer) as srv:
            return await arun(coap.CoapOpen, (srv.port, "udp", "coap"), timeout_scale=0.15)

    d = asyncio.run(go(coap_answer))
    (f,) = d.findings
    assert f.evidence[0].data == {"code": "2.05", "resources": ["/sensors/temp", "/light"]}
    assert only(asyncio.run(go(silent))).status is OutcomeStatus.FAILED


def modbus_device(exception: bool) -> Any:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        head = await r.readexactly(7)
        tid, _p, length, unit = struct.unpack(">HHHB", head)
        await r.readexactly(length - 1)
        if exception:
            pdu = b"\xab\x01"
        else:
            objs = b"\x00\x04Acme" + b"\x01\x03M10" + b"\x02\x031.0"
            pdu = b"\x2b\x0e\x01\x01\x00\x00\x03" + objs
        w.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
        await w.drain()

    return handler


def test_modbus_identification_or_exception() -> None:
    async def go(handler: Any) -> Device:
        async with tcp_fake(handler) as srv:
            return await arun(modbus.ModbusOpen, (srv.port, "tcp", "modbus"))

    d = asyncio.run(go(modbus_device(False)))
    (f,) = d.findings
    assert f.evidence[0].data["vendor"] == "Acme" and f.evidence[0].data["revision"] == "1.0"
    assert checks(asyncio.run(go(modbus_device(True)))) == ["svc.modbus.open"]


def smb_server(dialect: bytes) -> Any:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, fake: Fake) -> None:
        head = await r.readexactly(4)
        fake.seen.append(await r.readexactly(int.from_bytes(head[1:], "big")))
        if dialect == b"close":
            return
        if dialect == b"smb2":
            body = b"\xfeSMB" + b"\x00" * 60
        else:
            body = b"\xffSMB\x72" + b"\x00" * 4 + b"\x00" * 23 + b"\x11\x00\x00" + b"\x00" * 40
        w.write(b"\x00" + len(body).to_bytes(3, "big") + body)
        await w.drain()

    return handler


@pytest.mark.parametrize(
    ("dialect", "found"), [(b"smb1", ["svc.smb.v1"]), (b"smb2", []), (b"close", [])]
)
def test_smb1_negotiate(dialect: bytes, found: list[str]) -> None:
    async def go() -> Device:
        async with tcp_fake(smb_server(dialect)) as srv:
            return await arun(smb.SmbV1, (srv.port, "tcp", "smb"))

    d = asyncio.run(go())
    assert checks(d) == found and only(d).status is OutcomeStatus.RAN


def test_passive_probes_all_run_in_safe_mode() -> None:
    from iotrate.probes import registry

    passive = [p for p in registry(include_plugins=False).probes if p.id.startswith("svc.")]
    writes = {p.id for p in passive if p.intrusiveness.value > 0}
    assert writes == {"svc.snmp.write", "svc.upnp.portmap"}
