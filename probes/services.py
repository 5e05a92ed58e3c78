"""Exposed-service probes: which risky doors does the device leave open on the network?

Each probe speaks just enough of its protocol to be sure what answers — a telnet negotiation,
an FTP greeting, the ADB ``CNXN`` handshake, an SNMP GET with the well-known ``public``
community, an RTSP DESCRIBE, a CoAP GET, a Modbus device-identification read, an SMB1
negotiate — and never logs in or changes anything (PASSIVE), except the SNMP write-back test,
which is WRITE and runs only with ``--intrusive``. A service that accepts the connection and
then says nothing, or says something unparsable, is a failed outcome ("could not test"),
never a pass. UPnP lives in :mod:`upnp`; login attempts in :mod:`credentials`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import struct
from html.parser import HTMLParser
from typing import Any, ClassVar

from iotrate.models import Confidence, Finding, Transport
from iotrate.net import printable

from . import rtsp, snmp
from ._io import (
    PeerClosed,
    base_url,
    http_client,
    http_get_following,
    open_tcp,
    parse_xml,
    read_exactly,
    read_until_marker,
    udp_ask,
    write,
)
from .base import (
    AttemptBudget,
    BudgetExhausted,
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
)
from .telnet import LOGIN_PROMPT, PASSWORD_PROMPT, SHELL_PROMPT, TelnetSession, ends_with


def _port(ctx: ProbeContext) -> int:
    if ctx.service is None:  # pragma: no cover - these probes are per service
        raise NotApplicable("needs a service")
    return ctx.service.port


# --------------------------------------------------------------------------------- telnet


class TelnetExposed(Probe):
    id = "svc.telnet"
    title = "Telnet enabled (and a shell without a password)"
    protocols = frozenset({"telnet"})
    ports = frozenset({23, 2323})
    timeout = 15.0
    checks = ("svc.telnet", "auth.none.admin")
    listen_s: ClassVar[float] = 4.0

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        session = await TelnetSession.open(ctx.address, port, self.listen_s)
        try:
            text = await session.read_until(
                [LOGIN_PROMPT, PASSWORD_PROMPT, SHELL_PROMPT], self.listen_s
            )
            negotiated = bool(session.answered)
            if not text.strip() and not negotiated:
                raise ProbeFailed(
                    f"telnet {port}: no negotiation and no text within {self.listen_s:g}s"
                )
            if text.startswith(("SSH-", "HTTP/", "RTSP/")):
                raise NotApplicable(f"port {port} speaks {text[:8]!r}, not telnet")
            login = ends_with(LOGIN_PROMPT, text) or ends_with(PASSWORD_PROMPT, text)
            shell = not login and ends_with(SHELL_PROMPT, text)
            if shell:
                # Confirm with an empty line (no command): a real shell prints its prompt again.
                await session.send_line("")
                again = await session.read_until([SHELL_PROMPT], 2.0)
                shell = ends_with(SHELL_PROMPT, again)
        finally:
            await session.close()
        banner = printable(text, 200)
        findings = [
            make_finding(
                "svc.telnet",
                f"telnet on port {port}"
                + (" shows a login prompt" if login else "")
                + (f": {banner!r}" if banner else ""),
                port,
                {"login_prompt": login, "banner": banner, "negotiation": negotiated},
            )
        ]
        if shell:
            prompt = printable(text.strip().splitlines()[-1], 60)
            findings.append(
                make_finding(
                    "auth.none.admin",
                    f"telnet on port {port} gave a shell prompt {prompt!r} without a login, "
                    "and printed it again after an empty line",
                    port,
                    {"protocol": "telnet", "shell": True, "prompt": prompt},
                )
            )
        return findings


# ------------------------------------------------------------------------------------ FTP


_FTP_FINAL = re.compile(rb"(?m)^\d{3} [^\n]*\n")


async def ftp_reply(conn: Any, timeout: float) -> bytes:
    """One complete FTP reply: lines up to the final ``NNN <text>`` line (RFC 959 multi-line
    replies start ``NNN-``); whatever arrived if the deadline passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buf = b""
    while not _FTP_FINAL.search(buf) and len(buf) < 8192:
        left = deadline - loop.time()
        if left <= 0:
            break
        chunk = await read_until_marker(conn, b"\n", 8192 - len(buf), left)
        if not chunk:
            break
        buf += chunk
    return buf


