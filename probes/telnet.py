"""Telnet: is it open (PASSIVE: the negotiation and the first prompt, and whether that prompt
is already a shell), and does a factory password open it (LOGIN)?"""

from __future__ import annotations

from typing import ClassVar

from iotrate.models import Finding
from iotrate.net import printable

from ._clients.credlist import Candidate
from ._clients.telnet import (
    LOGIN_PROMPT,
    PASSWORD_PROMPT,
    SHELL_PROMPT,
    LoginResult,
    TelnetLogin,
    TelnetSession,
    ends_with,
)
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
        port = service_port(ctx)
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
        port = service_port(ctx)
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
            found, _why = await walk(ctx.login_gate(), candidates_for(ctx, "telnet"), attempt)
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
