"""Start, identify and stop the lab's daemons by PID, never by name.

A PID alone can be reused by an unrelated process after the daemon dies, so every PID is stored
with its start time (field 22 of ``/proc/PID/stat``); a PID whose start time differs is not ours
and is left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iotrate.errors import LabError

# Popen objects of daemons this process started: kept so they are reaped (no zombies) when the
# lab is torn down by the same process that built it, as in the test session.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Tracked:
    device: str
    daemon: str
    pid: int
    start_time: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tracked:
        return cls(
            device=str(data["device"]),
            daemon=str(data["daemon"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log=str(data.get("log", "")),
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


_DEAD = ("Z", "X")


def is_alive(pid: int, started: int) -> bool:
    """A zombie counts as dead: it serves nothing and only waits to be reaped."""
    fields = _stat_fields(pid)
    return fields is not None and int(fields[19]) == started and fields[0] not in _DEAD


def spawn(
    device: str, daemon: str, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[Tracked, subprocess.Popen[bytes]]:
    """Start ``argv`` in its own session with output to ``log``.

    The command line is expected to exec down to the daemon (``ip netns exec`` and the hostname
    wrapper both exec), so the PID we record is the daemon's own.
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    started = start_time(proc.pid)
    if started is None:
        proc.wait()
        raise LabError(f"{device}/{daemon} exited at once; see {log}")
    _CHILDREN[proc.pid] = proc
    return Tracked(device, daemon, proc.pid, started, str(log)), proc


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(targets: list[tuple[int, int]], grace: float = 2.0) -> None:
    """SIGTERM each ``(pid, start_time)`` still ours, SIGKILL whatever outlives ``grace``.

    The start time is checked before every signal, so a PID that died and was reused by an
    unrelated process in the meantime is never signalled.
    """
    ours = [(pid, started) for pid, started in targets if is_alive(pid, started)]
    for pid, _ in ours:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while ours and time.monotonic() < deadline:
        for pid, _ in ours:
            if pid in _CHILDREN:
                _CHILDREN[pid].poll()  # reap our own children so they stop counting as alive
        ours = [(pid, started) for pid, started in ours if is_alive(pid, started)]
        if ours:
            time.sleep(0.02)
    for pid, _ in ours:
        _signal(pid, signal.SIGKILL)
    for pid, _ in targets:
        proc = _CHILDREN.pop(pid, None)
        if proc is not None:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _CHILDREN[pid] = proc


def stop(tracked: list[Tracked]) -> None:
    terminate([(t.pid, t.start_time) for t in tracked])


def kill_pids(pids: list[int]) -> None:
    """Stop PIDs found inside a lab namespace: anything there is the lab's by construction."""
    targets = [(pid, started) for pid in pids if (started := start_time(pid)) is not None]
    terminate(targets, grace=1.0)
