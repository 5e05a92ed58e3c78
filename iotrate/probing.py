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
fall over under parallel logins) and ``overall`` across the scan (the scanner's own load: most
probes wait on devices, so this is wider than politeness needs); probes that drive a heavy
engine in a worker thread share a few ``engine_slots`` (sslyze holds about 10 MB per scan
while it runs); each run has its probe's timeout, enforced with ``asyncio.timeout`` from the
moment it gets its slot. LOGIN probes share a per-service
:class:`~iotrate.probes.base.LoginGate` (or per device and group, e.g. "web" for HTTP and
RTSP, which use one account), which spaces and caps attempts (docs/lab.md, "Probes").

Order: when slots are scarce, the most telling probe runs first, scan-wide. How telling a
probe is comes from the rating scheme, not from a list here (:func:`check_stakes`): the most
score points a finding of one of its checks can cost a device, counting a cap as the points
that would take a perfect score down to the capped grade. Default-password logins, ADB, open
shells and admin pages without a login (caps at G or F) come before TLS enumeration (F at
worst), which comes before version and disclosure checks. Ties go to the shorter timeout.

Time budget (``deadline``): a probe that has not started by then is not started (outcome
``skipped_by_policy``, reason "time budget reached …: not started"); one still running is
cancelled there, cleanly, through its own ``finally`` blocks (outcome ``failed``, reason "time
budget reached …: stopped after N s"). Either way its checks count as unknown in the rating's
coverage, never as passed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from iotrate.models import (
    Device,
    Finding,
    OutcomeStatus,
    Policy,
    ProbeOutcome,
    Service,
    Transport,
)
from iotrate.probes.base import (
    ALLOWED,
    Intrusiveness,
    LoginGate,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
)
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import Scheme, finding_checks

log = logging.getLogger(__name__)

PRECHECK_TIMEOUT = 15.0
BUDGET_REASON = "time budget reached"
#: Slots per heavy engine a probe may declare (``Probe.engine``); they bound its memory.
ENGINE_SLOTS = {"sslyze": 16}
#: Worker threads for blocking libraries (sslyze, paho-mqtt, ftplib, subprocess reads).
SCAN_THREADS = 24
_POLICY_FLAG = {
    Intrusiveness.LOGIN: "it tries logins, which --safe forbids",
    Intrusiveness.WRITE: "it changes device state; only --intrusive (labs) allows that",
}


@dataclass(frozen=True)
class RunnerOptions:
    policy: Policy = Policy.DEFAULT
    per_device: int = 4
    overall: int = 128
    timeout_scale: float = 1.0  # multiplies every probe's own timeout (slow networks, tests)
    timeouts: dict[str, float] = field(default_factory=dict)  # probe id -> seconds, overrides
    # The time budget: ``time.monotonic()`` value after which nothing starts and whatever runs
    # is cancelled (the event loop's clock), and the budget in seconds, for the reasons.
    deadline: float | None = None
    budget: float | None = None
    engine_slots: dict[str, int] = field(default_factory=lambda: dict(ENGINE_SLOTS))


# --- what runs first -----------------------------------------------------------------------


def check_stakes(scheme: Scheme) -> dict[str, float]:
    """Per check id: the most score points one finding of it can cost a device.

    That is its weight, or, when a cap names it, the points a perfect score would have to lose
    to fall to the cap's grade (a cap at G "costs" everything down to the floor of band F), if
    that is more.
    """
    bands = sorted(scheme.bands, key=lambda b: -b.min_score)  # A first
    grades = [b.grade for b in bands]
    # Falling to grade g means scoring below the band just better than g.
    drop = {
        g: (scheme.score_start - bands[i - 1].min_score if i else 0.0) for i, g in enumerate(grades)
    }
    stakes = {c.id: float(c.weight) for c in scheme.checks}
    for cap in scheme.caps:
        for cid in finding_checks(cap.when):
            stakes[cid] = max(stakes.get(cid, 0.0), float(drop.get(cap.grade, 0.0)))
    return stakes


@lru_cache(maxsize=1)
def default_stakes() -> dict[str, float]:
    """The stakes under the scheme iotrate ships; empty (declaration order) if it cannot load."""
    try:
        return check_stakes(load_scheme())
    except Exception as exc:  # ordering is an optimisation: never fail a scan over it
        log.warning("probe order falls back to declaration order: %s", exc)
        return {}


def probe_priority(probe: type[Probe], stakes: dict[str, float]) -> float:
    """How telling ``probe`` is: the highest stake among the checks it evaluates."""
    return max((stakes.get(c, 0.0) for c in probe.checks), default=0.0)


def order_probes(
    probes: Iterable[type[Probe]], stakes: dict[str, float], timeout: Callable[[type[Probe]], float]
) -> list[type[Probe]]:
    """Most telling first; then the cheaper (shorter timeout); then by id, for a stable order."""
    return sorted(probes, key=lambda p: (-probe_priority(p, stakes), timeout(p), p.id))


class _Slots:
    """A semaphore that gives a freed slot to the waiter with the smallest key (the most
    telling probe scan-wide), then to the earliest; cancelled waiters are skipped."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[tuple[float, float, int], asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, key: tuple[float, float]) -> None:
        if self._free > 0 and not any(not f.done() for _, f in self._waiters):
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, ((*key, next(self._seq)), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot while being cancelled
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1


_T = TypeVar("_T")
_TRIM_EVERY_S = 1.0
#: Full garbage collections: at least this far apart, and at most this share of the time.
_COLLECT_EVERY_S = 4.0
_COLLECT_SHARE = 0.05


class _HeapTrimmer:
    """Hands memory that worker threads freed back to the system, at most once a second, and
    collects reference cycles every few seconds.

    Why trim: glibc keeps what a thread frees in that thread's arena, and returns free pages
    inside a heap only when asked (``malloc_trim``). sslyze's few hundred handshakes per port
    leave about 5 MB per scan behind that way: 60 scans grew a scan by 280 MB, of which one
    ``malloc_trim(0)`` returned 235 MB. A no-op where the C library has no ``malloc_trim``.

    Why collect: a finished sslyze scan leaves reference cycles that hold its OpenSSL objects,
    whose native memory Python does not count, so the collector's own thresholds (object counts;
    full collections are put off while the heap grows) let them pile up: a 250-host scale scan
    reached 366 MB, 264 MB with a full collection every 4 s, in the same time. A collection
    takes 0.15-0.25 s there, so the interval stretches to keep it under 5 % of the time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0
        self._last_collect = time.monotonic()
        self._collect_cost = 0.0
        self._trim: Callable[[int], int] | None = None
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._trim = libc.malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def maybe_trim(self) -> None:
        now = time.monotonic()
        if now - self._last < _TRIM_EVERY_S or not self._lock.acquire(blocking=False):
            return
        try:
            self._last = now
            every = max(_COLLECT_EVERY_S, self._collect_cost / _COLLECT_SHARE)
            if now - self._last_collect >= every:
                gc.collect()
                self._last_collect = time.monotonic()
                self._collect_cost = self._last_collect - now
            if self._trim is not None:
                self._trim(0)
        finally:
            self._lock.release()


