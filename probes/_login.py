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
    ProbeFailed,
    make_finding,
)

CHECK = "cred.default-password"

# Budgets (docs/lab.md, "Probes"). Each login probe tries a planned list (:func:`plan_for`):
# every pair listed for the device's vendor, then the likeliest general ones (``TIERS``); the
# budget covers that list so a walk normally ends "tested", and a budget spent first is "not
# tested". Shell daemons on devices (BusyBox login, dropbear) do not lock accounts: Mirai's
# top tier (the 16 pairs it weighted 4 or more of 10). Web logins (HTTP basic/digest, forms,
# RTSP: one account) share one budget over every web surface of the device; what keeps a
# device with a lockout safe is stopping at its first sign (423/429/503, Retry-After, "locked",
# "N attempts remaining", answers slowing down), not a small fixed count.
SHELL_BUDGET = AttemptBudget(max_attempts=24, delay_s=0.25)
SERVICE_BUDGET = AttemptBudget(max_attempts=14, delay_s=0.25)  # + anonymous, + a canary
WEB_BUDGET = AttemptBudget(max_attempts=24, delay_s=0.5)
SNMP_BUDGET = AttemptBudget(max_attempts=6, delay_s=0.25)
# General pairs per surface after the vendor's own (at most VENDOR_MAX of those).
TIERS = {"telnet": 16, "ssh": 16, "http": 6, "http-form": 6, "rtsp": 6, "ftp": 6, "mqtt": 6}
VENDOR_MAX = 6


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
    """Try candidates in order within the gate's budget; the first that works and 'found', or
    None and 'list' when every candidate was refused (the gate's note then says what was
    tried, for the outcome). A walk the budget or a lockout signal ended is not a test:
    :class:`ProbeFailed`, so the check stays unknown, never passed."""
    tried = 0
    for cand in cands:
        if not gate.allows(cand.username):
            if gate.spent:
                raise ProbeFailed(_untested(gate, tried, len(cands)))
            continue
        try:
            await gate.take(cand.username)
        except BudgetExhausted:
            raise ProbeFailed(_untested(gate, tried, len(cands))) from None
        tried += 1
        result = await attempt(cand)
        if result is Attempt.OK:
            return cand, "found"
        if result is Attempt.STOP:
            gate.halt(f"stopped on a lockout or throttling signal after {tried} attempt(s)")
            raise ProbeFailed(_untested(gate, tried, len(cands)))
    sources = sorted({s for c in cands for s in c.sources})
    vendor = sum(1 for c in cands if c.vendor_match)
    gate.note = (
        f"no known default among {len(cands)} tried ({vendor} of the vendor's; "
        f"sources: {', '.join(sources) or 'none'})"
    )
    return None, "list"


def _untested(gate: LoginGate, tried: int, planned: int) -> str:
    why = gate.halted if gate.halted is not None else "the login budget was spent"
    return f"not tested: {why}; {tried} of {planned} planned candidates tried"


def candidates_for(ctx: ProbeContext, protocol: str, *, named: bool = False) -> list[Candidate]:
    """The planned list for ``protocol`` on this device: every pair of the device's vendor
    (whatever protocol its source listed it for), then the protocol's tier of likeliest
    general pairs."""
    listed = protocol if protocol != "http-form" else "http"
    cands = credlist.candidates(listed, ctx.device.vendor, ctx.device.category)
    if named:
        cands = [c for c in cands if c.username]
    if protocol == "snmp":
        return cands
    vendor = [c for c in cands if c.vendor_match][:VENDOR_MAX]
    general = [c for c in cands if not c.vendor_match][: TIERS.get(protocol, 6)]
    return vendor + general
