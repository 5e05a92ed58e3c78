"""SNMP v1/v2c GET and SET through pysnmp, reduced to what probes ask.

Why pysnmp rather than a hand-built BER packet (as discovery does for its one constant v3
hello): probes read several objects, decode typed values and must write a value back with its
exact type; a maintained SNMP library gets the encoding, request ids and error statuses right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iotrate.ratelimit import throttle

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
NAMES = {
    SYS_DESCR: "sysDescr",
    SYS_OBJECT_ID: "sysObjectID",
    SYS_CONTACT: "sysContact",
    SYS_NAME: "sysName",
    SYS_LOCATION: "sysLocation",
}
VERSIONS = {"1": 0, "2c": 1}  # pysnmp's mpModel numbers


@dataclass(frozen=True)
class SnmpReply:
    """An agent's answer; ``error`` is its error-status name ('' for noError)."""

    values: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    error: str = ""


async def _target(host: str, port: int, timeout: float) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import Udp6TransportTarget, UdpTransportTarget

    cls = Udp6TransportTarget if ":" in host else UdpTransportTarget
    await throttle(host)  # each request is one datagram (retries=0): one slot of the rate limit
    return await cls.create((host, port), timeout=timeout, retries=0)


async def get(
    host: str, port: int, community: str, oids: list[str], timeout: float, version: str = "2c"
) -> SnmpReply | None:
    """GET ``oids``; None when the agent does not answer (a wrong community is dropped
    silently by agents, so silence is the normal "no")."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        get_cmd,
    )

    engine = SnmpEngine()
    try:
        err_ind, err_status, _idx, binds = await get_cmd(
            engine,
            CommunityData(community, mpModel=VERSIONS[version]),
            await _target(host, port, timeout),
            ContextData(),
            *(ObjectType(ObjectIdentity(o)) for o in oids),
        )
    finally:
        engine.close_dispatcher()
    if err_ind is not None:
        return None
    values: dict[str, str] = {}
    raw: dict[str, Any] = {}
    for name, value in binds:
        oid = str(name)
        raw[oid] = value
        values[NAMES.get(oid, oid)] = value.prettyPrint()
    return SnmpReply(values, raw, "" if not err_status else err_status.prettyPrint())


async def set_same(
    host: str, port: int, community: str, oid: str, value: Any, timeout: float
) -> SnmpReply | None:
    """SET ``oid`` to ``value`` (an object read from the agent, so the type is exact)."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        set_cmd,
    )

    engine = SnmpEngine()
    try:
        err_ind, err_status, _idx, binds = await set_cmd(
            engine,
            CommunityData(community, mpModel=VERSIONS["2c"]),
            await _target(host, port, timeout),
            ContextData(),
            ObjectType(ObjectIdentity(oid), value),
        )
    finally:
        engine.close_dispatcher()
    if err_ind is not None:
        return None
    values = {NAMES.get(str(n), str(n)): v.prettyPrint() for n, v in binds}
    return SnmpReply(values, {}, "" if not err_status else err_status.prettyPrint())
