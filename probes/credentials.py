"""Default-credential probes: does the device let us in with a factory or widely known password?

One probe per protocol (telnet, SSH, HTTP basic/digest, FTP, MQTT, RTSP, SNMP communities),
all LOGIN intrusiveness, so ``--safe`` skips every one of them. Each walks the credential list
in the order :mod:`credlist` gives for the device's vendor and category, asking its
:class:`LoginGate` before every attempt: attempts are spaced and capped per service (and the
web account — HTTP and RTSP — is one budget per device, since cameras share it and lock it).
The numbers and why: docs/lab.md, "Probes".

A login that works becomes a ``cred.default-password`` finding whose evidence names the
protocol, port, user name, the list(s) and entry ids it came from and whether it is universal
(on the Mirai list); the password itself is redacted (:func:`credlist.redact`). Anonymous
access is reported by its own checks (``svc.ftp.anonymous``, ``svc.mqtt.anonymous``), and a
readable SNMP community by ``svc.snmp.readable`` (the rating scheme's rule: a community is an
exposed service, not a login).
"""

from __future__ import annotations

import asyncio
import ftplib
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, ClassVar

import httpx

from iotrate.models import Confidence, Finding, Transport
from iotrate.net import printable
from iotrate.ratelimit import throttle_sync

from . import credlist, rtsp, snmp
from ._io import HttpReply, base_url, http_client, http_get_following, http_request
from .base import (
    AttemptBudget,
    BudgetExhausted,
    Intrusiveness,
    LoginGate,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
)
from .credlist import Candidate
from .telnet import LoginResult, TelnetLogin

CHECK = "cred.default-password"

# Budgets (docs/lab.md, "Probes"): shell daemons on devices (BusyBox login, dropbear) do not
# lock accounts, so they get Mirai's whole top tier (the 16 pairs it weighted 4 or more of 10);
# the web account locks on many cameras after five failures, so HTTP and RTSP share four.
SHELL_BUDGET = AttemptBudget(max_attempts=16, delay_s=0.25)
SERVICE_BUDGET = AttemptBudget(max_attempts=8, delay_s=0.25)
WEB_BUDGET = AttemptBudget(max_attempts=4, delay_s=1.0)
SNMP_BUDGET = AttemptBudget(max_attempts=6, delay_s=0.25)


