"""A scan as ``iotrate scan`` runs it: a :class:`~iotrate.scanrequest.ScanRequest` checked,
resumed if asked, recorded in the history device by device, and kept when interrupted.

The command line only prints and turns errors into exit codes; what the user must be told
before and during the scan reaches it through ``say``, one line at a time, in the order it
happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import iotrate.scan
from iotrate.errors import IotrateError, RuntimeFailure
from iotrate.models import Device, ScanResult, Target, utcnow
from iotrate.netinfo import local_subnet
from iotrate.rating import device_rater
from iotrate.resume import ResumePlan, claim, open_plan, owner_token
from iotrate.scanrequest import POLICY_EFFECTS, PROFILES, ScanRequest
from iotrate.storage import Recorder, Store, default_path
from iotrate.targets import TargetSet

INTRUSIVE_WARNING = (
    "iotrate: warning: --intrusive changes device state (UPnP port mappings, SNMP "
    "writes) and puts it back; use it only in a test lab, on devices you own"
)


class ScanInterrupted(Exception):
    """Ctrl-C during the scan: the devices finished so far, already stored when ``kept``."""

    def __init__(self, partial: ScanResult, kept: bool) -> None:
        super().__init__("interrupted")
        self.partial = partial
        self.kept = kept


def _quiet(line: str) -> None:
    pass


def scan_recorder(
    db: Path | str | None,
    no_history: bool,
    scan_id: str,
    targets: list[Target],
    policy: str,
    *,
    store: Store | None = None,
    started: datetime | None = None,
    **recorder_kw: Any,
) -> Recorder:
    """The recorder a scan hands to ``run_scan``. Each device is rated on its own as it is
    stored, so an interrupted scan still has grades; the scan's final rating (after
    cross-device correlation) replaces them when it finishes. ``store`` (already open, e.g.
    for ``--resume``) and ``recorder_kw`` (options, owner, resumed) go to the Recorder."""
    started = started or utcnow()
    if store is None and not no_history:
        store = Store(db or default_path())
    prepare = device_rater(scan_id, started)

    try:
        return Recorder(store, scan_id, started, targets, policy, prepare, **recorder_kw)
    except BaseException:
        if store is not None:
            store.close()
        raise


class ScanJob:
    """One ``iotrate scan``: :meth:`resume` (optional), :meth:`prepare`, then :meth:`run`.

    ``db``/``no_history`` say where devices are recorded as they finish (None: the default
    history). Errors are :mod:`iotrate.errors` (and OSError from the history); Ctrl-C during
    :meth:`run` becomes :class:`ScanInterrupted` once the finished devices are stored."""

    def __init__(
        self,
        request: ScanRequest,
        *,
        db: Path | None = None,
        no_history: bool = False,
        say: Callable[[str], None] = _quiet,
    ) -> None:
        self.request = request
        self.db = db
        self.no_history = no_history
        self.say = say
        self.plan: ResumePlan | None = None
        self.store: Store | None = None  # the history, opened early by a resume
        self.target_set: TargetSet | None = None

    def resume(self, args: Sequence[str], typed: Mapping[str, Any]) -> None:
        """Continue the stored scan that ``args`` name (see :func:`iotrate.resume.plan_resume`)
        with its own targets and options; ``typed`` are the options given explicitly."""
        self.store, self.plan = open_plan(self.db, self.no_history, args, typed)
        self.request = self.request.resumed(self.plan.params, self.plan.specs)

    def prepare(self) -> TargetSet:
        """Check the request and resolve its targets: every refusal comes before any packet."""
        try:
            return self._prepare()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> TargetSet:
        req = self.request
        req.check()
        if req.intrusive:
            self.say(INTRUSIVE_WARNING)
        if req.use_nmap:
            from iotrate.discovery import nmapscan  # python-nmap: only when asked for

            if not nmapscan.available():
                raise RuntimeFailure("--nmap needs the nmap program (apt-get install nmap)")
        if not req.targets:
            dev, net = local_subnet()
            self.say(f"no targets given: scanning {net} on {dev}")
            req = self.request = replace(req, targets=(str(net),))
        target_set = self.target_set = req.target_set()
        req.check_ports()
        # Say once, before anything is sent, what the scan will do to the devices.
        resuming, count = "", target_set.size
        if self.plan is not None:
            done = len(self.plan.devices)
            resuming = f"resuming scan {self.plan.record.scan_id[:8]} ({done} done); "
            count -= done
        self.say(f"iotrate: {resuming}scanning {count} address(es): {POLICY_EFFECTS[req.policy]}")
        if req.profile == "lab":
            self.say(f"iotrate: lab profile: {PROFILES['lab']}")
        return target_set

    def run(
        self,
        *,
        on_device: Callable[[Device], None] | None = None,
        save_observations: Path | None = None,
        around: AbstractContextManager[Any] | None = None,
        progress: Callable[[str, int, int, float], None] | None = None,
    ) -> ScanResult:
        """Scan, recording each device as it finishes (then ``on_device``), and store the
        result. ``around`` wraps the scan itself, e.g. a terminal's live status line;
        ``progress`` hears how a full sweep goes (host, ports done, to do, seconds left)."""
        target_set = self.target_set if self.target_set is not None else self.prepare()
        plan = self.plan
        # A Ctrl-C while the scan's row is being written waits for it, then interrupts the
        # scan like any other: a row left "running" with nothing said is what it must not do.
        with _sigint_held() as held:
            recorder = self._recorder(target_set)

        def tell(device: Device) -> None:
            recorder(device)
            if on_device is not None:
                on_device(device)

        try:
            if held[0]:
                raise KeyboardInterrupt
            options = self.request.scan_options(
                progress=progress,
                save_observations=save_observations,
                on_device=tell,
                scan_id=recorder.scan_id,
                resumed=() if plan is None else tuple(plan.devices),
                started_at=None if plan is None else plan.record.started_at,
            )
            with around if around is not None else contextlib.nullcontext():
                result = asyncio.run(iotrate.scan.run_scan(target_set, options))
        except KeyboardInterrupt:
            raise self._interrupted(recorder) from None
        except BaseException:  # a crash still marks the scan and keeps its finished devices
            with contextlib.suppress(IotrateError):
                recorder.interrupt()
            _close(recorder)
            raise
        with _sigint_held():  # the result is stored whole, or the scan says interrupted
            self._record(recorder, result)
        return result

    def close(self) -> None:
        """Close the history a resume opened, when the scan does not run after all."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def _recorder(self, target_set: TargetSet) -> Recorder:
        targets, policy = list(target_set.targets), self.request.policy.value
        if self.plan is None:
            return scan_recorder(
                self.db,
                self.no_history,
                str(uuid.uuid4()),
                targets,
                policy,
                options=self.request.record(),
                owner=owner_token(),
            )
        # The same scan id, its first start, and the devices it already has.
        assert self.store is not None  # opened by resume()
        try:
            claim(self.store, self.plan)
        except BaseException:
            self.close()
            raise
        return scan_recorder(
            self.db,
            self.no_history,
            self.plan.record.scan_id,
            targets,
            policy,
            store=self.store,
            started=self.plan.record.started_at,
            resumed=self.plan.devices,
        )

    def _interrupted(self, recorder: Recorder) -> ScanInterrupted:
        """Ctrl-C: mark the scan interrupted and keep the devices already finished.

        A second Ctrl-C while that is written (people press it again when a scan in discovery
        does not stop at once) would leave the scan ``running`` with nothing said; it waits
        until the history is written."""
        with _sigint_held():
            try:
                partial = recorder.interrupt()
            except IotrateError as exc:
                self.say(f"iotrate: warning: {exc}")
                partial = recorder.partial()
            finally:
                _close(recorder)
        return ScanInterrupted(partial, kept=recorder.store is not None)

    def _record(self, recorder: Recorder, result: ScanResult) -> None:
        """Store the final result; a history failure is a warning, never the loss of the scan."""
        try:
            recorder.finish(result)
        except IotrateError as exc:
            self.say(f"iotrate: warning: scan not saved in the history: {exc}")
        finally:
            _close(recorder)


@contextlib.contextmanager
def _sigint_held() -> Iterator[list[bool]]:
    """SIGINT noted, not raised, for the duration (main thread only: elsewhere it cannot be
    set); ``held[0]`` says whether one came."""
    held = [False]
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(_sig: int, _frame: object) -> None:
        held[0] = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _close(recorder: Recorder) -> None:
    if recorder.store is not None:
        recorder.store.close()
