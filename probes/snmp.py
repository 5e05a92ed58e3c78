"""SNMP: readable with the well-known ``public`` community (PASSIVE), the default communities
(LOGIN: ``public``, ``private``, the vendor's and the list's), and writable (WRITE,
``--intrusive`` only: the value read is written back unchanged). A community is SNMP v1/v2c's
only credential, so an agent answering a well-known one accepts a universal default credential
(``cred.default-password``, universal: PSTI Sch.1 para 1); it is also a readable service
(``svc.snmp.readable``). A write community answering is probable write access until the write
probe confirms it."""

from __future__ import annotations

from typing import ClassVar

from iotrate.models import Confidence, Finding, Transport
from iotrate.net import printable

from ._clients import credlist, snmp
from ._clients.credlist import Candidate
from ._login import SNMP_BUDGET, candidates_for
from .base import (
    AttemptBudget,
    BudgetExhausted,
    Intrusiveness,
    Policy,
    Probe,
    ProbeContext,
    ProbeFailed,
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
    communities: ClassVar[tuple[str, ...]] = ("private", "write", "public")

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


# Communities every SNMP agent ships or documents (RFC 1157's examples, net-snmp's sample
# configuration, every vendor manual): accepting one is a universal default credential (PSTI
# Sch.1 para 1), the same on every unit, so the finding says ``universal``.
WELL_KNOWN = ("public", "private")
# Communities conventionally configured for writing (rwcommunity): an agent answering one very
# probably lets it SET as well. Confirming it needs a write, which only --intrusive makes.
WRITE_COMMUNITIES = frozenset({"private", "write", "secret", "admin", "rw", "netman"})


class SnmpCommunities(Probe):
    """Default communities: ``public`` and ``private`` first, then the device vendor's and the
    list's likeliest. Each one the agent answers is a default credential (and a readable
    service); a write community answering is probable write access until ``svc.snmp.write``
    confirms it under ``--intrusive``. Agents drop a wrong community silently and never lock
    out, so the walk does not stop at the first that works."""

    id = "cred.snmp"
    title = "Default SNMP communities"
    protocols = frozenset({"snmp"})
    ports = frozenset({161})
    transport = Transport.UDP
    intrusiveness = Intrusiveness.LOGIN
    timeout = 30.0
    checks = ("svc.snmp.readable", "cred.default-password")
    budget = SNMP_BUDGET

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(1.0, ctx.timeout / 10)
        listed = candidates_for(ctx, "snmp")
        first = [c for w in WELL_KNOWN for c in listed if c.password == w][: len(WELL_KNOWN)]
        cands = first + [c for c in listed if c.password not in WELL_KNOWN and c.password]
        gate = ctx.login_gate()
        found: list[tuple[Candidate, str, dict[str, str]]] = []
        tried = 0
        for c in cands:
            try:
                await gate.take(c.password)
            except BudgetExhausted:
                break
            tried += 1
            version = "2c"
            reply = await snmp.get(ctx.address, port, c.password, [snmp.SYS_DESCR], step)
            if reply is None and c.password in WELL_KNOWN:
                version = "1"  # v1-only agents ignore a v2c packet
                reply = await snmp.get(ctx.address, port, c.password, [snmp.SYS_DESCR], step, "1")
            if reply is not None:
                found.append((c, version, reply.values))
        if not found and tried < len(first):
            raise ProbeFailed(f"SNMP login budget spent after {tried} communities")
        return [f for c, v, values in found for f in self._findings(ctx, port, c, v, values)]

    def _findings(
        self, ctx: ProbeContext, port: int, c: Candidate, version: str, values: dict[str, str]
    ) -> list[Finding]:
        descr = printable(values.get("sysDescr", ""), 200)
        universal = c.password in WELL_KNOWN or c.universal
        cred = Candidate("", c.password, universal, c.sources, c.entry_ids, c.vendor_match)
        kind = "a universal default" if universal else "a listed default"
        out = [
            make_finding(
                "cred.default-password",
                f"SNMP v{version} on UDP {port} answered community {c.password!r}, {kind} "
                f"community (from {', '.join(c.sources) or 'the protocol'})",
                port,
                {
                    **credlist.evidence_data("snmp", port, cred),
                    "username": c.password,
                    "password": credlist.redact(c.password),
                    "version": version,
                },
                transport=Transport.UDP,
            )
        ]
        if c.password not in WELL_KNOWN[:1]:  # the passive svc.snmp probe reports public
            out.append(
                make_finding(
                    "svc.snmp.readable",
                    f"SNMP v{version} on UDP {port} answered community {c.password!r}: "
                    f"sysDescr {printable(values.get('sysDescr', ''), 100)!r}",
                    port,
                    {
                        "community": c.password,
                        "version": version,
                        "lists": list(c.sources),
                        "sysDescr": descr,
                    },
                    transport=Transport.UDP,
                )
            )
        if c.password in WRITE_COMMUNITIES and ctx.policy is not Policy.INTRUSIVE:
            out.append(
                make_finding(
                    "svc.snmp.writable",
                    f"SNMP on UDP {port} answers {c.password!r}, by convention a write "
                    "community: write access is probable (not tried; --intrusive confirms it "
                    "by writing a value back unchanged)",
                    port,
                    {"community": c.password, "object": None, "unchanged": None},
                    transport=Transport.UDP,
                    confidence=Confidence.PROBABLE,
                )
            )
        return out
