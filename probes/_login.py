"""What every default-password probe shares: the attempt budgets per kind of service, the walk
through the credential list behind the service's :class:`~iotrate.probes.base.LoginGate`, and
the ``cred.default-password`` finding.

Budgets (docs/lab.md, "Probes"): shell daemons on devices (BusyBox login, dropbear) do not lock
accounts, so they get Mirai's whole top tier; the web account locks on many cameras after five
failures, so HTTP and RTSP share four. A login that works becomes a finding whose evidence names
the protocol, port, user name, the list(s) and entry ids it came from and whether it is
universal (on the Mirai list); the password itself is redacted (:func:`credlist.redact`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from iotrate.models import Confidence, Finding

from ._clients import credlist
from ._clients.credlist import Candidate
from .base import (
    AttemptBudget,
    BudgetExhausted,
    LoginGate,
    ProbeContext,
    make_finding,
)

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


def candidates_for(ctx: ProbeContext, protocol: str, *, named: bool = False) -> list[Candidate]:
    cands = credlist.candidates(protocol, ctx.device.vendor, ctx.device.category)
    return [c for c in cands if c.username] if named else cands