class FtpExposed(Probe):
    id = "svc.ftp"
    title = "FTP enabled"
    protocols = frozenset({"ftp"})
    ports = frozenset({21})
    timeout = 10.0
    checks = ("svc.ftp",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(4.0, ctx.timeout / 3)
        conn = await open_tcp(ctx.address, port, step)
        try:
            greeting = await ftp_reply(conn, step)
            if not greeting:
                raise ProbeFailed(f"FTP {port}: no greeting within {step:g}s")
            code = greeting[:3]
            if code == b"421":
                raise ProbeFailed(f"FTP {port}: busy ({printable(greeting, 80)})")
            if code != b"220":
                raise NotApplicable(f"port {port} greets {printable(greeting[:20])!r}, not FTP")
            # FEAT asks what the server supports without logging in: AUTH TLS means it can
            # protect the login, though the port still takes a cleartext one.
            await write(conn, b"FEAT\r\n")
            feats = await ftp_reply(conn, step)
            await write(conn, b"QUIT\r\n")
        finally:
            await conn.close()
        auth_tls = b"AUTH TLS" in feats.upper()
        banner = printable(greeting, 120)
        return [
            make_finding(
                "svc.ftp",
                f"FTP on port {port} greets {banner!r}"
                + ("; it offers AUTH TLS" if auth_tls else "; it offers no TLS"),
                port,
                {"banner": banner, "auth_tls": auth_tls},
            )
        ]


# ------------------------------------------------------------------------------------ ADB

A_CNXN, A_AUTH = 0x4E584E43, 0x48545541
ADB_HEADER = struct.Struct("<6I")
ADB_VERSION = 0x01000001
ADB_MAX_PAYLOAD = 256 * 1024


def adb_message(command: int, arg0: int, arg1: int, data: bytes) -> bytes:
    check = sum(data) & 0xFFFFFFFF
    header = ADB_HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF)
    return header + data


def adb_props(banner: str) -> dict[str, str]:
    _, _, rest = banner.partition("::")
    pairs = (item.split("=", 1) for item in rest.split(";") if "=" in item)
    return {k.strip(): printable(v.strip(), 80) for k, v in pairs}


