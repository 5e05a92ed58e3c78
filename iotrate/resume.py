"""``iotrate scan --resume``: finish a scan that was interrupted, crashed or killed.

The history store already holds every device the scan finished (one transaction each), so
finishing the scan means running the same scan over the addresses that have no stored device
yet and appending to the same scan id. "The same scan" is the point: the first run records the
options that shape a scan (its :class:`~iotrate.scanrequest.ScanRequest`) and a resume reuses
them, refusing options or targets that would make the two halves of one result disagree.

A scan killed with ``kill -9`` is still marked ``running``; it is told from a scan really in
progress by the *owner* token its process stored: host, boot id, pid and the pid's start time,
so a reused pid or a reboot does not look alive.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotrate.errors import UsageError
from iotrate.models import Device, Target, TargetKind
from iotrate.scanrequest import OPTIONS_VERSION, stored_value
from iotrate.storage import ScanRecord, Store, default_path, targets_key

# -- who writes a running scan ---------------------------------------------------------------


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ")"
    return fields[19] if len(fields) > 19 else None


def owner_token(pid: int | None = None) -> str:
    """This process (or ``pid``) as the writer of a scan."""
    pid = os.getpid() if pid is None else pid
    return json.dumps(
        {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _start_ticks(pid)},
        sort_keys=True,
    )


def owner_alive(token: str | None) -> bool | None:
    """Whether the process that wrote ``token`` still runs: True, False, or None when this
    host cannot tell (another machine, or no token)."""
    if not token:
        return None
    try:
        owner = json.loads(token)
        host, boot, pid, start = owner["host"], owner["boot"], int(owner["pid"]), owner["start"]
    except (ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return None
    if boot is not None and boot != _boot_id():
        return False  # this machine rebooted since: nothing of that run survives
    if start is not None:
        return bool(_start_ticks(pid) == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- choosing and checking the scan to resume --------------------------------------------------


@dataclass(frozen=True)
class ResumePlan:
    """An unfinished scan, checked and ready to run the rest of."""

    record: ScanRecord
    params: dict[str, Any]  # the recorded ScanRequest options (SCAN_PARAMS), JSON types
    devices: list[Device]  # what the earlier run(s) finished

    @property
    def specs(self) -> list[str]:
        return [t.spec for t in self.record.targets]


def _why_not(rec: ScanRecord) -> str | None:
    """Why this scan cannot be resumed, or None if it can."""
    short = rec.scan_id[:8]
    if rec.status == "complete":
        return f"scan {short} is complete; there is nothing to resume"
    if rec.status == "running":
        alive = owner_alive(rec.owner)
        if alive:
            pid = json.loads(rec.owner or "{}").get("pid")
            return f"scan {short} is still running (process {pid}); wait for it or stop it first"
        if alive is None:
            return (
                f"scan {short} is marked running and was started elsewhere "
                f"({_owner_host(rec.owner)}); iotrate cannot tell whether it is still running"
            )
    opts = rec.options
    if opts is None:
        return f"scan {short} was stored by an iotrate that did not record its options"
    if opts.get("version") != OPTIONS_VERSION:
        return f"scan {short} recorded its options in a layout this iotrate does not know"
    return None


def _owner_host(token: str | None) -> str:
    try:
        return str(json.loads(token or "")["host"])
    except (ValueError, KeyError, TypeError):
        return "unknown host"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return bool(a == b)


def _pick(store: Store, args: Sequence[str]) -> tuple[ScanRecord, list[str]]:
    """The scan the positional arguments name, and the targets typed besides it."""
    if args:
        try:
            return store.scan_record(store.resolve(args[0])), list(args[1:])
        except UsageError as exc:
            if "ambiguous" in str(exc):
                raise
    candidates = store.unfinished_scans(targets_key_of(args) if args else None)
    if not candidates:
        of = f"of {' '.join(args)} " if args else ""
        hint = ""
        others = store.unfinished_scans() if args else []
        if others:
            other = store.scan_record(others[0])
            hint = (
                f"; the latest is {other.scan_id[:8]}, of {' '.join(t.spec for t in other.targets)}"
            )
        raise UsageError(f"no interrupted scan {of}in {store.path} to resume{hint}")
    reasons = []
    for sid in candidates:
        rec = store.scan_record(sid)
        why = _why_not(rec)
        if why is None:
            return rec, list(args)
        reasons.append(why)
    raise UsageError(reasons[0])


def plan_resume(store: Store, args: Sequence[str], given: Mapping[str, Any]) -> ResumePlan:
    """Pick the scan to resume and check the command line against it.

    ``args`` are the positional arguments: a stored scan id (or unique prefix) optionally
    followed by its targets; or the targets of the scan to resume (their latest unfinished
    scan); or nothing (the latest unfinished scan of any targets). ``given`` holds the options
    (:data:`~iotrate.scanrequest.SCAN_PARAMS`) the user typed explicitly; each must equal the
    recorded value, since one result cannot mix two settings.
    """
    rec, typed = _pick(store, args)
    why = _why_not(rec)
    if why:
        raise UsageError(why)
    specs = [t.spec for t in rec.targets]
    if typed and sorted(typed) != sorted(specs):
        raise UsageError(
            f"scan {rec.scan_id[:8]} was of {' '.join(specs)}, not {' '.join(typed)}; "
            "--resume runs the rest of it with its own targets"
        )
    params = dict((rec.options or {}).get("params", {}))
    for name, value in given.items():
        if name in params and not _same(stored_value(value), params[name]):
            flag = "--" + name.removeprefix("use_").replace("_", "-")
            raise UsageError(
                f"--resume runs the rest of scan {rec.scan_id[:8]} with its own options, and "
                f"{flag} differs ({params[name]!r} recorded); drop it or start a new scan"
            )
    return ResumePlan(record=rec, params=params, devices=store.load_devices(rec.scan_id))


def targets_key_of(specs: Sequence[str]) -> str:
    """The history's key for these target specs (as :func:`iotrate.storage.targets_key`)."""
    return targets_key(
        [Target(spec=s, kind=TargetKind.ADDRESS, first="", last="", size=1) for s in specs]
    )


def claim(store: Store, plan: ResumePlan) -> str:
    """Make this process the scan's writer; refuse if another resume got there first."""
    me = owner_token()
    if not store.reopen_scan(plan.record.scan_id, me, plan.record.owner):
        raise UsageError(f"scan {plan.record.scan_id[:8]} was resumed by another iotrate meanwhile")
    return me


def open_plan(
    db: Path | None, no_history: bool, args: Sequence[str], typed: Mapping[str, Any]
) -> tuple[Store, ResumePlan]:
    """The history store and the checked plan for ``iotrate scan --resume``.

    ``typed`` holds the scan options given explicitly on this command line."""
    if no_history:
        raise UsageError("--resume continues a scan stored in the history; drop --no-history")
    path = db or default_path()
    if not path.exists():
        raise UsageError(f"no history database at {path}: there is no scan to resume")
    store = Store(path)
    try:
        return store, plan_resume(store, args, typed)
    except BaseException:
        store.close()
        raise
