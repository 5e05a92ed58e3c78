"""Scan orchestration: targets -> discovery -> per device: probes -> one ScanResult.

The orchestrator owns concurrency and timeouts; stages are plain async functions that return
typed results. Every stage's output is kept even when a later stage fails, so an interrupted or
partly failed scan still reports what it saw.

It is a pipeline, not a series of sweeps: a device starts being probed as soon as discovery
knows its services (``scan_hosts(on_host=...)``), so one slow host does not hold up the probing
of the others. Cross-device correlation (shared keys) runs once, after every device is done.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from iotrate.discovery.portscan import (
    HostScan,
    ScanLimits,
    neighbour_macs,
    port_specs,
    scan_hosts,
)
from iotrate.models import Device, ScanResult, utcnow
from iotrate.netinfo import local_addresses
from iotrate.probes.base import Policy
from iotrate.probing import ProbeRunner, RunnerOptions, default_runner
from iotrate.targets import TargetSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanOptions:
    ports: str = "iot"
    limits: ScanLimits = field(default_factory=ScanLimits)
    policy: str = "default"  # a Policy value: safe, default or intrusive
    probes: bool = True
    runner: RunnerOptions | None = None  # its policy is taken from ``policy``


def _device(h: HostScan, mac: str | None) -> Device:
    return Device(
        id=mac or h.address,
        address=h.address,
        addresses=[h.address],
        mac=mac,
        sources=["tcp-connect"],
        services=h.services,
    )


async def run_scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    started = utcnow()
    specs = port_specs(options.ports)
    policy = Policy(options.policy)
    own = local_addresses()
    errors: list[str] = []
    runner: ProbeRunner | None = None
    if options.probes:
        base = options.runner or RunnerOptions()
        runner, load_errors = default_runner(
            RunnerOptions(
                policy=policy,
                per_device=base.per_device,
                overall=base.overall,
                timeout_scale=base.timeout_scale,
                timeouts=base.timeouts,
            )
        )
        errors.extend(load_errors)
    pipelines: dict[str, asyncio.Task[Device]] = {}

    async def pipeline(h: HostScan) -> Device:
        # The kernel learned the MAC while we talked to the host; read it now, not after the
        # whole sweep, so the device's id is final before any probe sees it.
        macs = await asyncio.to_thread(neighbour_macs)
        device = _device(h, macs.get(h.address))
        if runner is not None:
            device = await runner.probe_device(device)
        return device

    def on_host(h: HostScan) -> None:
        if h.alive:
            pipelines[h.address] = asyncio.create_task(pipeline(h))

    try:
        hosts = await scan_hosts(
            [h for h in targets.hosts() if h not in own], specs, options.limits, on_host=on_host
        )
    except BaseException:
        for t in pipelines.values():
            t.cancel()
        await asyncio.gather(*pipelines.values(), return_exceptions=True)
        raise
    devices: list[Device] = []
    for h in hosts:
        errors.extend(f"{h.address} {e}" for e in h.errors)
        if not h.alive:
            continue
        task = pipelines.get(h.address)
        try:
            devices.append(await task if task is not None else await pipeline(h))
        except Exception as exc:  # a pipeline bug must not lose the device discovery found
            log.debug("pipeline for %s failed", h.address, exc_info=True)
            errors.append(f"{h.address} probing failed: {type(exc).__name__}: {exc}")
            devices.append(_device(h, None))
    if runner is not None:
        devices = runner.correlate(devices)
    return ScanResult(
        scan_id=str(uuid.uuid4()),
        started_at=started,
        finished_at=utcnow(),
        discovery_mode="tcp-connect",
        policy=policy.value,
        targets=list(targets.targets),
        devices=devices,
        errors=errors,
    )


def scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    return asyncio.run(run_scan(targets, options))
