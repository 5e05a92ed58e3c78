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
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from iotrate.discovery import arp, nmapscan
from iotrate.discovery.observe import (
    SharedDiscovery,
    announced_ports,
    host_observations,
    identify_device,
    probe_observations,
)
from iotrate.discovery.portscan import (
    HostScan,
    PortSpec,
    ScanLimits,
    announced_specs,
    port_specs,
    scan_hosts,
)
from iotrate.discovery.sweep import Neighbours, discover
from iotrate.errors import IotrateError
from iotrate.identify.observations import Observation
from iotrate.models import Device, Policy, ScanResult, ScanScope, Transport, utcnow
from iotrate.netinfo import local_addresses
from iotrate.probing import ProbeRunner, RunnerOptions, ScanExecutor, default_runner
from iotrate.ratelimit import DEFAULT_RATE, limiting
from iotrate.rating import rate_result
from iotrate.targets import TargetSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanOptions:
    ports: str = "iot"
    profile: Literal["home", "lab"] = "home"  # recorded in the result's scope
    limits: ScanLimits = field(default_factory=ScanLimits)
    policy: Policy = Policy.DEFAULT
    probes: bool = True
    runner: RunnerOptions | None = None  # its policy is taken from ``policy``
    listen: float = 2.0  # seconds SSDP and mDNS listen for answers
    arp: bool = True  # ARP sweep when privileged
    multicast: bool = True  # SSDP and mDNS discovery
    identify: bool = True
    rate: bool = True
    save_observations: Path | None = None
    nmap: bool = False  # nmap -sV (and -O when privileged) on each device's open ports
    # Told about each device as soon as its pipeline is done (before cross-device correlation
    # and rating), so history storage keeps finished devices when the scan is interrupted.
    on_device: Callable[[Device], None] | None = None
    scan_id: str | None = None  # chosen by the caller when it records the scan as it runs
    # ``--resume``: the devices an interrupted run of this scan already finished. Their
    # addresses are not contacted again; they join the new devices for correlation and rating,
    # and the result keeps the first run's start time.
    resumed: tuple[Device, ...] = ()
    started_at: datetime | None = None
    # New connections (or UDP probes) per second to any one host, for every stage; 0: no limit.
    rate_limit: float = DEFAULT_RATE
    # --budget: seconds for the whole scan. Nothing starts after it and whatever runs is
    # cancelled; the rating shows the coverage reached (iotrate.probing, "Time budget").
    budget: float | None = None


def _device(h: HostScan, mac: str | None, sources: list[str]) -> Device:
    return Device(
        id=mac or h.address,
        address=h.address,
        addresses=[h.address],
        mac=mac,
        sources=sources,
        services=h.services,
    )


async def run_scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    with limiting(options.rate_limit):  # every connection of the scan, probes included
        return await ScanRun(targets, options).run()


