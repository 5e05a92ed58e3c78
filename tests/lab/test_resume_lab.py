"""kill -9 in the middle of a real scan of the reference lab, then ``scan --resume``.

The scan runs in the lab's scanner namespace with ``--concurrency 2``: its devices then finish
several seconds apart, so the kill lands after the first device is committed and before the
last one without any test hook in the scanner. The database is only read, read-only, while the
scan runs. What is stored must be whole (every device row with its services, findings,
outcomes and rating rows matching its JSON; no orphan row), and the resume must finish the
same scan: every lab device exactly once, with the grades a normal scan gives.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE

from iotrate.models import Device, ScanResult

pytestmark = pytest.mark.lab


@dataclass(frozen=True)
class Killed:
    db: Path
    scan_id: str
    stored: dict[str, Device]  # address -> the device as committed before the kill
    pid: int


def _read(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read-only, from outside the scanning process: what another program would see."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _scan(
    lab: dict[str, Any], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab["scanner"]["namespace"], IOTRATE, "scan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def killed(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Killed:
    db = tmp_path_factory.mktemp("resume") / "history.db"
    # `ip netns exec` execs the command, so this pid is the scan itself.
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab["scanner"]["namespace"], IOTRATE, "scan", lab["subnet"],
         "--db", str(db), "--concurrency", "2", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    count = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                count = _read(db, "SELECT COUNT(*) FROM devices")[0][0]
            except sqlite3.Error:  # not created yet
                count = 0
            if count:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -9, f"the scan ended before the kill: {stderr.decode()[-2000:]}"
    assert count >= 1, "no device was committed within 90 s"
    (scan_id,) = _read(db, "SELECT id FROM scans")[0]
    rows = _read(db, "SELECT address, device_json FROM devices")
    stored = {a: Device.model_validate_json(j) for a, j in rows}
    return Killed(db, scan_id, stored, proc.pid)


def test_killed_scan_is_running_by_a_dead_process_with_part_of_the_lab(
    lab: dict[str, Any], killed: Killed
) -> None:
    (status, owner, result_json) = _read(
        killed.db, "SELECT status, owner, result_json FROM scans WHERE id = ?", (killed.scan_id,)
    )[0]
    assert status == "running" and result_json is None
    assert json.loads(owner)["pid"] == killed.pid
    lab_addresses = {d["address"] for d in lab["devices"]}
    assert set(killed.stored) < lab_addresses  # some, never all: the kill landed mid-scan
    assert killed.stored


def test_every_stored_device_is_whole(killed: Killed) -> None:
    db = killed.db
    ids = dict(_read(db, "SELECT address, id FROM devices"))
    for address, device in killed.stored.items():
        dev_id = ids[address]
        assert device.address == address and device.services
        services = _read(
            db,
            "SELECT port, transport, protocol, banner FROM services WHERE device_id = ?",
            (dev_id,),
        )
        assert sorted(services, key=str) == sorted(
            ((s.port, s.transport.value, s.protocol, s.banner) for s in device.services), key=str
        )
        checks = _read(db, "SELECT check_id FROM findings WHERE device_id = ?", (dev_id,))
        assert Counter(c for (c,) in checks) == Counter(f.check for f in device.findings)
        outcomes = _read(db, "SELECT probe, status FROM outcomes WHERE device_id = ?", (dev_id,))
        assert Counter(outcomes) == Counter((o.probe, o.status.value) for o in device.outcomes)
        assert device.outcomes, "a finished device has its probe outcomes"
        rating = _read(db, "SELECT grade FROM ratings WHERE device_id = ?", (dev_id,))
        assert device.rating is not None and rating == [(device.rating.grade,)]
        evidence = _read(db, "SELECT COUNT(*) FROM observations WHERE device_id = ?", (dev_id,))
        assert device.identity is not None
        assert evidence == [(len(device.identity.evidence),)]
    for table in ("services", "findings", "outcomes", "ratings", "observations"):
        orphans = _read(
            db, f"SELECT COUNT(*) FROM {table} WHERE device_id NOT IN (SELECT id FROM devices)"
        )
        assert orphans == [(0,)], table


def test_resume_refuses_other_targets_and_options(lab: dict[str, Any], killed: Killed) -> None:
    other = _scan(lab, "10.231.250.0/24", "--resume", "--db", str(killed.db))
    assert other.returncode == 2 and "no interrupted scan of 10.231.250.0/24" in other.stderr
    prefix = killed.scan_id[:8]
    wrong = _scan(lab, prefix, "10.231.250.0/24", "--resume", "--db", str(killed.db))
    assert wrong.returncode == 2 and "--resume runs the rest of it" in wrong.stderr
    ports = _scan(lab, prefix, "--resume", "--ports", "22", "--db", str(killed.db))
    assert ports.returncode == 2 and "--ports differs" in ports.stderr
    assert "Traceback" not in other.stderr + wrong.stderr + ports.stderr
    assert _read(killed.db, "SELECT status FROM scans") == [("running",)]


def test_resume_finishes_the_same_scan(lab: dict[str, Any], killed: Killed) -> None:
    res = _scan(lab, "--resume", "--db", str(killed.db), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming scan {killed.scan_id[:8]} ({len(killed.stored)} done)" in res.stderr
    result = ScanResult.model_validate_json(res.stdout)
    assert result.scan_id == killed.scan_id
    addresses = [d.address for d in result.devices]
    assert len(addresses) == len(set(addresses))  # each device exactly once
    assert set(addresses) - {lab["scanner"]["address"]} == {d["address"] for d in lab["devices"]}
    found = {d.address: d for d in result.devices}
    for dev in lab["devices"]:  # the grades of tests/lab/test_scan_lab.py's normal scan
        rating = found[dev["address"]].rating
        assert rating is not None, dev["name"]
        if dev["name"] == "plug":
            assert rating.grade == "C", rating.reasons  # scheme 2026.3: no version seen
        else:
            assert rating.grade == dev["expected_grade"], (dev["name"], rating.reasons)
    for address, before in killed.stored.items():
        # Kept, not probed again: the first run's outcomes, to the millisecond.
        after = found[address]
        assert [(o.probe, o.duration_s) for o in after.outcomes][: len(before.outcomes)] == [
            (o.probe, o.duration_s) for o in before.outcomes
        ]
    status, stored_json = _read(
        killed.db, "SELECT status, result_json FROM scans WHERE id = ?", (killed.scan_id,)
    )[0]
    assert status == "complete"
    assert ScanResult.model_validate_json(stored_json) == result
    assert _read(killed.db, "SELECT COUNT(*) FROM scans") == [(1,)]
    again = _scan(lab, "--resume", "--db", str(killed.db))
    assert again.returncode == 2 and "no interrupted scan" in again.stderr