class AdbUnauthenticated(Probe):
    id = "svc.adb"
    title = "Android Debug Bridge without authentication"
    protocols = frozenset({"adb"})
    ports = frozenset({5555})
    timeout = 10.0
    checks = ("svc.adb.unauthenticated",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(4.0, ctx.timeout / 2)
        conn = await open_tcp(ctx.address, port, step)
        try:
            # The host's half of the handshake: a device that enforces keys answers AUTH with a
            # token to sign; one that answers CNXN has let us in without any key.
            await write(conn, adb_message(A_CNXN, ADB_VERSION, ADB_MAX_PAYLOAD, b"host::\0"))
            head = await read_exactly(conn, ADB_HEADER.size, step)
            command, _arg0, _arg1, length, _check, magic = ADB_HEADER.unpack(head)
            if magic != command ^ 0xFFFFFFFF or length > ADB_MAX_PAYLOAD:
                raise NotApplicable(f"port {port} does not answer the ADB handshake")
            payload = await read_exactly(conn, length, step) if length else b""
        finally:
            await conn.close()
        if command == A_AUTH:
            return []
        if command != A_CNXN:
            raise NotApplicable(f"ADB on port {port} answered command {command:#x}")
        banner = printable(payload.rstrip(b"\0"), 200)
        props = adb_props(banner)
        model = props.get("ro.product.model") or props.get("ro.product.name") or "device"
        return [
            make_finding(
                "svc.adb.unauthenticated",
                f"ADB on port {port} accepted a connection without a key and identified itself "
                f"as {banner!r}",
                port,
                {"banner": banner, "properties": props, "model": model},
            )
        ]


# ----------------------------------------------------------------------------------- SNMP

_SYSTEM = [snmp.SYS_DESCR, snmp.SYS_NAME, snmp.SYS_CONTACT, snmp.SYS_LOCATION]


class SnmpReadable(Probe):
    """The ``public`` read community: the protocol's documented default, asked once with a GET
    of the system group, which changes nothing (other communities: ``cred.snmp``)."""

    id = "svc.snmp"
    title = "SNMP readable with the default community"
    protocols = frozenset({"snmp"})
    ports = frozenset({161})
    transport = Transport.UDP
    timeout = 10.0
    checks = ("svc.snmp.readable",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(2.0, ctx.timeout / 4)
        version = "2c"
        reply = await snmp.get(ctx.address, port, "public", _SYSTEM, step, version)
        if reply is None:
            version = "1"  # v1-only agents ignore a v2c packet
            reply = await snmp.get(ctx.address, port, "public", _SYSTEM, step, version)
        if reply is None:
            return []
        descr = printable(reply.values.get("sysDescr", ""), 200)
        return [
            make_finding(
                "svc.snmp.readable",
                f"SNMP v{version} on UDP {port} answered community 'public': sysDescr {descr!r}",
                port,
                {
                    "community": "public",
                    "version": version,
                    "sysDescr": descr,
                    "sysName": printable(reply.values.get("sysName", ""), 80),
                },
                transport=Transport.UDP,
            )
        ]


class SnmpWritable(Probe):
    """Whether a default community may write: reads sysContact, writes the same value back."""

    id = "svc.snmp.write"
    title = "SNMP writable with a default community"
    protocols = frozenset({"snmp"})
    ports = frozenset({161})
    transport = Transport.UDP
    intrusiveness = Intrusiveness.WRITE
    timeout = 20.0
    checks = ("svc.snmp.writable",)
    budget = AttemptBudget(max_attempts=4, delay_s=0.25)
    communities: ClassVar[tuple[str, ...]] = ("private", "public")

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(2.0, ctx.timeout / 6)
        gate = ctx.login_gate()
        for community in self.communities:
            try:
                await gate.take(community)
            except BudgetExhausted:
                break
            reply = await snmp.get(ctx.address, port, community, [snmp.SYS_CONTACT], step)
            if reply is None or snmp.SYS_CONTACT not in reply.raw or reply.error:
                continue
            value = reply.raw[snmp.SYS_CONTACT]
            written = await snmp.set_same(
                ctx.address, port, community, snmp.SYS_CONTACT, value, step
            )
            if written is None or written.error:
                continue
            shown = printable(reply.values.get("sysContact", ""), 80)
            return [
                make_finding(
                    "svc.snmp.writable",
                    f"SNMP on UDP {port} accepted a SET of sysContact.0 with community "
                    f"{community!r} (written back unchanged: {shown!r})",
                    port,
                    {"community": community, "object": "sysContact.0", "unchanged": True},
                    transport=Transport.UDP,
                )
            ]
        return []


# ----------------------------------------------------------------------------------- RTSP


def _sdp_media(body: str) -> list[str]:
    return sorted({line[2:].split()[0] for line in body.splitlines() if line.startswith("m=")})


class RtspUnauthenticated(Probe):
    id = "svc.rtsp"
    title = "RTSP stream without a password"
    protocols = frozenset({"rtsp"})
    ports = frozenset({554, 8554})
    timeout = 30.0
    checks = ("svc.rtsp.unauthenticated",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(3.0, ctx.timeout / 6)
        protected = []
        for path in rtsp.STREAM_PATHS:
            reply, _uri = await rtsp.describe(ctx.address, port, path, step)
            if reply.status == 401:
                protected.append(path)
            elif reply.status == 200 and (
                "m=" in reply.body or "sdp" in reply.header("content-type")
            ):
                media = _sdp_media(reply.body)
                server = printable(reply.header("server"), 80)
                return [
                    make_finding(
                        "svc.rtsp.unauthenticated",
                        f"RTSP DESCRIBE {path} on port {port} answered 200 with a stream "
                        f"description ({', '.join(media) or 'no media lines'}) and no login",
                        port,
                        {"path": path, "media": media, "server": server},
                    )
                ]
        if protected:
            return []  # streams exist and ask for a password
        raise ProbeFailed(
            f"none of {len(rtsp.STREAM_PATHS)} known stream paths exists on port {port}: "
            "cannot tell whether its streams need a password"
        )


# ------------------------------------------------------------------------ device-control APIs

# Port -> (path, what answers there). Both are documented, unauthenticated by design, and read
# only: Google Cast's setup API and Roku's External Control Protocol.
LOCAL_APIS: dict[int, tuple[str, str]] = {
    8008: ("/setup/eureka_info", "Google Cast setup API"),
    8060: ("/query/device-info", "Roku External Control Protocol"),
}
# Fields whose disclosure helps an attacker (svc.info-disclosure): exact builds, hardware ids.
_SENSITIVE = re.compile(
    r"(?i)(build|version|firmware|software|mac|serial|udn|uuid|device[-_]id|ip[-_]address|"
    r"wifi|ssid|location)"
)


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> dict[str, str]:
    out: dict[str, str] = {}
    if depth > 3:
        return out
    if isinstance(value, dict):
        for k, v in list(value.items())[:100]:
            out.update(_flatten(v, f"{prefix}{k}.", depth + 1))
    elif not isinstance(value, list):
        out[prefix.rstrip(".")] = printable(str(value), 80)
    return out


class LocalApiUnauthenticated(Probe):
    id = "svc.api"
    title = "Device-control API without authentication"
    ports = frozenset(LOCAL_APIS)
    timeout = 10.0
    checks = ("svc.api.unauthenticated", "svc.info-disclosure")

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        path, what = LOCAL_APIS[port]
        url = base_url("http", ctx.address, port) + path
        async with http_client(min(5.0, ctx.timeout / 2)) as client:
            reply = await http_get_following(client, url, ctx.allowed_hosts, max_hops=0)
        if reply.status in (401, 403):
            return []
        if reply.status != 200:
            raise NotApplicable(f"{url} answered {reply.status}: not the {what}")
        fields: dict[str, str]
        try:
            if path.endswith("eureka_info"):
                fields = _flatten(json.loads(reply.body))
            else:
                root = parse_xml(reply.body)
                fields = {
                    child.tag.rsplit("}", 1)[-1]: printable(child.text or "", 80)
                    for child in list(root)[:100]
                }
        except (ValueError, ProbeFailed) as exc:
            raise NotApplicable(f"{url} answered 200 but not with the {what}: {exc}") from exc
        if not fields:
            raise NotApplicable(f"{url} answered an empty document")
        name = fields.get("name") or fields.get("friendly-device-name") or ""
        findings = [
            make_finding(
                "svc.api.unauthenticated",
                f"GET {path} on port {port} returned the device's {what} data "
                f"({len(fields)} fields{', name ' + repr(name) if name else ''}) with no login",
                port,
                {"path": path, "api": what, "fields": sorted(fields)[:40], "name": name},
            )
        ]
        sensitive = sorted(k for k in fields if _SENSITIVE.search(k))
        if sensitive:
            findings.append(
                make_finding(
                    "svc.info-disclosure",
                    f"{path} on port {port} tells anyone {', '.join(sensitive[:8])}",
                    port,
                    {"path": path, "fields": sensitive[:40]},
                )
            )
        return findings


# ----------------------------------------------------------------------------- admin web UI

_LOGIN_WORDS = re.compile(
    r"(?i)\b(log\s?in|sign\s?in|logon|anmelden|connexion|iniciar sesi[oó]n|accedi)\b|登录|ログイン"
)
_SETTING_WORDS = re.compile(
    r"(?i)\b(ssid|wpa2?|wireless|wi-?fi|dhcp|dns|gateway|subnet|netmask|ntp|firmware|"
    r"factory\s?reset|reboot|port\s?forward\w*|upnp|admin\s?password|change\s?password)\b"
)
_SAVE_WORDS = re.compile(r"(?i)\b(save|apply|submit|update)\b")


class _PageParser(HTMLParser):
    """Collects what tells a login page from a settings page: the title, headings, form
    actions, input types and names, and button labels."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.headings: list[str] = []
        self.actions: list[str] = []
        self.inputs: list[tuple[str, str]] = []  # (type, name)
        self.words: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("title", "h1", "h2", "label", "button", "a", "option", "td", "th"):
            self._in = tag
        if tag == "form":
            self.actions.append(a.get("action", ""))
        elif tag in ("input", "select", "textarea"):
            kind = a.get("type", "text" if tag == "input" else tag).lower()
            self.inputs.append((kind, a.get("name", "") or a.get("id", "")))
            if kind in ("submit", "button"):
                self.words.append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in in ("h1", "h2"):
            self.headings.append(data.strip())
        if self._in and len(self.words) < 400:
            self.words.append(data.strip())


def classify_page(html: str) -> tuple[str, dict[str, Any]]:
    """('login-form' | 'login-page' | 'settings' | 'other', details) for an HTML page."""
    parser = _PageParser()
    try:
        parser.feed(html[:200_000])
        parser.close()
    except Exception:  # a broken page is "other", not a crash
        return "other", {}
    title = printable(parser.title, 80)
    details: dict[str, Any] = {"title": title}
    if any(kind == "password" for kind, _ in parser.inputs):
        actions = [a for a in parser.actions if a]
        details["form_actions"] = [printable(a, 80) for a in actions[:5]]
        if actions and all(a.lower().startswith("https://") for a in actions):
            return "other", details  # the password is posted over TLS
        return "login-form", details
    heading_text = " ".join([parser.title, *parser.headings])
    if _LOGIN_WORDS.search(heading_text):
        details["headings"] = [printable(h, 80) for h in parser.headings[:3]]
        return "login-page", details
    text = " ".join([*parser.words, *(n for _, n in parser.inputs)])
    markers = sorted({m.lower() for m in _SETTING_WORDS.findall(text)})
    editable = [k for k, _ in parser.inputs if k not in ("hidden", "submit", "button")]
    if len(markers) >= 3 and editable and _SAVE_WORDS.search(text):
        details["markers"] = markers[:10]
        return "settings", details
    return "other", details


class HttpAdmin(Probe):
    id = "svc.http"
    title = "Admin web UI over plain HTTP"
    protocols = frozenset({"http"})
    timeout = 15.0
    checks = ("svc.http.admin-cleartext", "auth.none.admin")

    def applies(self, device: Any, service: Any) -> bool:
        return super().applies(device, service) and not (service and service.tls)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        url = base_url("http", ctx.address, port) + "/"
        async with http_client(min(6.0, ctx.timeout / 2)) as client:
            reply = await http_get_following(client, url, ctx.allowed_hosts, into_tls=False)
        if reply.redirects and reply.redirects[-1].startswith("https://"):
            return []  # plain HTTP only sends the browser to HTTPS
        challenge = reply.header("www-authenticate")
        if reply.status == 401 and re.search(r"(?i)\b(basic|digest)\b", challenge):
            auth = "digest" if "digest" in challenge.lower() else "basic"
            return [
                self._cleartext(
                    port,
                    auth,
                    f"{reply.url} asks for a password with HTTP {auth} auth "
                    f"({printable(challenge, 100)}) over plain HTTP",
                    {"auth": auth, "url": reply.url, "challenge": printable(challenge, 120)},
                )
            ]
        kind_header = reply.header("content-type").lower()
        if reply.status != 200 or ("html" not in kind_header and b"<" not in reply.body[:200]):
            return []
        kind, details = classify_page(reply.text())
        if kind == "login-form":
            return [
                self._cleartext(
                    port,
                    "form",
                    f"{reply.url} serves a login form with a password field over plain HTTP",
                    {"auth": "form", "url": reply.url, **details},
                )
            ]
        if kind == "login-page":
            return [
                self._cleartext(
                    port,
                    "form",
                    f"{reply.url} serves a login page (title {details.get('title')!r}) over "
                    "plain HTTP; its form is built by script, so the password field was not seen",
                    {"auth": "form", "url": reply.url, **details},
                    confidence=Confidence.PROBABLE,
                )
            ]
        if kind == "settings":
            return [
                make_finding(
                    "auth.none.admin",
                    f"{reply.url} serves an editable settings page "
                    f"({', '.join(details.get('markers', []))}) without asking for a password",
                    port,
                    {"protocol": "http", "shell": False, "url": reply.url, **details},
                    confidence=Confidence.PROBABLE,
                )
            ]
        return []

    def _cleartext(
        self,
        port: int,
        auth: str,
        summary: str,
        data: dict[str, Any],
        confidence: Confidence = Confidence.CONFIRMED,
    ) -> Finding:
        return make_finding("svc.http.admin-cleartext", summary, port, data, confidence=confidence)


# ----------------------------------------------------------------------------------- MQTT


def mqtt_probe_connect() -> bytes:
    """An MQTT CONNECT with a protocol level no broker supports (0x7F). MQTT 3.1.1 §3.1.2.2
    requires the broker to answer CONNACK 0x01 and hang up, so the answer proves MQTT without a
    login attempt: no user name, no session, nothing a broker would accept."""
    client_id = f"iotrate-{secrets.token_hex(3)}".encode()
    variable = b"\x00\x04MQTT" + b"\x7f" + b"\x02" + b"\x00\x0a"
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    return b"\x10" + bytes([len(body)]) + body


class MqttCleartext(Probe):
    id = "svc.mqtt"
    title = "MQTT without TLS"
    protocols = frozenset({"mqtt"})
    ports = frozenset({1883})
    timeout = 10.0
    checks = ("svc.mqtt.cleartext",)

    def applies(self, device: Any, service: Any) -> bool:
        return super().applies(device, service) and not (service and service.tls)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(4.0, ctx.timeout / 2)
        conn = await open_tcp(ctx.address, port, step)
        try:
            await write(conn, mqtt_probe_connect())
            reply = await read_exactly(conn, 4, step)
        finally:
            await conn.close()
        if reply[0] != 0x20 or reply[1] != 0x02:
            raise NotApplicable(f"port {port} did not answer with an MQTT CONNACK")
        return [
            make_finding(
                "svc.mqtt.cleartext",
                f"an MQTT broker answers on port {port} in clear text (CONNACK code "
                f"{reply[3]} to a version probe)",
                port,
                {"connack": reply[3]},
            )
        ]


# ----------------------------------------------------------------------------------- CoAP


def coap_get_wellknown(message_id: int, token: bytes) -> bytes:
    header = bytes([0x40 | len(token), 0x01]) + message_id.to_bytes(2, "big") + token
    # Uri-Path options: ".well-known" (option 11, delta 11) then "core" (delta 0).
    return header + b"\xbb.well-known" + b"\x04core"


def coap_parse(data: bytes) -> tuple[int, int, bytes] | None:
    """(type, code, payload) of a CoAP message, or None if it is not one."""
    if len(data) < 4 or data[0] >> 6 != 1:
        return None
    tkl = data[0] & 0x0F
    if tkl > 8:
        return None
    mtype, code = (data[0] >> 4) & 0x03, data[1]
    i = 4 + tkl
    while i < len(data) and data[i] != 0xFF:
        delta, length = data[i] >> 4, data[i] & 0x0F
        i += 1
        for nibble in (delta, length):
            if nibble == 13:
                i += 1
            elif nibble == 14:
                i += 2
            elif nibble == 15:
                return None
        if length == 13:
            length = data[i - 1] + 13 if i - 1 < len(data) else 0
        i += length
    payload = data[i + 1 :] if i < len(data) else b""
    return mtype, code, payload


class CoapOpen(Probe):
    id = "svc.coap"
    title = "CoAP open without security"
    protocols = frozenset({"coap"})
    ports = frozenset({5683})
    transport = Transport.UDP
    timeout = 10.0
    checks = ("svc.coap.open",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        mid, token = secrets.randbelow(65536), secrets.token_bytes(4)
        step = min(3.0, ctx.timeout / 3)
        answer = await udp_ask(ctx.address, port, coap_get_wellknown(mid, token), step)
        if answer is None:
            raise ProbeFailed(f"CoAP {port}: no answer to GET /.well-known/core in {step:g}s")
        parsed = coap_parse(answer)
        if parsed is None:
            raise NotApplicable(f"UDP {port} answered something that is not CoAP")
        _mtype, code, payload = parsed
        code_text = f"{code >> 5}.{code & 0x1F:02d}"
        resources = re.findall(r"<([^>]{1,100})>", payload.decode("utf-8", "replace"))[:20]
        return [
            make_finding(
                "svc.coap.open",
                f"CoAP on UDP {port} answered GET /.well-known/core with {code_text}"
                + (f", listing {len(resources)} resources" if resources else ""),
                port,
                {"code": code_text, "resources": [printable(r, 100) for r in resources]},
                transport=Transport.UDP,
            )
        ]


# --------------------------------------------------------------------------------- Modbus


class ModbusOpen(Probe):
    id = "svc.modbus"
    title = "Modbus open"
    protocols = frozenset({"modbus"})
    ports = frozenset({502})
    timeout = 10.0
    checks = ("svc.modbus.open",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(4.0, ctx.timeout / 2)
        tid = secrets.randbelow(65536)
        # Read Device Identification (function 0x2B/0x0E, basic objects): a read that every
        # Modbus/TCP stack either answers or refuses with an exception, and that changes nothing.
        pdu = b"\x2b\x0e\x01\x00"
        request = struct.pack(">HHHB", tid, 0, len(pdu) + 1, 1) + pdu
        conn = await open_tcp(ctx.address, port, step)
        try:
            await write(conn, request)
            head = await read_exactly(conn, 7, step)
            r_tid, proto, length, _unit = struct.unpack(">HHHB", head)
            if r_tid != tid or proto != 0 or not 2 <= length <= 260:
                raise NotApplicable(f"port {port} does not answer like Modbus/TCP")
            body = await read_exactly(conn, length - 1, step)
        finally:
            await conn.close()
        function = body[0]
        objects: dict[str, str] = {}
        if function == 0x2B and len(body) > 7:
            names = {0: "vendor", 1: "product_code", 2: "revision"}
            i, count = 7, body[6]
            for _ in range(count):
                if i + 2 > len(body):
                    break
                oid, size = body[i], body[i + 1]
                objects[names.get(oid, f"object_{oid}")] = printable(body[i + 2 : i + 2 + size])
                i += 2 + size
        answered = "device identification" if function == 0x2B else f"exception {function:#x}"
        return [
            make_finding(
                "svc.modbus.open",
                f"Modbus/TCP on port {port} answered a device-identification read ({answered})",
                port,
                {"function": function, **objects},
            )
        ]


# ------------------------------------------------------------------------------------ SMB


def smb1_negotiate() -> bytes:
    """An SMB1 NEGOTIATE offering only the "NT LM 0.12" dialect, inside a NetBIOS frame.

    A server that still speaks SMB1 picks it (dialect index 0); one without SMB1 answers with
    SMB2 or hangs up — the same test Windows and nmap's smb-protocols use."""
    dialects = b"\x02NT LM 0.12\x00"
    header = (
        b"\xffSMB"
        + b"\x72"  # NEGOTIATE
        + b"\x00\x00\x00\x00"  # status
        + b"\x18"  # flags: canonical paths, case-insensitive
        + b"\x01\x28"  # flags2: long names, NT status (LE 0x2801)
        + b"\x00\x00"
        + b"\x00" * 8
        + b"\x00\x00"
        + b"\x00\x00"  # tree id
        + struct.pack("<H", 0xFEFF)  # process id
        + b"\x00\x00"  # user id
        + b"\x00\x00"  # multiplex id
    )
    body = b"\x00" + struct.pack("<H", len(dialects)) + dialects
    smb = header + body
    return b"\x00" + len(smb).to_bytes(3, "big") + smb


def netbios_session_request() -> bytes:
    """Port 139 wants a NetBIOS session first; '*SMBSERVER' is the wildcard name servers take."""

    def encode(name: str) -> bytes:
        raw = name.ljust(15)[:15].encode() + b"\x20"
        out = b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 0x0F)]) for c in raw)
        return b"\x20" + out + b"\x00"

    payload = encode("*SMBSERVER") + encode("IOTRATE")
    return b"\x81\x00" + len(payload).to_bytes(2, "big") + payload


