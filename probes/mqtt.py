"""MQTT: what a broker exposes, whether it needs TLS, and whether it lets anyone in.

When a broker accepts a CONNECT without credentials, anyone on the network can subscribe to
``#`` (every ordinary topic) and ``$SYS/#`` (the broker's own status, which ``#`` does not
match). :class:`MqttProbe` does exactly that for a few seconds, bounded in time and in messages,
and keeps topic names, counts and a redacted sample of at most a few characters per topic:
enough evidence for a report, not a copy of the household's data. It reports what the access
exposes (``mqtt.sys-exposed``) and the broker version, which feeds the update check; whether
anonymous access itself is a finding (``svc.mqtt.anonymous``) is the login probe's call
(:class:`MqttLogin`, LOGIN, which also tries factory passwords). :class:`MqttCleartext`
(PASSIVE) reports a broker that speaks MQTT without TLS (``svc.mqtt.cleartext``).

paho-mqtt is synchronous; one session runs in a worker thread with its own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from iotrate.models import Confidence, Finding, Transport
from iotrate.net import printable, tls_connect
from iotrate.ratelimit import throttle_sync

from ._clients.credlist import Candidate
from ._clients.io import (
    open_tcp,
    read_exactly,
    write,
)
from ._login import (
    CHECK,
    SERVICE_BUDGET,
    Attempt,
    candidates_for,
    cred_finding,
    walk,
)
from .base import (
    BudgetExhausted,
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

SUMMARY_CHECK = "mqtt.summary"  # info-level carrier of what was seen (not in the scheme)

LISTEN_S = 3.0  # how long to collect messages after subscribing
MAX_MESSAGES = 2000  # stop early on a busy broker
MAX_TOPICS_KEPT = 100  # topic names stored in the evidence
SAMPLE_TOPICS = 10  # topics that get a redacted payload sample
SAMPLE_CHARS = 3  # payload characters kept per sampled topic
# Topics whose value is a software version (not household data), kept in full for the update
# check: e.g. fridge/firmware = 04.02.13.
_VERSION_TOPIC = re.compile(r"(?:^|/)(?:firmware|fw|fw_?version|sw_?version|version)$", re.I)


@dataclass
class MqttSession:
    """What one anonymous session saw (filled in by the worker thread)."""

    connected: bool = False
    return_code: int | None = None  # CONNACK reason code (0 = accepted)
    return_text: str | None = None
    granted: list[int] = field(default_factory=list)  # SUBACK codes for #, $SYS/#
    messages: int = 0
    retained: int = 0
    topics: dict[str, tuple[int, str]] = field(default_factory=dict)  # topic -> (bytes, sample)
    sys_values: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    truncated: bool = False


def redact(payload: bytes) -> str:
    """A few leading characters and the size: shows the kind of data without keeping it."""
    text = printable(payload[: SAMPLE_CHARS * 4], SAMPLE_CHARS * 4)
    head = text[:SAMPLE_CHARS]
    return f"{head}… ({len(payload)} bytes)" if len(payload) > SAMPLE_CHARS else head


class _Listener:
    """paho's callbacks for one session, filling ``out``."""

    def __init__(self, out: MqttSession) -> None:
        self.out = out
        self.subscribed_at: float | None = None

    def on_connect(self, cl: Any, _ud: Any, _flags: Any, rc: Any, _props: Any) -> None:
        out = self.out
        out.return_code = int(rc.value) if hasattr(rc, "value") else int(rc)
        out.return_text = str(rc)
        if out.return_code == 0:
            out.connected = True
            cl.subscribe([("#", 0), ("$SYS/#", 0)])

    def on_subscribe(self, _cl: Any, _ud: Any, _mid: Any, codes: Any, _props: Any) -> None:
        self.out.granted = [int(c.value) if hasattr(c, "value") else int(c) for c in codes]
        if self.subscribed_at is None:
            self.subscribed_at = time.monotonic()

    def on_message(self, _cl: Any, _ud: Any, msg: Any) -> None:
        out = self.out
        out.messages += 1
        out.retained += int(bool(msg.retain))
        topic = printable(msg.topic, 200)
        payload = bytes(msg.payload)
        if topic.startswith("$SYS/"):
            out.sys_values.setdefault(topic, printable(payload[:64], 64))
        elif _VERSION_TOPIC.search(topic) and len(payload) <= 40:
            out.versions.setdefault(topic, printable(payload, 40))
        if topic not in out.topics:
            out.topics[topic] = (len(payload), redact(payload))
        if out.messages >= MAX_MESSAGES:
            out.truncated = True

    def done(self, elapsed: float, timeout: float, listen_s: float) -> bool:
        """Whether the session has what it came for, or has waited long enough (setting
        ``out.error`` when the broker never got that far)."""
        out = self.out
        if out.return_code is None and elapsed > timeout:
            out.error = f"no CONNACK within {timeout:g} s"
            return True
        if out.return_code not in (None, 0):
            return True
        if self.subscribed_at is not None and time.monotonic() - self.subscribed_at > listen_s:
            return True
        if out.connected and self.subscribed_at is None and elapsed > timeout + listen_s:
            out.error = "no SUBACK"
            return True
        return out.truncated


