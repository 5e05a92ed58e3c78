"""Scan orchestration: targets -> discovery -> (later stages) -> one ScanResult.

The orchestrator owns concurrency and timeouts; stages are plain async functions that return
typed results. Every stage's output is kept even when a later stage fails, so an interrupted or
partly failed scan still reports what it saw.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from iotrate.discovery.portscan import ScanLimits, neighbour_macs, port_specs, scan_hosts
from iotrate.models import Device, ScanResult, utcnow
from iotrate.netinfo import local_addresses
from iotrate.targets import TargetSet


@dataclass(frozen=True)
class ScanOptions:
    ports: str = "iot"
    limits: ScanLimits = field(default_factory=ScanLimits)
    policy: str = "default"


async def run_scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    started = utcnow()
    specs = port_specs(options.ports)
    own = local_addresses()
    hosts = await scan_hosts([h for h in targets.hosts() if h not in own], specs, options.limits)
    macs = neighbour_macs()
    devices: list[Device] = []
    errors: list[str] = []
    for h in hosts:
        errors.extend(f"{h.address} {e}" for e in h.errors)
        if not h.alive:
            continue
        mac = macs.get(h.address)
        devices.append(
            Device(
                id=mac or h.address,
                address=h.address,
                addresses=[h.address],
                mac=mac,
                sources=["tcp-connect"],
                services=h.services,
            )
        )
    return ScanResult(
        scan_id=str(uuid.uuid4()),
        started_at=started,
        finished_at=utcnow(),
        discovery_mode="tcp-connect",
        policy=options.policy,
        targets=list(targets.targets),
        devices=devices,
        errors=errors,
    )


def scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    return asyncio.run(run_scan(targets, options))
