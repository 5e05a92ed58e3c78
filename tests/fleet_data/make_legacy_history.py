"""Writes a history database with the storage module of an older iotrate, for the migration tests.

The ``history-v1.db`` and ``history-v2.db`` fixtures next to this file were made by the
hand-rolled SQLite store (``schema_version`` 1 and 2) before the store moved to SQLAlchemy and
Alembic; ``tests/unit/storage/test_storage.py`` opens copies of them with the current store.

    git show ebfa737:iotrate/storage.py > /tmp/storage_v1.py
    python tests/fleet_data/make_legacy_history.py /tmp/storage_v1.py tests/fleet_data/history-v1.db

Run from the repository with the virtualenv's python; the old module must have ``Store`` and
``Recorder`` with the signatures the scan command used then.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from iotrate.models import (
    Device,
    Evidence,
    Finding,
    Identity,
    IdentityEvidence,
    OutcomeStatus,
    ProbeOutcome,
    Rating,
    ScanResult,
    Service,
    Severity,
    Target,
    TargetKind,
)

HOSTILE = "'); DROP TABLE scans;-- <script>alert(1)</script>"
T0 = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)
TARGET = Target(
    spec="192.0.2.0/29", kind=TargetKind.NETWORK, first="192.0.2.0", last="192.0.2.7", size=6
)


def device(address: str, mac: str | None, grade: str, name: str, checks: list[str]) -> Device:
    return Device(
        id=mac or address,
        address=address,
        addresses=[address],
        mac=mac,
        vendor="Acme",
        model=name,
        names=[name],
        services=[Service(port=80, protocol="http", banner=f"Server: {name}")],
        findings=[
            Finding(
                check=c,
                severity=Severity.HIGH,
                title=f"{c} on {name}",
                port=80,
                evidence=[Evidence(summary="seen", port=80)],
            )
            for c in checks
        ],
        outcomes=[ProbeOutcome(probe="http.basic", status=OutcomeStatus.RAN, port=80)],
        rating=Rating(grade=grade, score=4.0),  # type: ignore[arg-type]
        identity=Identity(
            category="plug",
            confidence=0.6,
            evidence=[
                IdentityEvidence(
                    source="http", field="http.title", value=name, rule="r", weight=0.6
                )
            ],
        ),
    )


def main(module_path: str, out: str) -> None:
    spec = importlib.util.spec_from_file_location("legacy_storage", module_path)
    assert spec is not None and spec.loader is not None
    legacy = importlib.util.module_from_spec(spec)
    sys.modules["legacy_storage"] = legacy  # dataclasses look their module up while built
    spec.loader.exec_module(legacy)
    path = Path(out)
    path.unlink(missing_ok=True)
    store = legacy.Store(path)
    first = ScanResult(
        scan_id="11111111-0000-4000-8000-000000000001",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=40),
        targets=[TARGET],
        devices=[
            device("192.0.2.2", "aa:bb:cc:00:00:01", "E", "plug", ["cred.telnet"]),
            device("192.0.2.3", None, "C", HOSTILE, ["tls.old"]),
        ],
    )
    store.begin_scan(first.scan_id, first.started_at, first.targets, first.policy)
    for d in first.devices:
        store.record_device(first.scan_id, d)
    store.finish_scan(first)
    # A scan killed after one device: no result JSON, rebuilt from its rows when loaded.
    killed = "22222222-0000-4000-8000-000000000002"
    store.begin_scan(killed, T0 + timedelta(days=1), [TARGET], "safe")
    store.record_device(killed, device("192.0.2.2", "aa:bb:cc:00:00:01", "B", "plug", []))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
