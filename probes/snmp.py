"""SNMP: readable with the well-known ``public`` community (PASSIVE), with another community
from the credential list (LOGIN), and writable (WRITE, ``--intrusive`` only: the value read is
written back unchanged). A readable community is an exposed service, not a login (the rating
scheme's rule), so every community found is a ``svc.snmp.readable`` finding."""

from __future__ import annotations

from typing import ClassVar

from iotrate.models import Finding, Transport
from iotrate.net import printable

from ._clients import snmp
from ._clients.credlist import Candidate
from ._login import (
    SNMP_BUDGET,
    Attempt,
    candidates_for,
    walk,
)
from .base import (
    AttemptBudget,
    BudgetExhausted,
    Intrusiveness,
    Probe,
    ProbeContext,
    make_finding,
    service_port,
)

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
        port = service_port(ctx)
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
        port = service_port(ctx)
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
        port = service_port(ctx)
        step = min(1.0, ctx.timeout / 10)
        cands = [c for c in candidates_for(ctx, "snmp") if c.password not in ("public", "")]
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