class ScanRun:
    """One run of the pipeline: the state its stages share while hosts come and go.

    Discovery calls :meth:`on_host` for each host it finishes; a live host's :meth:`pipeline`
    (MAC, nmap, identification, probes) starts at once as its own task. :meth:`run` waits for
    discovery, collects the pipelines in address order and correlates and rates the result."""

    def __init__(self, targets: TargetSet, options: ScanOptions) -> None:
        self.targets = targets
        self.options = options
        self.started = options.started_at or utcnow()
        self.scan_id = options.scan_id or str(uuid.uuid4())
        self.specs = port_specs(options.ports)
        self.policy = Policy(options.policy)
        own = local_addresses()
        self.done = {d.address for d in options.resumed}
        self.hosts = [h for h in targets.hosts() if h not in own and h not in self.done]
        self.errors: list[str] = []
        self.deadline = time.monotonic() + options.budget if options.budget else None
        self.runner: ProbeRunner | None = None
        self.shared: SharedDiscovery | None = None
        # ARP answers tell which on-link hosts exist at all, so dead addresses cost nothing
        # more; the sweep fills this as replies arrive (iotrate.discovery.sweep).
        self.arp_macs: dict[str, str] = {}
        self.mode = "tcp-connect (unprivileged)"
        self.port_scanned: list[HostScan] = []  # what discovery finished, should the budget cut it
        self.observations: list[Observation] = []
        self.pipelines: dict[str, asyncio.Task[Device]] = {}

    async def run(self) -> ScanResult:
        options = self.options
        # Worker threads that a scan cut short by its budget does not wait for (ScanExecutor).
        asyncio.get_running_loop().set_default_executor(ScanExecutor())
        if options.probes:
            self.runner = self._runner()
        # Multicast discovery listens for the whole network while the sweep and probes run.
        if options.multicast and self.hosts:
            # A budget shorter than the listening window shortens it: the scan ends on time.
            listen = min(options.listen, options.budget) if options.budget else options.listen
            self.shared = SharedDiscovery(frozenset(self.hosts), listen=listen)
            self.shared.start()
        self.neighbours = Neighbours(arp.on_link_hosts(self.hosts))
        try:
            scanned = await self._discover()
        except BaseException:
            for t in self.pipelines.values():
                t.cancel()
            if self.shared is not None:
                self.shared.cancel()
            await asyncio.gather(*self.pipelines.values(), return_exceptions=True)
            raise
        devices = await self._collect(scanned)
        if self.shared is not None:
            await self.shared.results()
            self.errors.extend(self.shared.errors)
        if self.runner is not None:
            devices = self.runner.correlate(devices)
        if options.save_observations is not None:
            _save_observations(options.save_observations, self.observations, self.errors)
        return self._result(devices)

    def _runner(self) -> ProbeRunner:
        base = self.options.runner or RunnerOptions()
        runner, load_errors = default_runner(
            RunnerOptions(
                policy=self.policy,
                per_device=base.per_device,
                overall=base.overall,
                timeout_scale=base.timeout_scale,
                timeouts=base.timeouts,
                deadline=self.deadline,
                budget=self.options.budget,
                engine_slots=base.engine_slots,
            )
        )
        self.errors.extend(load_errors)
        return runner

    async def _discover(self) -> list[HostScan]:
        """Sweep and port-scan the hosts (pipelines start from :meth:`on_host` meanwhile);
        under a budget, what discovery finished when time ran out."""
        options, hosts = self.options, self.hosts
        cut = asyncio.timeout_at(self.deadline)  # no deadline: never cut
        try:
            async with cut:
                scanned, self.mode = await discover(
                    hosts,
                    self.specs,
                    options.limits,
                    self.on_host,
                    self.arp_macs,
                    options.arp,
                    scan_hosts,
                )
                # Devices that only announced themselves (SSDP/mDNS) and were not in the sweep.
                if self.shared is not None:
                    seen = {h.address for h in scanned if h.alive} | self.done
                    extra = sorted((await self.shared.addresses()) - seen)
                    if extra:
                        scanned += await scan_hosts(
                            extra,
                            self.specs,
                            options.limits,
                            on_host=self.on_host,
                            assume_alive=set(extra),
                        )
        except TimeoutError:
            if not cut.expired():
                raise
            scanned = list(self.port_scanned)
            self.mode = "arp + tcp-connect" if options.arp and arp.privileged() else self.mode
            self.errors.append(
                f"time budget reached ({options.budget:g} s) during discovery: "
                f"{len(hosts) - len(scanned)} address(es) not scanned"
            )
        return scanned

    def on_host(self, h: HostScan) -> None:
        self.port_scanned.append(h)
        if h.alive:
            self.pipelines[h.address] = asyncio.create_task(self.pipeline(h))

    async def pipeline(self, h: HostScan) -> Device:
        # The kernel learned the MAC while we talked to the host; read it now, not after the
        # whole sweep, so the device's id is final before any probe sees it.
        mac = self.arp_macs.get(h.address)
        if mac is None:
            mac = await self.neighbours.mac(h.address)
        sources = ["arp", "tcp-connect"] if h.address in self.arp_macs else ["tcp-connect"]
        device = _device(h, mac, sources)
        if self.options.nmap:
            device = await self._nmap(h, device)
        obs: list[Observation] = []
        if self.options.identify:
            device, obs = await self._first_identity(h, mac, device)
        if self.runner is not None:
            device = await self.runner.probe_device(device)
            device = await self._announced(device, self.runner)
        if self.options.identify:
            # The final identification adds what the device announced over SSDP and mDNS.
            if self.shared is not None:
                obs = obs + await self.shared.for_host(h.address)
            obs = obs + probe_observations(device)
            self.observations.extend(obs)
            try:
                device = identify_device(device, obs)
            except IotrateError as exc:
                self.errors.append(f"{h.address} identification failed: {exc}")
        self._tell(device)
        return device

    async def _announced(self, device: Device, runner: ProbeRunner) -> Device:
        """The device with the ports it announced over mDNS or UPnP that the sweep left out,
        scanned and probed too: a port the device names itself is always in scope. Probing
        does not wait for the multicast listeners; this runs after, on the new ports only."""
        if self.shared is None:
            return device
        try:
            async with asyncio.timeout_at(self.deadline):
                named = announced_ports(await self.shared.for_host(device.address))
                extra = announced_specs(named, self.specs)
                if not extra:
                    return device
                (h,) = await scan_hosts(
                    [device.address], extra, self.options.limits, assume_alive={device.address}
                )
        except TimeoutError:
            if self.deadline is None:
                raise
            return device
        known = {(s.port, s.transport) for s in device.services}
        new = [s for s in h.services if (s.port, s.transport) not in known]
        if not new:
            return device
        alone = device.model_copy(update={"services": new, "findings": [], "outcomes": []})
        more = await runner.probe_device(alone, device_level=False)
        return device.model_copy(
            update={
                "services": [*device.services, *new],
                "findings": [*device.findings, *more.findings],
                "outcomes": [*device.outcomes, *(o for o in more.outcomes if o.port is not None)],
            }
        )

    async def _nmap(self, h: HostScan, device: Device) -> Device:
        try:
            services, os_guess = await nmapscan.enrich(
                h.address, list(h.services), arp.privileged()
            )
        except IotrateError as exc:
            self.errors.append(str(exc))
            return device
        return device.model_copy(
            update={
                "services": services,
                "sources": [*device.sources, "nmap"],
                "os_guess": os_guess,
            }
        )

    async def _first_identity(
        self, h: HostScan, mac: str | None, device: Device
    ) -> tuple[Device, list[Observation]]:
        """A first identification from the host's own answers orders the probes' credential
        lists; probing starts at once, without waiting for the multicast listeners."""
        obs: list[Observation] = []
        try:
            async with asyncio.timeout_at(self.deadline):
                obs = await host_observations(h, mac)
            device = identify_device(device, obs)
        except IotrateError as exc:
            self.errors.append(f"{h.address} identification failed: {exc}")
        except TimeoutError:
            if self.deadline is None:
                raise
        return device, obs

    def _tell(self, device: Device) -> None:
        if self.options.on_device is None:
            return
        try:
            self.options.on_device(device)
        except Exception as exc:  # storage trouble must not cost the scan its result
            log.debug("on_device for %s failed", device.address, exc_info=True)
            self.errors.append(f"{device.address} not stored: {type(exc).__name__}: {exc}")

    async def _collect(self, scanned: list[HostScan]) -> list[Device]:
        """Every live host's device, in address order, with the resumed ones."""
        devices: list[Device] = list(self.options.resumed)
        for h in sorted(scanned, key=lambda x: ipaddress.ip_address(x.address)):
            self.errors.extend(f"{h.address} {e}" for e in h.errors)
            if not h.alive:
                continue
            task = self.pipelines.get(h.address)
            try:
                devices.append(await task if task is not None else await self.pipeline(h))
            except Exception as exc:  # a pipeline bug must not lose the device discovery found
                log.debug("pipeline for %s failed", h.address, exc_info=True)
                self.errors.append(f"{h.address} probing failed: {type(exc).__name__}: {exc}")
                devices.append(_device(h, self.arp_macs.get(h.address), ["tcp-connect"]))
                self._tell(devices[-1])
        if self.options.resumed:
            devices.sort(key=lambda d: ipaddress.ip_address(d.address))
        return devices

    def _scope(self, devices: list[Device]) -> ScanScope:
        return scan_scope(self.options, self.specs, devices, self.errors)

    def _result(self, devices: list[Device]) -> ScanResult:
        errors = self.errors
        result = ScanResult(
            scan_id=self.scan_id,
            started_at=self.started,
            finished_at=utcnow(),
            discovery_mode=self.mode,
            policy=self.policy.value,
            targets=list(self.targets.targets),
            devices=devices,
            errors=errors,
            vulndb_date=_vulndb_date(),
            scope=self._scope(devices),
        )
        if self.options.rate:
            try:
                result = rate_result(result)
            except IotrateError as exc:  # keep the unrated result rather than lose the scan
                result = result.model_copy(update={"errors": [*errors, f"rating failed: {exc}"]})
        return result


