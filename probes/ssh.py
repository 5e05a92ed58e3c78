"""SSH probes: the server's algorithms judged against a policy table, whether it takes
passwords, its software version and its host key.

Two probes, because they need different things from the server. The algorithm probe only reads
the identification line and the server's KEXINIT, which every server sends before any key
exchange; parsing those bytes ourselves works even with servers whose algorithms no modern
client library would agree to. The auth probe completes a key exchange with asyncssh to learn
the host key, then asks for the "none" method, whose refusal lists the methods the server
accepts; no password or key is ever sent. If a legacy-only server defeats the key exchange,
only that probe's checks become unknown.

The judgement table is data (``iotrate/data/ssh_policy.yaml``), in ssh-audit's spirit: named
reasons, worst verdict wins, an algorithm the table does not know is a warning, not a pass.

Also here: whether a factory password opens the server (LOGIN, ``cred.default-password``).
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import yaml

from iotrate import __version__
from iotrate.models import Confidence, Device, Finding
from iotrate.net import printable, tcp_connect

from ._clients.credlist import Candidate
from ._login import (
    CHECK,
    SHELL_BUDGET,
    Attempt,
    candidates_for,
    cred_finding,
    walk,
)
from .base import (
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

SUMMARY_CHECK = "ssh.summary"  # info-level carrier of banner, algorithms, host key (not in scheme)
CLIENT_IDENT = f"SSH-2.0-iotrate_{__version__}"
MAX_LINE = 255  # RFC 4253 4.2: the identification line, CR LF included
MAX_PRELUDE_LINES = 16  # servers may send text lines before their identification
MAX_PACKET = 35000  # RFC 4253 6.1
STRICT_KEX = "kex-strict-s-v00@openssh.com"
_RANK = {"pass": 0, "info": 1, "warn": 2, "fail": 3}
HOST_KEY_PREFERENCE = (
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
    "ssh-dss",
)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class SshIdent:
    """The server's identification line, RFC 4253 4.2: SSH-protoversion-softwareversion SP
    comments."""

    raw: str
    proto: str
    software: str
    comments: str | None


@dataclass(frozen=True)
class Kexinit:
    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    cipher_c2s: tuple[str, ...]
    cipher_s2c: tuple[str, ...]
    mac_c2s: tuple[str, ...]
    mac_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]
    first_kex_follows: bool

    @property
    def strict_kex(self) -> bool:
        return STRICT_KEX in self.kex


class SshProtocolError(Exception):
    """What the server sent is not SSH as RFC 4253 describes it."""


def parse_ident(line: bytes) -> SshIdent:
    text = line.rstrip(b"\r\n").decode("ascii", errors="replace")
    m = re.fullmatch(r"SSH-(?P<proto>[^-\s]+)-(?P<sw>[^\s]+)(?: (?P<comments>.*))?", text)
    if m is None:
        raise SshProtocolError(f"not an SSH identification line: {printable(text, 80)!r}")
    return SshIdent(
        raw=printable(text),
        proto=m.group("proto"),
        software=printable(m.group("sw"), 120),
        comments=printable(m.group("comments"), 120) if m.group("comments") else None,
    )


def parse_kexinit(payload: bytes) -> Kexinit:
    """Decode an SSH_MSG_KEXINIT payload (RFC 4253 7.1), message number included."""
    if not payload or payload[0] != 20:
        raise SshProtocolError(f"expected KEXINIT (20), got message {payload[:1].hex() or 'none'}")
    pos = 17  # message number + 16-byte cookie
    lists: list[tuple[str, ...]] = []
    for _ in range(10):
        if pos + 4 > len(payload):
            raise SshProtocolError("KEXINIT truncated")
        (n,) = struct.unpack(">I", payload[pos : pos + 4])
        pos += 4
        if pos + n > len(payload):
            raise SshProtocolError("KEXINIT name-list overruns the packet")
        raw = payload[pos : pos + n].decode("ascii", errors="replace")
        pos += n
        lists.append(tuple(printable(x, 80) for x in raw.split(",") if x))
    if pos + 5 > len(payload):
        raise SshProtocolError("KEXINIT truncated")
    return Kexinit(
        kex=lists[0],
        host_key=lists[1],
        cipher_c2s=lists[2],
        cipher_s2c=lists[3],
        mac_c2s=lists[4],
        mac_s2c=lists[5],
        compression_c2s=lists[6],
        compression_s2c=lists[7],
        first_kex_follows=payload[pos] != 0,
    )


def parse_packet(data: bytes) -> tuple[bytes, bytes]:
    """Split one unencrypted binary packet (RFC 4253 6) off ``data``: (payload, rest)."""
    if len(data) < 5:
        raise SshProtocolError("packet truncated")
    (length,) = struct.unpack(">I", data[:4])
    if length < 5 or length > MAX_PACKET:
        raise SshProtocolError(f"implausible packet length {length}")
    if len(data) < 4 + length:
        raise SshProtocolError("packet truncated")
    pad = data[4]
    if pad + 1 > length:
        raise SshProtocolError("padding longer than the packet")
    return data[5 : 4 + length - pad], data[4 + length :]


async def read_server_hello(
    address: str, port: int, timeout: float
) -> tuple[SshIdent, Kexinit | None, list[str]]:
    """Connect, read the identification and KEXINIT, hang up. KEXINIT is None for a server
    that speaks only SSH 1. Raises ProbeFailed when the port does not speak SSH."""
    state, conn = await tcp_connect(address, port, timeout)
    if conn is None:
        raise ProbeFailed(f"connect to {port}/tcp: {state.value}")
    prelude: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            line = b""
            for _ in range(MAX_PRELUDE_LINES + 1):
                try:
                    line = await conn.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    raise ProbeFailed("no line break in the first 64 KiB") from None
                if line.startswith(b"SSH-"):
                    break
                prelude.append(printable(line, 120))
            else:
                raise ProbeFailed("no SSH identification line")
            if len(line) > MAX_LINE:
                raise ProbeFailed("identification line longer than 255 bytes")
            ident = parse_ident(line)
            if ident.proto not in ("2.0", "1.99"):
                return ident, None, prelude
            conn.writer.write(CLIENT_IDENT.encode() + b"\r\n")
            await conn.writer.drain()
            head = await conn.reader.readexactly(5)
            (length,) = struct.unpack(">I", head[:4])
            if length < 5 or length > MAX_PACKET:
                raise ProbeFailed(f"implausible first packet length {length}")
            body = await conn.reader.readexactly(length - 1)
            payload, _ = parse_packet(head + body)
            return ident, parse_kexinit(payload), prelude
    except TimeoutError:
        raise ProbeFailed(f"no SSH identification or KEXINIT within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise ProbeFailed("the server closed the connection during the handshake") from None
    except SshProtocolError as exc:
        raise ProbeFailed(str(exc)) from None
    except OSError as exc:
        raise ProbeFailed(f"connection error: {exc}") from None
    finally:
        await conn.close()


# --------------------------------------------------------------------------- judgement


@dataclass(frozen=True)
class Judgement:
    kind: str  # kex, host_key, cipher, mac, protocol
    name: str
    verdict: str  # pass, info, warn, fail
    reason: str


@cache
def policy() -> dict[str, Any]:
    """The judgement table, validated when loaded so a typo fails loudly, not silently."""
    text = resources.files("iotrate").joinpath("data/ssh_policy.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    for kind in ("kex", "host_key", "cipher", "mac"):
        for name, entry in raw[kind].items():
            if entry.get("verdict") not in _RANK:
                raise ValueError(f"ssh_policy.yaml: {kind} {name}: bad verdict")
    return dict(raw)


def _lookup(kind: str, name: str) -> tuple[str, str]:
    table: dict[str, dict[str, Any]] = policy()[kind]
    base = name
    if kind == "host_key" and name.endswith("-cert-v01@openssh.com"):
        base = name.removesuffix("-cert-v01@openssh.com")
    entry = table.get(base)
    if entry is None:
        entry = next(
            (e for key, e in table.items() if e.get("prefix") and name.startswith(key)), None
        )
    if entry is None:
        return "warn", "unknown to iotrate's policy"
    return str(entry["verdict"]), str(entry.get("reason", ""))


def judge(ident: SshIdent, kexinit: Kexinit | None) -> list[Judgement]:
    """Every offered algorithm with its verdict, plus protocol-level findings."""
    out: list[Judgement] = []
    if ident.proto == "1.99":
        out.append(Judgement("protocol", "SSH-1", "fail", "also accepts SSH protocol 1"))
    if kexinit is None:
        out.append(Judgement("protocol", "SSH-1", "fail", "speaks only SSH protocol 1"))
        return out
    markers = set(policy().get("markers", []))
    groups = (
        ("kex", kexinit.kex),
        ("host_key", kexinit.host_key),
        ("cipher", tuple(dict.fromkeys(kexinit.cipher_c2s + kexinit.cipher_s2c))),
        ("mac", tuple(dict.fromkeys(kexinit.mac_c2s + kexinit.mac_s2c))),
    )
    for kind, names in groups:
        for name in names:
            if kind == "kex" and name in markers:
                continue
            verdict, reason = _lookup(kind, name)
            out.append(Judgement(kind, name, verdict, reason))
    ciphers = set(kexinit.cipher_s2c) | set(kexinit.cipher_c2s)
    macs = set(kexinit.mac_s2c) | set(kexinit.mac_c2s)
    cbc_etm = any(c.endswith("-cbc") for c in ciphers) and any("-etm@" in m for m in macs)
    if not kexinit.strict_kex and ("chacha20-poly1305@openssh.com" in ciphers or cbc_etm):
        out.append(
            Judgement(
                "protocol",
                "terrapin",
                "warn",
                "chacha20-poly1305 or CBC with EtM MACs without strict key exchange "
                "(Terrapin, CVE-2023-48795)",
            )
        )
    return out


def worst(judgements: Sequence[Judgement]) -> str:
    return max((j.verdict for j in judgements), key=_RANK.__getitem__, default="pass")


# --------------------------------------------------------------------------- findings


def algorithm_findings(
    ident: SshIdent, kexinit: Kexinit | None, prelude: Sequence[str], port: int, probe: str
) -> list[Finding]:
    judgements = judge(ident, kexinit)
    bad = [j for j in judgements if j.verdict in ("warn", "fail")]
    out = []
    if bad:
        overall = worst(bad)
        names = sorted({j.name for j in bad})
        out.append(
            make_finding(
                "ssh.algorithms.weak",
                f"{ident.software} on {port}/tcp offers {len(names)} weak algorithms "
                f"(worst: {overall}): " + ", ".join(names[:8]) + ("…" if len(names) > 8 else ""),
                port,
                {
                    "algorithms": names,
                    "worst": overall,
                    "details": [
                        {"kind": j.kind, "name": j.name, "verdict": j.verdict, "reason": j.reason}
                        for j in bad
                    ],
                },
                probe=probe,
            )
        )
    data: dict[str, Any] = {
        "banner": ident.raw,
        "protocol_version": ident.proto,
        "software": ident.software,
        "comments": ident.comments,
        "prelude": list(prelude[:4]),
        "worst": worst(judgements),
    }
    if kexinit is not None:
        data.update(
            {
                "kex": list(kexinit.kex),
                "host_key_algorithms": list(kexinit.host_key),
                "ciphers": list(dict.fromkeys(kexinit.cipher_s2c + kexinit.cipher_c2s)),
                "macs": list(dict.fromkeys(kexinit.mac_s2c + kexinit.mac_c2s)),
                "compression": list(kexinit.compression_s2c),
                "strict_kex": kexinit.strict_kex,
                "verdicts": {j.name: j.verdict for j in judgements},
            }
        )
    out.append(
        make_finding(
            SUMMARY_CHECK,
            f"{ident.raw} on {port}/tcp; algorithms: {worst(judgements)}"
            + ("; strict key exchange" if kexinit is not None and kexinit.strict_kex else ""),
            port,
            data,
            probe=probe,
        )
    )
    return out


# --------------------------------------------------------------------------- auth (asyncssh)


@dataclass(frozen=True)
class AuthInfo:
    methods: tuple[str, ...]
    host_key_type: str | None
    host_key_sha256: str | None  # OpenSSH style, "SHA256:..."
    host_key_md5: str | None


async def query_auth(address: str, port: int, username: str, timeout: float) -> AuthInfo:
    """Complete the key exchange and ask for "none" auth; never sends a credential."""
    import asyncssh

    captured: list[asyncssh.SSHClientConnection] = []

    class _Client(asyncssh.SSHClient):
        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            captured.append(conn)

    # Every algorithm asyncssh implements, legacy ones last: the aim is to see the host key
    # and the method list, not to protect a session. Host key types go in the order real
    # clients use, because some embedded servers advertise RSA without having an RSA key and
    # abort when a client picks it.
    def ordered(default: list[bytes], every: list[bytes], first: Sequence[str] = ()) -> list[str]:
        names = [*first, *(a.decode() for a in default), *(a.decode() for a in every)]
        known = {a.decode() for a in every}
        return [n for n in dict.fromkeys(names) if n in known and not n.startswith("gss-")]

    options = asyncssh.SSHClientConnectionOptions(
        known_hosts=None,
        username=username,
        client_keys=None,
        agent_path=None,
        password=None,
        gss_host=None,
        client_factory=_Client,
        encryption_algs=ordered(
            asyncssh.encryption.get_default_encryption_algs(),
            asyncssh.encryption.get_encryption_algs(),
        ),
        mac_algs=ordered(asyncssh.mac.get_default_mac_algs(), asyncssh.mac.get_mac_algs()),
        client_version=CLIENT_IDENT.removeprefix("SSH-2.0-"),
        connect_timeout=timeout,
        login_timeout=timeout,
        config=None,
    )
    try:
        async with asyncio.timeout(timeout):
            methods = tuple(
                await asyncssh.get_server_auth_methods(
                    address,
                    port,
                    username,
                    kex_algs=ordered(
                        asyncssh.kex.get_default_kex_algs(), asyncssh.kex.get_kex_algs()
                    ),
                    server_host_key_algs=ordered(
                        [], asyncssh.public_key.get_public_key_algs(), HOST_KEY_PREFERENCE
                    ),
                    options=options,
                )
            )
    except (asyncssh.Error, OSError, TimeoutError, ValueError) as exc:
        raise ProbeFailed(
            f"SSH key exchange or auth query failed: {exc or type(exc).__name__}"
        ) from None
    key = captured[0].get_server_host_key() if captured else None
    return AuthInfo(
        methods=methods,
        host_key_type=key.get_algorithm() if key is not None else None,
        host_key_sha256=key.get_fingerprint("sha256") if key is not None else None,
        host_key_md5=key.get_fingerprint("md5") if key is not None else None,
    )


def auth_findings(info: AuthInfo, port: int, probe: str) -> list[Finding]:
    out = []
    password = "password" in info.methods
    kbdint = "keyboard-interactive" in info.methods
    if password or kbdint:
        which = [m for m in ("password", "keyboard-interactive") if m in info.methods]
        out.append(
            make_finding(
                "ssh.password-auth",
                f"the server on {port}/tcp lists {' and '.join(which)} among its auth methods",
                port,
                {
                    "methods": list(info.methods),
                    "password": password,
                    "keyboard_interactive": kbdint,
                },
                probe=probe,
                confidence=Confidence.CONFIRMED if password else Confidence.PROBABLE,
            )
        )
    out.append(
        make_finding(
            SUMMARY_CHECK,
            f"host key {info.host_key_type} {info.host_key_sha256}; auth methods: "
            f"{', '.join(info.methods) or 'none listed'}",
            port,
            {
                "host_key_type": info.host_key_type,
                "host_key_sha256": info.host_key_sha256,
                "host_key_md5": info.host_key_md5,
                "auth_methods": list(info.methods),
                # asyncssh reports ["none"] when the server let the "none" request in: no
                # authentication at all (the session was aborted at once).
                "none_accepted": list(info.methods) == ["none"],
            },
            probe=probe,
        )
    )
    return out


# --------------------------------------------------------------------------- probes


class SshAlgorithmsProbe(Probe):
    """Banner and KEXINIT of an SSH server, judged against the policy table."""

    id: ClassVar[str] = "ssh.algorithms"
    title: ClassVar[str] = "SSH algorithms and version"
    protocols: ClassVar[frozenset[str]] = frozenset({"ssh"})
    ports: ClassVar[frozenset[int]] = frozenset({22})
    timeout: ClassVar[float] = 15.0
    checks: ClassVar[tuple[str, ...]] = ("ssh.algorithms.weak", SUMMARY_CHECK)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        assert ctx.service is not None
        port = ctx.service.port
        ident, kexinit, prelude = await read_server_hello(
            ctx.address, port, min(ctx.timeout, self.timeout)
        )
        return algorithm_findings(ident, kexinit, prelude, port, self.id)


class SshAuthProbe(Probe):
    """Host key and offered auth methods, from a key exchange and a "none" auth request."""

    id: ClassVar[str] = "ssh.auth"
    title: ClassVar[str] = "SSH host key and auth methods"
    protocols: ClassVar[frozenset[str]] = frozenset({"ssh"})
    ports: ClassVar[frozenset[int]] = frozenset({22})
    timeout: ClassVar[float] = 20.0
    # The "none" request names a user, and servers log it as a login attempt: --safe skips it.
    intrusiveness: ClassVar[Intrusiveness] = Intrusiveness.LOGIN
    checks: ClassVar[tuple[str, ...]] = ("ssh.password-auth", "ssh.hostkey.shared", SUMMARY_CHECK)
    # The user name the "none" request names; servers list their methods for any name.
    username: ClassVar[str] = "iotrate"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        assert ctx.service is not None
        port = ctx.service.port
        info = await query_auth(ctx.address, port, self.username, min(ctx.timeout, self.timeout))
        if info.host_key_sha256 is None:
            raise ProbeFailed("the key exchange completed without a host key (GSS key exchange)")
        return auth_findings(info, port, self.id)

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> dict[str, list[Finding]]:
        """Devices presenting the same host key (ETSI EN 303 645 5.4-3)."""
        seen: dict[str, list[tuple[str, int]]] = {}
        for dev in devices:
            for f in dev.findings:
                if f.check != SUMMARY_CHECK:
                    continue
                for ev in f.evidence:
                    fp = ev.data.get("host_key_sha256")
                    if isinstance(fp, str) and ev.port is not None:
                        seen.setdefault(fp, []).append((dev.id, ev.port))
        out: dict[str, list[Finding]] = {}
        for fp, where in sorted(seen.items()):
            ids = sorted({d for d, _ in where})
            if len(ids) < 2:
                continue
            for dev_id in ids:
                others = [d for d in ids if d != dev_id]
                for port in sorted({p for d, p in where if d == dev_id}):
                    out.setdefault(dev_id, []).append(
                        make_finding(
                            "ssh.hostkey.shared",
                            f"the SSH host key on {port}/tcp ({fp}) is also presented by "
                            + ", ".join(others),
                            port,
                            {"fingerprint": fp, "shared_with": others},
                            probe=cls.id,
                        )
                    )
        return out


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

        port = service_port(ctx)
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

        found, _why = await walk(ctx.login_gate(), candidates_for(ctx, "ssh", named=True), attempt)
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