def _session(host: str, port: int, use_tls: bool, listen_s: float, timeout: float) -> MqttSession:
    """One anonymous MQTT 3.1.1 session (blocking; run in a worker thread)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    out = MqttSession()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"iotrate-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.connect_timeout = timeout
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the TLS probe judges the certificate
        client.tls_set_context(ctx)
    listener = _Listener(out)
    client.on_connect = listener.on_connect
    client.on_subscribe = listener.on_subscribe
    client.on_message = listener.on_message
    start = time.monotonic()
    try:
        throttle_sync(host)
        client.connect(host, port, keepalive=max(10, int(timeout * 2)))
        while True:
            rc = client.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                if out.return_code is None:
                    out.error = f"connection closed before CONNACK ({mqtt.error_string(rc)})"
                break
            if listener.done(time.monotonic() - start, timeout, listen_s):
                break
    except (OSError, ssl.SSLError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        with contextlib.suppress(Exception):
            client.loop(timeout=0.1)
    return out


def session_findings(
    s: MqttSession, port: int, use_tls: bool, tls_8883: bool | None, probe: str
) -> list[Finding]:
    out: list[Finding] = []
    sys_topics = sorted(s.sys_values)
    version = s.sys_values.get("$SYS/broker/version")
    if sys_topics:
        out.append(
            make_finding(
                "mqtt.sys-exposed",
                f"an anonymous client read {len(sys_topics)} $SYS topics on {port}/tcp"
                + (f", including the broker version ({version})" if version else ""),
                port,
                {
                    "sys_topics": len(sys_topics),
                    "broker_version": version,
                    "topics": sys_topics[:20],
                },
                probe=probe,
            )
        )
    ordinary = sorted(t for t in s.topics if not t.startswith("$SYS/"))
    data: dict[str, Any] = {
        "anonymous": s.connected,
        "connack": s.return_code,
        "tls": use_tls,
        "tls_on_8883": tls_8883,
        "subscriptions_granted": s.granted,
        "messages": s.messages,
        "retained": s.retained,
        "topic_count": len(ordinary),
        "topics": ordinary[:MAX_TOPICS_KEPT],
        "samples": {t: s.topics[t][1] for t in ordinary[:SAMPLE_TOPICS]},
        "version_topics": s.versions,
        "broker_version": version,
        "truncated": s.truncated,
        "listen_s": LISTEN_S,
    }
    if s.connected:
        text = (
            f"anonymous CONNECT accepted on {port}/tcp; {len(ordinary)} topics and "
            f"{len(sys_topics)} $SYS topics seen in {LISTEN_S:g} s ({s.messages} messages, "
            f"{s.retained} retained)"
        )
    else:
        text = f"anonymous CONNECT refused on {port}/tcp ({s.return_text})"
    if tls_8883 is not None:
        text += "; MQTT over TLS on 8883: " + ("yes" if tls_8883 else "no")
    out.append(make_finding(SUMMARY_CHECK, text, port, data, probe=probe))
    return out


class MqttProbe(Probe):
    """Anonymous subscription to ``#`` and ``$SYS/#`` for a few seconds."""

    id: ClassVar[str] = "mqtt"
    title: ClassVar[str] = "MQTT anonymous read access"
    protocols: ClassVar[frozenset[str]] = frozenset({"mqtt", "mqtts"})
    ports: ClassVar[frozenset[int]] = frozenset({1883, 8883})
    timeout: ClassVar[float] = 20.0
    # An anonymous CONNECT is a login, however empty: --safe skips it.
    intrusiveness: ClassVar[Intrusiveness] = Intrusiveness.LOGIN
    checks: ClassVar[tuple[str, ...]] = ("mqtt.sys-exposed", SUMMARY_CHECK)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        assert ctx.service is not None
        svc = ctx.service
        use_tls = svc.tls is True or svc.protocol == "mqtts"
        budget = min(ctx.timeout, self.timeout)
        connect_timeout = max(2.0, min(5.0, budget / 3))
        try:
            session = await asyncio.wait_for(
                asyncio.to_thread(
                    _session, ctx.address, svc.port, use_tls, LISTEN_S, connect_timeout
                ),
                timeout=budget,
            )
        except TimeoutError:
            raise ProbeFailed(f"MQTT session did not finish within {budget:g} s") from None
        if session.error and session.return_code is None:
            raise ProbeFailed(session.error)
        tls_8883 = await self._tls_8883(ctx)
        return session_findings(session, svc.port, use_tls, tls_8883, self.id)

    @staticmethod
    async def _tls_8883(ctx: ProbeContext) -> bool | None:
        """Whether the broker also offers MQTT over TLS: from discovery when it saw 8883,
        else one TLS handshake attempt; None when the probed port is 8883 itself."""
        assert ctx.service is not None
        if ctx.service.port == 8883:
            return None
        for s in ctx.device.services:
            if s.port == 8883 and s.transport is Transport.TCP and s.tls is not None:
                return s.tls
        conn, _ = await tls_connect(ctx.address, 8883, 2.0)
        if conn is None:
            return False
        await conn.close()
        return True


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
        port = service_port(ctx)
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


