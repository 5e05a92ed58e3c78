"""The probe runner: every applicable probe on every service, each run an accounted attempt.

Why a runner and not probes calling each other: concurrency, timeouts, policy and login budgets
must hold whatever a probe does, so they live here, once. For each device the runner produces
one :class:`ProbeOutcome` per (probe, service the probe applies to) — ``ran``, ``failed`` with a
reason (timeout, crash, ProbeFailed), ``not_applicable`` or ``skipped_by_policy`` — and one
``not_applicable`` outcome for a probe that applies to none of the device's services, so every
probe is accounted for and the rating can tell "tested, nothing found" from "could not test"
(unknown is never a pass). A probe that crashes or hangs costs only its own outcome. A probe
the policy forbids may still take a PASSIVE look first (``Probe.precheck``): if the service has
nothing it could test, the outcome is ``not_applicable`` rather than ``skipped_by_policy``.

Bounds: at most ``per_device`` probes run at once on one device (devices are small and some
fall over under parallel logins) and ``overall`` across the scan; each run has its probe's
timeout, enforced with ``asyncio.timeout`` from the moment it gets its slot. LOGIN probes share
a per-service :class:`~iotrate.probes.base.LoginGate` (or per device and group, e.g. "web" for
HTTP and RTSP, which use one account), which spaces and caps attempts (docs/lab.md, "Probes").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from iotrate.models import Device, Finding, OutcomeStatus, ProbeOutcome, Service, Transport
from iotrate.probes.base import (
    ALLOWED,
    Intrusiveness,
    LoginGate,
    NotApplicable,
    Policy,
    Probe,
    ProbeContext,
    ProbeFailed,
)

log = logging.getLogger(__name__)

PRECHECK_TIMEOUT = 15.0
_POLICY_FLAG = {
    Intrusiveness.LOGIN: "it tries logins, which --safe forbids",
    Intrusiveness.WRITE: "it changes device state; only --intrusive (labs) allows that",
}


@dataclass(frozen=True)
class RunnerOptions:
    policy: Policy = Policy.DEFAULT
    per_device: int = 4
    overall: int = 32
    timeout_scale: float = 1.0  # multiplies every probe's own timeout (slow networks, tests)
    timeouts: dict[str, float] = field(default_factory=dict)  # probe id -> seconds, overrides


def _service_key(s: Service | None) -> str:
    return "device" if s is None else f"{s.transport.value}/{s.port}"


def _describe(probe: type[Probe]) -> str:
    wants = sorted(probe.protocols) + [str(p) for p in sorted(probe.ports)]
    return ", ".join(wants) or probe.transport.value


class ProbeRunner:
    """Runs a fixed set of probe classes against devices; one runner per scan."""

    def __init__(self, probes: Sequence[type[Probe]], options: RunnerOptions | None = None):
        self.probes = tuple(probes)
        self.options = options or RunnerOptions()
        self._overall = asyncio.Semaphore(self.options.overall)

    def timeout_for(self, probe: type[Probe]) -> float:
        own = float(self.options.timeouts.get(probe.id, probe.timeout))
        return max(0.05, own * self.options.timeout_scale)

    async def probe_device(self, device: Device) -> Device:
        """The device with the findings and outcomes of every probe added."""
        per_device = asyncio.Semaphore(self.options.per_device)
        gates: dict[tuple[str, str], LoginGate] = {}
        jobs: list[asyncio.Task[tuple[list[Finding], ProbeOutcome]]] = []
        outcomes: list[ProbeOutcome] = []
        targets: list[Service | None] = [None, *device.services]
        for probe_cls in self.probes:
            applicable = []
            for service in targets:
                try:
                    if probe_cls().applies(device, service):
                        applicable.append(service)
                except Exception as exc:
                    outcomes.append(_failed(probe_cls, service, f"applies() crashed: {exc!r}"))
            if not applicable:
                if not any(o.probe == probe_cls.id for o in outcomes):
                    outcomes.append(
                        ProbeOutcome(
                            probe=probe_cls.id,
                            status=OutcomeStatus.NOT_APPLICABLE,
                            reason=f"no service it tests ({_describe(probe_cls)})",
                            checks=list(probe_cls.checks),
                        )
                    )
                continue
            for service in applicable:
                gate = None
                if probe_cls.intrusiveness >= Intrusiveness.LOGIN:
                    key = (probe_cls.budget_group or _service_key(service), device.id)
                    gate = gates.setdefault(key, LoginGate(probe_cls.budget)).child()
                jobs.append(
                    asyncio.create_task(self._run_one(probe_cls, device, service, gate, per_device))
                )
        findings: list[Finding] = []
        for fs, outcome in await asyncio.gather(*jobs):
            findings.extend(fs)
            outcomes.append(outcome)
        return device.model_copy(
            update={
                "findings": [*device.findings, *sorted(findings, key=_finding_key)],
                "outcomes": [*device.outcomes, *sorted(outcomes, key=_outcome_key)],
            }
        )

    async def _run_one(
        self,
        probe_cls: type[Probe],
        device: Device,
        service: Service | None,
        gate: LoginGate | None,
        per_device: asyncio.Semaphore,
    ) -> tuple[list[Finding], ProbeOutcome]:
        port = service.port if service else None
        transport = service.transport if service else None
        checks = list(probe_cls.checks)
        skip = probe_cls.intrusiveness > ALLOWED[self.options.policy]
        timeout = self.timeout_for(probe_cls)
        ctx = ProbeContext(
            address=device.address,
            device=device,
            service=service,
            policy=self.options.policy,
            timeout=timeout,
            budget=probe_cls.budget,
            allowed_hosts=frozenset({device.address, *device.addresses}),
            gate=gate,
        )
        if skip:
            return [], await self._skipped(probe_cls, ctx, port, transport, per_device)
        async with self._overall, per_device:
            started = time.monotonic()
            status, findings = OutcomeStatus.RAN, []
            reason: str | None = None
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    findings = list(await probe_cls().run(ctx))
            except TimeoutError:
                status = OutcomeStatus.FAILED
                reason = (
                    f"timeout after {timeout:g}s"
                    if deadline.expired()
                    else "timed out waiting for the device (inside the probe)"
                )
            except ProbeFailed as exc:
                status, reason = OutcomeStatus.FAILED, str(exc) or "probe failed"
            except NotApplicable as exc:
                status, reason = OutcomeStatus.NOT_APPLICABLE, str(exc) or "not applicable"
            except Exception as exc:
                log.debug("probe %s crashed on %s", probe_cls.id, device.address, exc_info=True)
                status, reason = OutcomeStatus.FAILED, f"crashed: {type(exc).__name__}: {exc}"
            duration = round(time.monotonic() - started, 3)
        if status is not OutcomeStatus.RAN:
            findings = []  # a run that did not finish proves nothing either way
        findings = [_stamp(f, probe_cls, service) for f in findings]
        for f in findings:
            if f.check not in probe_cls.checks:  # a summary or a probe bug; coverage ignores it
                log.info("probe %s emitted undeclared check %s", probe_cls.id, f.check)
        outcome = ProbeOutcome(
            probe=probe_cls.id,
            status=status,
            port=port,
            transport=transport,
            reason=reason,
            duration_s=duration,
            checks=checks,
            attempts=gate.attempts if gate is not None else None,
        )
        return findings, outcome

    async def _skipped(
        self,
        probe_cls: type[Probe],
        ctx: ProbeContext,
        port: int | None,
        transport: Transport | None,
        per_device: asyncio.Semaphore,
    ) -> ProbeOutcome:
        """The outcome of a probe the policy forbids: skipped, unless its PASSIVE precheck
        shows there is nothing to test (then not applicable, which leaves coverage alone)."""
        why = f"policy {self.options.policy.value}: {_POLICY_FLAG[probe_cls.intrusiveness]}"
        status, reason = OutcomeStatus.SKIPPED_BY_POLICY, why
        probe = probe_cls()
        if type(probe).precheck is not Probe.precheck:
            async with self._overall, per_device:
                try:
                    async with asyncio.timeout(min(ctx.timeout, PRECHECK_TIMEOUT)):
                        await probe.precheck(ctx)
                except NotApplicable as exc:
                    status, reason = OutcomeStatus.NOT_APPLICABLE, str(exc) or "not applicable"
                except Exception as exc:  # could not tell: the skip stands
                    log.debug("precheck of %s failed: %r", probe_cls.id, exc)
        return ProbeOutcome(
            probe=probe_cls.id,
            status=status,
            port=port,
            transport=transport,
            reason=reason,
            checks=list(probe_cls.checks),
        )

    def correlate(self, devices: Sequence[Device]) -> list[Device]:
        """Run every probe's ``correlate`` hook over the whole scan and attach what it found.

        A hook that crashes marks its checks failed on every device instead of passing them.
        """
        extra: dict[str, list[Finding]] = {}
        failed: dict[str, list[ProbeOutcome]] = {}
        for probe_cls in self.probes:
            if getattr(probe_cls.correlate, "__func__", None) is Probe.correlate.__func__:
                continue
            try:
                found = probe_cls.correlate(devices)
            except Exception as exc:
                log.debug("correlate of %s crashed", probe_cls.id, exc_info=True)
                for d in devices:
                    failed.setdefault(d.id, []).append(
                        _failed(probe_cls, None, f"correlation crashed: {exc!r}")
                    )
                continue
            for device_id, fs in found.items():
                extra.setdefault(device_id, []).extend(
                    f.model_copy(update={"probe": f.probe or probe_cls.id}) for f in fs
                )
        if not extra and not failed:
            return list(devices)
        return [
            d.model_copy(
                update={
                    "findings": [*d.findings, *extra.get(d.id, [])],
                    "outcomes": [*d.outcomes, *failed.get(d.id, [])],
                }
            )
            for d in devices
        ]

    async def run(self, devices: Iterable[Device]) -> list[Device]:
        """Probe ``devices`` concurrently, then correlate across them."""
        probed = await asyncio.gather(*(self.probe_device(d) for d in devices))
        return self.correlate(probed)


def _failed(probe_cls: type[Probe], service: Service | None, reason: str) -> ProbeOutcome:
    return ProbeOutcome(
        probe=probe_cls.id,
        status=OutcomeStatus.FAILED,
        port=service.port if service else None,
        transport=service.transport if service else None,
        reason=reason,
        checks=list(probe_cls.checks),
    )


def _stamp(f: Finding, probe_cls: type[Probe], service: Service | None) -> Finding:
    update: dict[str, object] = {}
    if f.probe is None:
        update["probe"] = probe_cls.id
    if f.port is None and service is not None:
        update["port"] = service.port
    return f.model_copy(update=update) if update else f


def _finding_key(f: Finding) -> tuple[str, int, str]:
    return (f.check, f.port if f.port is not None else -1, f.probe or "")


def _outcome_key(o: ProbeOutcome) -> tuple[str, int, str]:
    return (o.probe, o.port if o.port is not None else -1, o.transport.value if o.transport else "")


def default_runner(options: RunnerOptions | None = None) -> tuple[ProbeRunner, list[str]]:
    """A runner with every registered probe (built-in and plugins) and the load errors."""
    from iotrate.probes import registry

    reg = registry()
    return ProbeRunner(reg.probes, options), list(reg.errors)