class SmbV1(Probe):
    id = "svc.smb"
    title = "SMB version 1"
    protocols = frozenset({"smb", "netbios-ssn"})
    ports = frozenset({139, 445})
    timeout = 10.0
    checks = ("svc.smb.v1",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(4.0, ctx.timeout / 3)
        conn = await open_tcp(ctx.address, port, step)
        try:
            if port == 139:
                await write(conn, netbios_session_request())
                answer = await read_exactly(conn, 4, step)
                if answer[0] != 0x82:
                    raise NotApplicable(f"port {port} refused a NetBIOS session")
            await write(conn, smb1_negotiate())
            try:
                head = await read_exactly(conn, 4, step)
            except PeerClosed:
                return []  # hung up on SMB1: the usual answer of an SMB2-only server
            size = int.from_bytes(head[1:4], "big")
            body = await read_exactly(conn, min(size, 1024), step)
        finally:
            await conn.close()
        if body.startswith(b"\xfeSMB"):
            return []
        if not body.startswith(b"\xffSMB") or len(body) < 37:
            raise NotApplicable(f"port {port} does not answer like SMB")
        status = struct.unpack("<I", body[5:9])[0]
        word_count = body[32]
        dialect = struct.unpack("<H", body[33:35])[0] if word_count else 0xFFFF
        if status != 0 or dialect == 0xFFFF:
            return []
        return [
            make_finding(
                "svc.smb.v1",
                f"SMB on port {port} accepted the SMB1 dialect 'NT LM 0.12'",
                port,
                {"dialect": "NT LM 0.12"},
            )
        ]