# ----------------------------------------------------------------------------------- MQTT


def _mqtt_connect(
    host: str, port: int, user: str | None, password: str | None, tls: bool, timeout: float
) -> tuple[str, str]:
    """CONNECT once with paho; ('ok'|'refused'|'error', reason). Blocking, run in a thread."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"iotrate-{secrets.token_hex(4)}",
        protocol=MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
    )
    client.connect_timeout = timeout
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        client.tls_set_context(ctx)
    if user is not None:
        client.username_pw_set(user, password)
    result: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        result["reason"] = reason

    client.on_connect = on_connect
    try:
        throttle_sync(host)
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while "reason" not in result and time.monotonic() < deadline:
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                break
    except (OSError, ValueError, ssl.SSLError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    finally:
        try:
            client.disconnect()
        except Exception:  # noqa: S110 - closing a half-open client must not mask the answer
            pass
    if "reason" not in result:
        return "error", "no CONNACK"
    reason = result["reason"]
    return ("refused" if reason.is_failure else "ok"), str(reason)


class MqttLogin(Probe):
    id = "cred.mqtt"
    title = "Anonymous and default-password MQTT logins"
    protocols = frozenset({"mqtt", "mqtts"})
    ports = frozenset({1883, 8883})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 45.0
    checks = (CHECK, "svc.mqtt.anonymous")
    budget = SERVICE_BUDGET

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        service = ctx.service
        tls = bool(service and (service.tls or service.protocol == "mqtts"))
        step = min(6.0, ctx.timeout / 4)
        gate = ctx.login_gate()

        async def connect(user: str | None, password: str | None) -> tuple[str, str]:
            return await asyncio.to_thread(
                _mqtt_connect, ctx.address, port, user, password, tls, step
            )

        await gate.take("")
        status, reason = await connect(None, None)
        if status == "error":
            raise ProbeFailed(f"MQTT {port}: {reason}")
        if status == "ok":
            return [self._anonymous(port, "a CONNECT without user name or password", {})]

        async def attempt(c: Candidate) -> Attempt:
            result, _ = await connect(c.username, c.password)
            if result == "ok":
                return Attempt.OK
            return Attempt.REJECTED if result == "refused" else Attempt.STOP

        found, _why = await walk(gate, candidates_for(ctx, "mqtt", named=True), attempt)
        if found is None:
            return []
        # A broker that takes any password for a user has no password at all: check once.
        canary = secrets.token_urlsafe(12)
        try:
            await gate.take(found.username)
        except BudgetExhausted:
            return [
                cred_finding(
                    "mqtt",
                    port,
                    found,
                    "the broker answered CONNACK 0 (not checked against a random password)",
                    confidence=Confidence.PROBABLE,
                )
            ]
        if (await connect(found.username, canary))[0] == "ok":
            return [
                self._anonymous(
                    port,
                    f"user {found.username!r} with any password",
                    {"accepts_any_password": True, "username": found.username},
                )
            ]
        return [cred_finding("mqtt", port, found, "the broker answered CONNACK 0 (accepted)")]

    def _anonymous(self, port: int, how: str, data: dict[str, object]) -> Finding:
        return make_finding(
            "svc.mqtt.anonymous",
            f"MQTT on port {port} accepted {how}",
            port,
            {"protocol": "mqtt", **data},
        )