def _vulndb_date() -> date | None:
    """The vulnerability dataset's date for the result (issue 15): a grade is only as current
    as the data its update checks used. ``None`` when the dataset does not load (the update
    probe then failed and says why)."""
    from iotrate import vulndb

    try:
        return vulndb.load().dataset_date
    except vulndb.VulnDataError:
        return None


def scan_scope(
    options: ScanOptions, specs: Sequence[PortSpec], devices: Sequence[Device], errors: list[str]
) -> ScanScope:
    """What this scan covered, for the result: a grade says what it rests on (issue 15)."""
    tcp = sum(1 for p in specs if p.transport is Transport.TCP)
    kind: Literal["curated", "all", "custom"] = (
        "curated" if options.ports == "iot" else "all" if options.ports == "all" else "custom"
    )
    cut = any(o.budget_s is not None for d in devices for o in d.outcomes) or any(
        e.startswith("time budget reached") for e in errors
    )
    return ScanScope(
        profile=options.profile,
        tcp_ports=kind,
        tcp_port_count=tcp,
        udp=any(p.transport is Transport.UDP for p in specs),
        policy=Policy(options.policy),
        budget_s=options.budget,
        budget_cut=cut,
    )


def _save_observations(path: Path, observations: list[Observation], errors: list[str]) -> None:
    """The scan's observations as JSONL, the format ``iotrate identify`` replays."""
    try:
        with path.open("w", encoding="utf-8") as fh:
            for o in observations:
                fh.write(o.model_dump_json(exclude_none=True) + "\n")
    except OSError as exc:
        errors.append(f"cannot write observations to {path}: {exc}")


def scan(targets: TargetSet, options: ScanOptions = ScanOptions()) -> ScanResult:
    return asyncio.run(run_scan(targets, options))