_TRIMMER = _HeapTrimmer()


class ScanExecutor(concurrent.futures.ThreadPoolExecutor):
    """The scan's worker threads for blocking libraries, as daemon threads.

    Why not the default executor: a probe cancelled at the time budget cannot stop the blocking
    call it made in a thread (an sslyze scan, a paho session), and a standard pool's threads are
    joined when the loop closes and again at interpreter exit, so the scan would outlive its
    budget by that call. These threads are daemons, ``shutdown`` does not wait for a call still
    running (the scan has given up on it), and the pool never holds more than ``max_workers``.
    """

    def __init__(self, max_workers: int = SCAN_THREADS) -> None:
        super().__init__(max_workers=max_workers)
        self._limit = max_workers
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._started = 0
        self._mutex = threading.Lock()
        self._closed = False

    def submit(
        self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        with self._mutex:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put(job)
            if not self._idle.acquire(blocking=False) and self._started < self._limit:
                self._started += 1
                threading.Thread(target=self._work, name="iotrate-worker", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()
            _TRIMMER.maybe_trim()
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._mutex:
            self._closed = True
            for _ in range(self._started):
                self._jobs.put(None)


def _service_key(s: Service | None) -> str:
    return "device" if s is None else f"{s.transport.value}/{s.port}"


def _describe(probe: type[Probe]) -> str:
    wants = sorted(probe.protocols) + [str(p) for p in sorted(probe.ports)]
    return ", ".join(wants) or probe.transport.value


@dataclass(frozen=True)
class _Run:
    """What one run of a probe came to, before it becomes an outcome."""

    status: OutcomeStatus
    reason: str | None
    findings: list[Finding]
    duration: float
    cut: bool = False  # stopped by the scan's time budget


class ProbeRunner:
    """Runs a fixed set of probe classes against devices; one runner per scan."""

    def __init__(
        self,
        probes: Sequence[type[Probe]],
        options: RunnerOptions | None = None,
        stakes: dict[str, float] | None = None,
    ):
        self.options = options or RunnerOptions()
        self.stakes = default_stakes() if stakes is None else stakes
        self.probes = tuple(order_probes(probes, self.stakes, self.timeout_for))
        self._overall = _Slots(self.options.overall)
        self._engines = {
            name: asyncio.Semaphore(n) for name, n in self.options.engine_slots.items()
        }

    def _engine(self, probe: type[Probe]) -> asyncio.Semaphore | None:
        return self._engines.get(probe.engine) if probe.engine is not None else None

    def _budget_left(self) -> float | None:
        """Seconds until the time budget ends (may be negative); None without a budget."""
        if self.options.deadline is None:
            return None
        return self.options.deadline - time.monotonic()

    def _budget_figure(self) -> float:
        """The budget a cut outcome records (0 when the deadline came without a figure)."""
        return self.options.budget if self.options.budget is not None else 0.0

    def _budget_text(self) -> str:
        budget = self.options.budget
        return f"{BUDGET_REASON} ({budget:g} s)" if budget is not None else BUDGET_REASON

    def timeout_for(self, probe: type[Probe]) -> float:
        own = float(self.options.timeouts.get(probe.id, probe.timeout))
        return max(0.05, own * self.options.timeout_scale)

    async def probe_device(self, device: Device, *, device_level: bool = True) -> Device:
        """The device with the findings and outcomes of every probe added; without
        ``device_level``, only per-service probes (services found after a first pass)."""
        per_device = asyncio.Semaphore(self.options.per_device)
        gates: dict[tuple[str, str], LoginGate] = {}
        jobs: list[asyncio.Task[tuple[list[Finding], ProbeOutcome]]] = []
        outcomes: list[ProbeOutcome] = []
        targets: list[Service | None] = (
            [None, *device.services] if device_level else [*device.services]
        )
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
        if probe_cls.intrusiveness > ALLOWED[self.options.policy]:
            return [], await self._skipped(probe_cls, ctx, port, transport, per_device)
        engine = self._engine(probe_cls)
        key = (-probe_priority(probe_cls, self.stakes), timeout)
        if not await self._acquire(per_device, engine, key):
            return [], self._not_started(probe_cls, port, transport, gate)
        left = self._budget_left()
        try:
            if left is not None and left <= 0:  # got its slots just as the budget ran out
                return [], self._not_started(probe_cls, port, transport, gate)
            run = await self._execute(probe_cls, ctx, left)
        finally:
            self._release(per_device, engine)
        findings = [_stamp(f, probe_cls, service) for f in run.findings]
        for f in findings:
            if f.check not in probe_cls.checks:  # a summary or a probe bug; coverage ignores it
                log.info("probe %s emitted undeclared check %s", probe_cls.id, f.check)
        outcome = ProbeOutcome(
            probe=probe_cls.id,
            status=run.status,
            port=port,
            transport=transport,
            # A login probe that ran says what it tried ("no known default among N tried").
            reason=run.reason or (gate.note if gate is not None else None),
            duration_s=run.duration,
            checks=list(probe_cls.checks),
            attempts=gate.attempts if gate is not None else None,
            budget_s=self._budget_figure() if run.cut else None,
        )
        return findings, outcome

    async def _acquire(
        self,
        per_device: asyncio.Semaphore,
        engine: asyncio.Semaphore | None,
        key: tuple[float, float],
    ) -> bool:
        """Per device first, then the engine, then a scan-wide slot by priority, so a job never
        holds a scarce slot while it waits for a narrower one. False (nothing held) when the
        time budget ends first."""
        try:
            async with asyncio.timeout_at(self.options.deadline):
                await per_device.acquire()
                try:
                    if engine is not None:
                        await engine.acquire()
                    try:
                        await self._overall.acquire(key)
                    except BaseException:
                        if engine is not None:
                            engine.release()
                        raise
                except BaseException:
                    per_device.release()
                    raise
        except TimeoutError:
            return False
        return True

    def _release(self, per_device: asyncio.Semaphore, engine: asyncio.Semaphore | None) -> None:
        self._overall.release()
        if engine is not None:
            engine.release()
        per_device.release()

    async def _execute(self, probe_cls: type[Probe], ctx: ProbeContext, left: float | None) -> _Run:
        """One run of the probe within its timeout and what is left of the budget; a run that
        did not finish proves nothing either way, so it keeps no findings."""
        timeout = ctx.timeout
        started = time.monotonic()
        budget_binds = left is not None and left < timeout
        run_for = min(timeout, left) if left is not None else timeout
        deadline = asyncio.timeout(max(0.0, run_for))
        try:
            async with deadline:
                findings = list(await probe_cls().run(ctx))
            return _Run(OutcomeStatus.RAN, None, findings, round(time.monotonic() - started, 3))
        except TimeoutError:
            cut = deadline.expired() and budget_binds
            if cut:
                ran = time.monotonic() - started
                reason = f"{self._budget_text()}: stopped after {ran:.1f}s"
            elif deadline.expired():
                reason = f"timeout after {timeout:g}s"
            else:
                reason = "timed out waiting for the device (inside the probe)"
            status = OutcomeStatus.FAILED
        except ProbeFailed as exc:
            cut, status, reason = False, OutcomeStatus.FAILED, str(exc) or "probe failed"
        except NotApplicable as exc:
            cut, status = False, OutcomeStatus.NOT_APPLICABLE
            reason = str(exc) or "not applicable"
        except Exception as exc:
            log.debug("probe %s crashed on %s", probe_cls.id, ctx.address, exc_info=True)
            cut, status = False, OutcomeStatus.FAILED
            reason = f"crashed: {type(exc).__name__}: {exc}"
        return _Run(status, reason, [], round(time.monotonic() - started, 3), cut=cut)

    def _not_started(
        self,
        probe_cls: type[Probe],
        port: int | None,
        transport: Transport | None,
        gate: LoginGate | None,
    ) -> ProbeOutcome:
        """The outcome of a probe the time budget left no room for: not a negative finding."""
        return ProbeOutcome(
            probe=probe_cls.id,
            status=OutcomeStatus.SKIPPED_BY_POLICY,
            port=port,
            transport=transport,
            reason=f"{self._budget_text()}: not started",
            checks=list(probe_cls.checks),
            attempts=gate.attempts if gate is not None else None,
            budget_s=self._budget_figure(),
        )

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
        left = self._budget_left()
        if type(probe).precheck is not Probe.precheck and (left is None or left > 0):
            async with per_device:
                await self._overall.acquire((-probe_priority(probe_cls, self.stakes), ctx.timeout))
                try:
                    limit = min(ctx.timeout, PRECHECK_TIMEOUT)
                    left = self._budget_left()
                    if left is not None:
                        limit = min(limit, left)
                    async with asyncio.timeout(max(0.0, limit)):
                        await probe.precheck(ctx)
                except NotApplicable as exc:
                    status, reason = OutcomeStatus.NOT_APPLICABLE, str(exc) or "not applicable"
                except Exception as exc:  # could not tell: the skip stands
                    log.debug("precheck of %s failed: %r", probe_cls.id, exc)
                finally:
                    self._overall.release()
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


def budget_cut(device: Device) -> float | None:
    """The time budget (seconds) that cut this device's probing short, if one did: the
    ``budget_s`` the runner records on every outcome the budget cut (0.0: no budget figure).

    Results written before that field existed carry it only in the reason ("time budget
    reached (60 s): …"); those are read from the reason, in one place here."""
    for o in device.outcomes:
        if o.budget_s is not None:
            return o.budget_s
    for o in device.outcomes:
        reason = o.reason or ""
        if reason.startswith(BUDGET_REASON):
            figure = reason[len(BUDGET_REASON) :].split(")", 1)[0].strip(" (s")
            try:
                return float(figure)
            except ValueError:
                return 0.0
    return None


def parse_budget(text: str) -> float:
    """Seconds from ``--budget``: ``90``, ``90s``, ``2m``, ``1m30s``, ``1h``; ValueError if not
    a positive duration."""
    import re

    spec = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", spec)
    if not spec or parts is None or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r} (e.g. 60s, 2m, 1m30s)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("the budget must be longer than 0 s")
    return total
