"""FTP: is it open (PASSIVE: the greeting and FEAT, which tells whether it offers TLS), and
does it take an anonymous or a factory login (LOGIN)?"""

from __future__ import annotations

import asyncio
import ftplib
import re
from typing import Any

from iotrate.models import Finding
from iotrate.net import printable
from iotrate.ratelimit import throttle_sync

from ._clients.credlist import Candidate
from ._clients.io import (
    open_tcp,
    read_until_marker,
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
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

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
        port = service_port(ctx)
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
        port = service_port(ctx)
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

        cands = [c for c in candidates_for(ctx, "ftp", named=True) if c.username != "anonymous"]
        found, _why = await walk(gate, cands, attempt)
        if found is not None:
            findings.append(cred_finding("ftp", port, found, "the FTP server answered 230"))
        return findings
