"""Ctrl-C during discovery (issue 17, finding 9): the scan is kept as ``interrupted``, never
left ``running``, and the message says how to resume it. Run for real, in an empty network
namespace on its loopback (nothing can leave it), interrupted as soon as its row is in the
history, while it sweeps 200 addresses."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from support.executables import IOTRATE


def _scan_until_discovery(ns: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IOTRATE_DB": str(db)}
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, IOTRATE, "scan", "127.0.0.1-200", "--max-hosts", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; a user's Ctrl-C does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not _rows(db) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the scan's row is written just before discovery starts
    assert _rows(db), "the scan never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _rows(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute("SELECT id, status FROM scans").fetchall())
    except sqlite3.Error:  # not migrated yet
        return []


def test_ctrl_c_during_discovery_keeps_the_scan_resumable(empty_netns: str, tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    res = _scan_until_discovery(empty_netns, db)
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr
    rows = _rows(db)
    assert len(rows) == 1
    scan_id, status = rows[0]
    assert status == "interrupted"
    assert f"iotrate scan --resume {scan_id[:8]}" in res.stderr