class Attempt(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    STOP = "stop"  # the device signalled a lockout or throttling: stop trying at once


def cred_finding(
    protocol: str,
    port: int,
    cand: Candidate,
    how: str,
    extra: dict[str, object] | None = None,
    confidence: Confidence = Confidence.CONFIRMED,
) -> Finding:
    lists = ", ".join(cand.sources)
    universal = " (a universal default, on the Mirai list)" if cand.universal else ""
    return make_finding(
        CHECK,
        f"{protocol} on port {port}: logged in as {cand.username!r} with password "
        f"{credlist.redact(cand.password)} from {lists}{universal}; {how}",
        port,
        credlist.evidence_data(protocol, port, cand, extra),
        confidence=confidence,
    )


async def walk(
    gate: LoginGate,
    cands: list[Candidate],
    attempt: Callable[[Candidate], Awaitable[Attempt]],
) -> tuple[Candidate | None, str]:
    """Try candidates in order within the gate's budget; the first that works, and why the
    walk ended ('found', 'budget', 'lockout' or 'list')."""
    for cand in cands:
        if not gate.allows(cand.username):
            if gate.spent:
                return None, "budget"
            continue
        try:
            await gate.take(cand.username)
        except BudgetExhausted:
            return None, "budget"
        result = await attempt(cand)
        if result is Attempt.OK:
            return cand, "found"
        if result is Attempt.STOP:
            return None, "lockout"
    return None, "list"


def _cands(ctx: ProbeContext, protocol: str, *, named: bool = False) -> list[Candidate]:
    cands = credlist.candidates(protocol, ctx.device.vendor, ctx.device.category)
    return [c for c in cands if c.username] if named else cands


def _port(ctx: ProbeContext) -> int:
    if ctx.service is None:  # pragma: no cover - these probes are per service
        raise NotApplicable("needs a service")
    return ctx.service.port


# --------------------------------------------------------------------------------- telnet


class TelnetDefaultPassword(Probe):
    id = "cred.telnet"
    title = "Default passwords over telnet"
    protocols = frozenset({"telnet"})
    ports = frozenset({23, 2323})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 120.0
    checks = (CHECK,)
    budget = SHELL_BUDGET
    step_timeout: ClassVar[float] = 6.0  # BusyBox login pauses 3 s before "Login incorrect"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        login = TelnetLogin(ctx.address, port, self.step_timeout)
        prompt = ""

        async def attempt(c: Candidate) -> Attempt:
            nonlocal prompt
            result = await login.attempt(c.username, c.password)
            if result is LoginResult.SHELL:
                prompt = login.transcript.strip().splitlines()[-1] if login.transcript else ""
                return Attempt.OK
            return Attempt.STOP if result is LoginResult.LOCKED else Attempt.REJECTED

        try:
            await login.start()
            found, _why = await walk(ctx.login_gate(), _cands(ctx, "telnet"), attempt)
        finally:
            await login.close()
        if found is None:
            return []
        return [
            cred_finding(
                "telnet",
                port,
                found,
                f"the device answered with a shell prompt {printable(prompt, 40)!r}",
                {"prompt": printable(prompt, 40)},
            )
        ]


# ------------------------------------------------------------------------------------ SSH


class _OnePassword:
    """asyncssh client callbacks that offer exactly one password per connection, over
    password or keyboard-interactive auth, so one attempt is one failure on the server."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.offered = False

    def factory(self) -> Any:
        import asyncssh

        outer = self

        class Client(asyncssh.SSHClient):
            def password_auth_requested(self) -> str | None:
                if outer.offered:
                    return None
                outer.offered = True
                return outer.password

            def kbdint_auth_requested(self) -> str | None:
                return None if outer.offered else ""

            def kbdint_challenge_received(
                self, name: str, instructions: str, lang: str, prompts: Any
            ) -> list[str] | None:
                if not prompts:
                    return []
                if outer.offered or len(prompts) != 1:
                    return None
                outer.offered = True
                return [outer.password]

        return Client


# Host key algorithms in OpenSSH's order of preference. asyncssh would ask for RSA first, and
# some dropbear builds offer RSA signatures without holding an RSA key, then abort the
# handshake: asking the way OpenSSH asks is what devices are tested against.
_HOSTKEY_FIRST = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
)


def _all_algorithms() -> dict[str, Any]:
    """Every algorithm asyncssh has, legacy ones included: old dropbear builds on devices
    offer nothing newer, and this probe tests passwords, not ciphers."""
    from asyncssh import compression, encryption, kex, mac, public_key

    hostkey = [a.decode() for a in public_key.get_public_key_algs()]
    ordered = [a for a in _HOSTKEY_FIRST if a in hostkey]
    return {
        "kex_algs": [a.decode() for a in kex.get_kex_algs()],
        "encryption_algs": [a.decode() for a in encryption.get_encryption_algs()],
        "mac_algs": [a.decode() for a in mac.get_mac_algs()],
        "server_host_key_algs": ordered + [a for a in hostkey if a not in ordered],
        "compression_algs": [a.decode() for a in compression.get_compression_algs()],
    }


class SshDefaultPassword(Probe):
    id = "cred.ssh"
    title = "Default passwords over SSH"
    protocols = frozenset({"ssh"})
    ports = frozenset({22})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 60.0
    checks = (CHECK,)
    budget = SHELL_BUDGET
    step_timeout: ClassVar[float] = 6.0

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        import asyncssh

        port = _port(ctx)
        algs = _all_algorithms()
        tried_any = False
        server_version = ""

        async def attempt(c: Candidate) -> Attempt:
            nonlocal tried_any, server_version
            offer = _OnePassword(c.password)
            try:
                async with asyncio.timeout(self.step_timeout * 2):
                    conn = await asyncssh.connect(
                        ctx.address,
                        port,
                        username=c.username,
                        client_factory=offer.factory(),
                        known_hosts=None,
                        config=None,
                        agent_path=None,
                        public_key_auth=False,
                        host_based_auth=False,
                        gss_auth=False,
                        gss_kex=False,
                        password_auth=True,
                        kbdint_auth=True,
                        preferred_auth="password,keyboard-interactive",
                        connect_timeout=self.step_timeout,
                        login_timeout=self.step_timeout,
                        **algs,
                    )
            except asyncssh.PermissionDenied:
                if not offer.offered and not tried_any:
                    raise NotApplicable("the SSH server offers no password login") from None
                tried_any = True
                return Attempt.REJECTED
            except asyncssh.DisconnectError as exc:
                reason = str(exc.reason).lower()
                if "too many" in reason or "locked" in reason:
                    return Attempt.STOP
                if not tried_any:
                    raise ProbeFailed(f"SSH {port}: disconnected: {exc.reason}") from exc
                return Attempt.REJECTED
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                if not tried_any:
                    raise ProbeFailed(f"SSH {port}: {type(exc).__name__}: {exc}") from exc
                return Attempt.STOP  # the server stopped answering mid-walk: do not push on
            tried_any = True
            server_version = str(conn.get_extra_info("server_version") or "")
            conn.close()
            return Attempt.OK

        found, _why = await walk(ctx.login_gate(), _cands(ctx, "ssh", named=True), attempt)
        if found is None:
            return []
        return [
            cred_finding(
                "ssh",
                port,
                found,
                "the SSH server accepted the password",
                {"server": printable(server_version, 80)},
            )
        ]


# ----------------------------------------------------------------------------------- HTTP


def _challenge(header: str) -> str | None:
    low = header.lower()
    if "digest" in low:
        return "digest"
    if "basic" in low:
        return "basic"
    return None


class HttpDefaultPassword(Probe):
    id = "cred.http"
    title = "Default passwords for HTTP basic/digest logins"
    protocols = frozenset({"http", "https"})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 45.0
    checks = (CHECK,)
    budget = WEB_BUDGET
    budget_group = "web"

    @staticmethod
    def _url(ctx: ProbeContext) -> tuple[str, bool]:
        service = ctx.service
        tls = bool(service and (service.tls or service.protocol == "https"))
        return base_url("https" if tls else "http", ctx.address, _port(ctx)) + "/", tls

    async def _challenge(
        self, ctx: ProbeContext, client: httpx.AsyncClient
    ) -> tuple[HttpReply, str]:
        url, _tls = self._url(ctx)
        first = await http_get_following(client, url, ctx.allowed_hosts)
        scheme = _challenge(first.header("www-authenticate"))
        if first.status != 401 or scheme is None:
            raise NotApplicable(f"no HTTP basic or digest login at {url} (status {first.status})")
        return first, scheme

    async def precheck(self, ctx: ProbeContext) -> None:
        async with http_client(min(8.0, ctx.timeout / 4)) as client:
            await self._challenge(ctx, client)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        _url, tls = self._url(ctx)
        step = min(8.0, ctx.timeout / 4)
        async with http_client(step) as client:
            first, scheme = await self._challenge(ctx, client)
            target = first.url
            realm = printable(first.header("www-authenticate"), 120)
            status_seen = 0

            async def attempt(c: Candidate) -> Attempt:
                nonlocal status_seen
                auth: httpx.Auth = (
                    httpx.DigestAuth(c.username, c.password)
                    if scheme == "digest"
                    else httpx.BasicAuth(c.username, c.password)
                )
                reply = await http_request(client, "GET", target, auth=auth, cap=4096)
                status_seen = reply.status
                if reply.status in (429, 423, 403, 503):
                    return Attempt.STOP  # throttled, locked or banned: stop before a lockout
                return Attempt.OK if 200 <= reply.status < 400 else Attempt.REJECTED

            found, _why = await walk(ctx.login_gate(), _cands(ctx, "http"), attempt)
        if found is None:
            return []
        return [
            cred_finding(
                f"http-{scheme}",
                port,
                found,
                f"{target} answered {status_seen} instead of 401",
                {"auth": scheme, "url": target, "challenge": realm, "tls": tls},
            )
        ]


# ------------------------------------------------------------------------------------ FTP


def _ftp_login(host: str, port: int, user: str, password: str, timeout: float) -> tuple[str, str]:
    """('ok'|'rejected'|'error', server text); blocking, run in a thread."""
    ftp = ftplib.FTP(timeout=timeout)  # noqa: S321 - testing the cleartext FTP service is the point
    try:
        throttle_sync(host)
        ftp.connect(host, port, timeout=timeout)
        reply = ftp.login(user, password)
        return "ok", reply
    except ftplib.error_perm as exc:
        return "rejected", str(exc)
    except (ftplib.Error, OSError, EOFError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    finally:
        try:
            ftp.close()
        except OSError:
            pass


class FtpDefaultPassword(Probe):
    id = "cred.ftp"
    title = "Anonymous and default-password FTP logins"
    protocols = frozenset({"ftp"})
    ports = frozenset({21})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 60.0
    checks = (CHECK, "svc.ftp.anonymous")
    budget = SERVICE_BUDGET

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(8.0, ctx.timeout / 4)
        gate = ctx.login_gate()
        findings: list[Finding] = []
        await gate.take("anonymous")
        status, text = await asyncio.to_thread(
            _ftp_login, ctx.address, port, "anonymous", "iotrate@example.invalid", step
        )
        if status == "error":
            raise ProbeFailed(f"FTP {port}: {text}")
        if status == "ok":
            findings.append(
                make_finding(
                    "svc.ftp.anonymous",
                    f"FTP on port {port} accepted user 'anonymous': {printable(text, 120)}",
                    port,
                    {"protocol": "ftp", "username": "anonymous"},
                )
            )

        async def attempt(c: Candidate) -> Attempt:
            result, _text = await asyncio.to_thread(
                _ftp_login, ctx.address, port, c.username, c.password, step
            )
            if result == "ok":
                return Attempt.OK
            return Attempt.REJECTED if result == "rejected" else Attempt.STOP

        cands = [c for c in _cands(ctx, "ftp", named=True) if c.username != "anonymous"]
        found, _why = await walk(gate, cands, attempt)
        if found is not None:
            findings.append(cred_finding("ftp", port, found, "the FTP server answered 230"))
        return findings


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
        port = _port(ctx)
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

        found, _why = await walk(gate, _cands(ctx, "mqtt", named=True), attempt)
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


# ----------------------------------------------------------------------------------- RTSP


class RtspDefaultPassword(Probe):
    id = "cred.rtsp"
    title = "Default passwords for RTSP streams"
    protocols = frozenset({"rtsp"})
    ports = frozenset({554, 8554})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 60.0
    checks = (CHECK,)
    budget = WEB_BUDGET
    budget_group = "web"

    async def _protected(self, ctx: ProbeContext) -> tuple[str, str, dict[str, str]]:
        """The first known stream path that asks for a password, and its challenge."""
        port, step = _port(ctx), min(5.0, ctx.timeout / 6)
        open_path = None
        for path in rtsp.STREAM_PATHS:
            reply, _uri = await rtsp.describe(ctx.address, port, path, step)
            if reply.status == 401:
                scheme, params = rtsp.parse_challenge(reply.header("www-authenticate"))
                if scheme:
                    return path, scheme, params
            elif reply.status == 200 and open_path is None:
                open_path = path
        raise NotApplicable(
            f"stream {open_path} plays without a password"
            if open_path
            else "no known stream path asks for a password"
        )

    async def precheck(self, ctx: ProbeContext) -> None:
        await self._protected(ctx)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(5.0, ctx.timeout / 6)
        protected = await self._protected(ctx)
        path, scheme, params = protected

        async def attempt(c: Candidate) -> Attempt:
            nonlocal params
            netloc = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
            uri = f"rtsp://{netloc}:{port}{path}"
            header = rtsp.authorization(scheme, params, "DESCRIBE", uri, c.username, c.password)
            reply, _ = await rtsp.describe(ctx.address, port, path, step, header)
            if reply.status == 200:
                return Attempt.OK
            if reply.status == 401:
                # Digest nonces may be single-use: take the fresh challenge for the next try.
                fresh = rtsp.parse_challenge(reply.header("www-authenticate"))
                if fresh[0] == scheme:
                    params = fresh[1]
                return Attempt.REJECTED
            return Attempt.STOP

        found, _why = await walk(ctx.login_gate(), _cands(ctx, "rtsp"), attempt)
        if found is None:
            return []
        return [
            cred_finding(
                "rtsp",
                port,
                found,
                f"DESCRIBE {path} answered 200 with {scheme} credentials",
                {"auth": scheme, "path": path},
            )
        ]


# ----------------------------------------------------------------------------------- SNMP


class SnmpCommunities(Probe):
    """Community strings beyond ``public`` (which the passive ``svc.snmp`` probe reads)."""

    id = "cred.snmp"
    title = "Default SNMP communities"
    protocols = frozenset({"snmp"})
    ports = frozenset({161})
    transport = Transport.UDP
    intrusiveness = Intrusiveness.LOGIN
    timeout = 30.0
    checks = ("svc.snmp.readable",)
    budget = SNMP_BUDGET

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = _port(ctx)
        step = min(1.0, ctx.timeout / 10)
        cands = [c for c in _cands(ctx, "snmp") if c.password not in ("public", "")]
        found: list[tuple[Candidate, dict[str, str]]] = []
        reply_values: dict[str, str] = {}

        async def attempt(c: Candidate) -> Attempt:
            nonlocal reply_values
            reply = await snmp.get(ctx.address, port, c.password, [snmp.SYS_DESCR], step)
            if reply is None:
                return Attempt.REJECTED
            reply_values = reply.values
            return Attempt.OK

        cand, _why = await walk(ctx.login_gate(), cands, attempt)
        if cand is not None:
            found.append((cand, reply_values))
        return [
            make_finding(
                "svc.snmp.readable",
                f"SNMP v2c on UDP {port} answered community {c.password!r}: "
                f"sysDescr {printable(values.get('sysDescr', ''), 100)!r}",
                port,
                {
                    "community": c.password,
                    "version": "2c",
                    "lists": list(c.sources),
                    "sysDescr": printable(values.get("sysDescr", ""), 200),
                },
                transport=Transport.UDP,
            )
            for c, values in found
        ]
