"""Scan history: an embedded SQLite database written while the scan runs.

A scan is recorded as it goes — its row first (status ``running``), then each device in its
own transaction the moment its pipeline is done, then the final result — so a scan stopped by
Ctrl-C, a crash or ``kill -9`` keeps every device it had finished. The finished result is also
kept whole as JSON, because the columns are for querying and comparing, while reports and
``iotrate diff`` need the exact result back.

Everything a device said (names, banners, titles) reaches SQL only as a bound parameter: the
scanner talks to hostile software and must not let it write the queries.

The schema is versioned: ``schema_version`` holds the number of migrations applied, and
:data:`MIGRATIONS` only ever grows, so an older database is brought forward when opened and a
newer one is refused rather than misread.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.models import Device, ScanResult, Target, ToolInfo, utcnow

ScanStatus = Literal["running", "complete", "interrupted"]

# Each entry is one migration, a list of statements; entry N takes the schema from N to N+1.
# Never edit an entry once released: add a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE scans (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'interrupted')),
            policy TEXT NOT NULL,
            targets_key TEXT NOT NULL,
            targets_json TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            discovery_mode TEXT,
            errors_json TEXT NOT NULL DEFAULT '[]',
            result_json TEXT
        )""",
        "CREATE INDEX scans_started ON scans(started_at)",
        "CREATE INDEX scans_targets ON scans(targets_key, started_at)",
        """CREATE TABLE devices (
            id INTEGER PRIMARY KEY,
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_key TEXT NOT NULL,
            address TEXT NOT NULL,
            mac TEXT,
            vendor TEXT,
            model TEXT,
            category TEXT,
            firmware TEXT,
            names_json TEXT NOT NULL,
            device_json TEXT NOT NULL,
            stored_at TEXT NOT NULL,
            UNIQUE (scan_id, address)
        )""",
        "CREATE INDEX devices_key ON devices(device_key)",
        """CREATE TABLE services (
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            port INTEGER NOT NULL,
            transport TEXT NOT NULL,
            protocol TEXT,
            banner TEXT,
            tls INTEGER,
            product TEXT,
            version TEXT
        )""",
        """CREATE TABLE observations (
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            field TEXT NOT NULL,
            value TEXT NOT NULL,
            rule TEXT NOT NULL,
            weight REAL NOT NULL
        )""",
        """CREATE TABLE findings (
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            check_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            title TEXT NOT NULL,
            port INTEGER,
            probe TEXT,
            confidence TEXT NOT NULL,
            finding_json TEXT NOT NULL
        )""",
        """CREATE TABLE outcomes (
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            probe TEXT NOT NULL,
            status TEXT NOT NULL,
            port INTEGER,
            transport TEXT,
            reason TEXT,
            duration_s REAL,
            attempts INTEGER
        )""",
        """CREATE TABLE ratings (
            scan_id TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            device_id INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
            grade TEXT,
            score REAL,
            scheme_id TEXT,
            scheme_version TEXT,
            coverage REAL,
            rating_json TEXT NOT NULL
        )""",
        "CREATE INDEX services_device ON services(device_id)",
        "CREATE INDEX observations_device ON observations(device_id)",
        "CREATE INDEX findings_device ON findings(device_id)",
        "CREATE INDEX outcomes_device ON outcomes(device_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    """``$IOTRATE_DB`` if set (tests, CI and shared hosts point it elsewhere), else the
    user's data directory, so history survives reinstalls and never lands in the cwd."""
    env = os.environ.get("IOTRATE_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("iotrate") / "iotrate.db"


def targets_key(targets: list[Target]) -> str:
    """Scans of the same targets, in whatever order they were typed, compare with each other."""
    return " ".join(sorted(t.spec for t in targets))


@dataclass(frozen=True)
class ScanSummary:
    """One stored scan as the history list shows it."""

    scan_id: str
    started_at: datetime
    finished_at: datetime | None
    status: ScanStatus
    policy: str
    targets: list[str]
    devices: int
    grades: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceRecord:
    """One device in one scan, for a device's history over time."""

    scan_id: str
    started_at: datetime
    status: ScanStatus
    device_key: str
    address: str
    grade: str | None
    score: float | None
    findings: int


def _address_order(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Store:
    """The history database. One connection; safe to read from a second one mid-scan (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (:meth:`_tx`), one per device.
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFailure(f"cannot open the history database {path}: {exc}") from exc
        try:
            with self._errors():
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3's errors become the CLI's runtime failure (exit 3) with the file named."""
        try:
            yield
        except sqlite3.Error as exc:
            raise RuntimeFailure(f"cannot use the history database {self.path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self._errors():
            row = self._conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeFailure(
                    f"the history database {self.path} has schema {current}, newer than this "
                    f"iotrate knows ({SCHEMA_VERSION}); upgrade iotrate"
                )
            for statements in MIGRATIONS[current:]:
                for sql in statements:
                    c.execute(sql)
            c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # -- writing -----------------------------------------------------------------------------

    def begin_scan(
        self, scan_id: str, started_at: datetime, targets: list[Target], policy: str
    ) -> None:
        """The scan's row, before the first packet, so even a scan killed early is listed."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO scans (id, started_at, status, policy, targets_key, targets_json,"
                " tool_version) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (
                    scan_id,
                    started_at.isoformat(),
                    policy,
                    targets_key(targets),
                    json.dumps([t.model_dump(mode="json") for t in targets]),
                    ToolInfo().version,
                ),
            )

    def record_device(self, scan_id: str, device: Device) -> None:
        """One device, committed on its own: what is stored stays stored if the scan dies."""
        with self._tx() as c:
            self._insert_device(c, scan_id, device)

    def finish_scan(self, result: ScanResult, status: ScanStatus = "complete") -> None:
        """Replace the provisional device rows with the final (correlated, rated) ones and keep
        the whole result, in one transaction so a reader never sees half of each."""
        with self._tx() as c:
            exists = c.execute("SELECT 1 FROM scans WHERE id = ?", (result.scan_id,)).fetchone()
            if exists is None:
                c.execute(
                    "INSERT INTO scans (id, started_at, status, policy, targets_key,"
                    " targets_json, tool_version) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                    (
                        result.scan_id,
                        result.started_at.isoformat(),
                        result.policy,
                        targets_key(result.targets),
                        json.dumps([t.model_dump(mode="json") for t in result.targets]),
                        result.tool.version,
                    ),
                )
            c.execute("DELETE FROM devices WHERE scan_id = ?", (result.scan_id,))
            for d in result.devices:
                self._insert_device(c, result.scan_id, d)
            c.execute(
                "UPDATE scans SET status = ?, finished_at = ?, discovery_mode = ?,"
                " errors_json = ?, result_json = ? WHERE id = ?",
                (
                    status,
                    (result.finished_at or utcnow()).isoformat(),
                    result.discovery_mode,
                    json.dumps(result.errors),
                    result.model_dump_json(),
                    result.scan_id,
                ),
            )

    def _insert_device(self, c: sqlite3.Connection, scan_id: str, d: Device) -> None:
        # A device written again (its final version at the end of the scan) replaces itself;
        # the cascade removes its services, findings, outcomes and rating with it.
        c.execute("DELETE FROM devices WHERE scan_id = ? AND address = ?", (scan_id, d.address))
        cur = c.execute(
            "INSERT INTO devices (scan_id, device_key, address, mac, vendor, model, category,"
            " firmware, names_json, device_json, stored_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                scan_id,
                d.id,
                d.address,
                d.mac,
                d.vendor,
                d.model,
                d.category,
                d.firmware,
                json.dumps(d.names),
                d.model_dump_json(),
                utcnow().isoformat(),
            ),
        )
        dev_id = cur.lastrowid
        c.executemany(
            "INSERT INTO services (scan_id, device_id, port, transport, protocol, banner, tls,"
            " product, version) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    scan_id,
                    dev_id,
                    s.port,
                    s.transport.value,
                    s.protocol,
                    s.banner,
                    None if s.tls is None else int(s.tls),
                    s.product,
                    s.version,
                )
                for s in d.services
            ],
        )
        if d.identity is not None:
            c.executemany(
                "INSERT INTO observations (scan_id, device_id, source, field, value, rule,"
                " weight) VALUES (?,?,?,?,?,?,?)",
                [
                    (scan_id, dev_id, e.source, e.field, e.value, e.rule, e.weight)
                    for e in d.identity.evidence
                ],
            )
        c.executemany(
            "INSERT INTO findings (scan_id, device_id, check_id, severity, title, port, probe,"
            " confidence, finding_json) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    scan_id,
                    dev_id,
                    f.check,
                    f.severity.value,
                    f.title,
                    f.port,
                    f.probe,
                    f.confidence.value,
                    f.model_dump_json(),
                )
                for f in d.findings
            ],
        )
        c.executemany(
            "INSERT INTO outcomes (scan_id, device_id, probe, status, port, transport, reason,"
            " duration_s, attempts) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    scan_id,
                    dev_id,
                    o.probe,
                    o.status.value,
                    o.port,
                    None if o.transport is None else o.transport.value,
                    o.reason,
                    o.duration_s,
                    o.attempts,
                )
                for o in d.outcomes
            ],
        )
        if d.rating is not None:
            r = d.rating
            c.execute(
                "INSERT INTO ratings (scan_id, device_id, grade, score, scheme_id,"
                " scheme_version, coverage, rating_json) VALUES (?,?,?,?,?,?,?,?)",
                (
                    scan_id,
                    dev_id,
                    r.grade,
                    r.score,
                    r.scheme_id,
                    r.scheme_version,
                    None if r.coverage is None else r.coverage.fraction,
                    r.model_dump_json(),
                ),
            )

    # -- reading -----------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._errors():
            cur = self._conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def scans(self) -> list[ScanSummary]:
        """Every stored scan, oldest first, with a count of devices per grade."""
        rows = self._query(
            "SELECT s.id, s.started_at, s.finished_at, s.status, s.policy, s.targets_json,"
            " COUNT(d.id) AS devices FROM scans s LEFT JOIN devices d ON d.scan_id = s.id"
            " GROUP BY s.id ORDER BY s.started_at, s.id"
        )
        grades: dict[str, dict[str, int]] = {}
        for g in self._query(
            "SELECT d.scan_id AS scan_id, COALESCE(r.grade, '?') AS grade, COUNT(*) AS n"
            " FROM devices d LEFT JOIN ratings r ON r.device_id = d.id"
            " GROUP BY d.scan_id, COALESCE(r.grade, '?')"
        ):
            grades.setdefault(g["scan_id"], {})[g["grade"]] = g["n"]
        return [
            ScanSummary(
                scan_id=r["id"],
                started_at=datetime.fromisoformat(r["started_at"]),
                finished_at=_dt(r["finished_at"]),
                status=r["status"],
                policy=r["policy"],
                targets=[t["spec"] for t in json.loads(r["targets_json"])],
                devices=r["devices"],
                grades=dict(sorted(grades.get(r["id"], {}).items())),
            )
            for r in rows
        ]

    def resolve(self, ref: str) -> str:
        """A full scan id or a unique prefix of one (as ``iotrate history`` prints them)."""
        escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            "SELECT id FROM scans WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id",
            (ref, escaped + "%"),
        )
        ids = [r["id"] for r in rows]
        if ref in ids:
            return ref
        if len(ids) == 1 and ref:
            return str(ids[0])
        if not ids or not ref:
            raise UsageError(f"no stored scan {ref!r} in {self.path} (see 'iotrate history')")
        raise UsageError(f"scan id {ref!r} is ambiguous: it starts {len(ids)} stored scans")

    def load_scan(self, scan_id: str) -> ScanResult:
        """The stored result: the exact JSON of a finished scan, or for a scan that never
        finished (killed), a result rebuilt from the devices it had committed."""
        scan_id = self.resolve(scan_id)
        (row,) = self._query("SELECT * FROM scans WHERE id = ?", (scan_id,))
        if row["result_json"]:
            return ScanResult.model_validate_json(row["result_json"])
        devices = [
            Device.model_validate_json(d["device_json"])
            for d in self._query(
                "SELECT device_json FROM devices WHERE scan_id = ? ORDER BY id", (scan_id,)
            )
        ]
        return ScanResult(
            tool=ToolInfo(version=row["tool_version"]),
            scan_id=scan_id,
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            discovery_mode=row["discovery_mode"],
            policy=row["policy"],
            targets=[Target.model_validate(t) for t in json.loads(row["targets_json"])],
            devices=devices,
            errors=json.loads(row["errors_json"]),
        )

    def status(self, scan_id: str) -> ScanStatus:
        rows = self._query("SELECT status FROM scans WHERE id = ?", (self.resolve(scan_id),))
        status: ScanStatus = rows[0]["status"]
        return status

    def previous_pair(self) -> tuple[str, str]:
        """The latest complete scan and the complete scan of the same targets before it: the
        default 'what changed since last time'. Interrupted scans are left out because their
        missing devices would read as devices gone."""
        rows = self._query(
            "SELECT id, targets_key FROM scans WHERE status = 'complete'"
            " ORDER BY started_at DESC, id DESC"
        )
        if not rows:
            raise UsageError(f"no complete scan stored in {self.path}")
        latest = rows[0]
        for r in rows[1:]:
            if r["targets_key"] == latest["targets_key"]:
                return str(r["id"]), str(latest["id"])
        raise UsageError(
            f"only one complete scan of {latest['targets_key'] or 'these targets'} is stored; "
            "scan again, or name two scans"
        )

    def device_history(self, ref: str) -> list[DeviceRecord]:
        """One device's grade over time, found by its key (MAC, else address) or address."""
        rows = self._query(
            "SELECT s.id, s.started_at, s.status, d.device_key, d.address, r.grade, r.score,"
            " (SELECT COUNT(*) FROM findings f WHERE f.device_id = d.id) AS findings"
            " FROM devices d JOIN scans s ON s.id = d.scan_id"
            " LEFT JOIN ratings r ON r.device_id = d.id"
            " WHERE d.device_key = ? COLLATE NOCASE OR d.address = ?"
            " ORDER BY s.started_at, s.id",
            (ref, ref),
        )
        return [
            DeviceRecord(
                scan_id=r["id"],
                started_at=datetime.fromisoformat(r["started_at"]),
                status=r["status"],
                device_key=r["device_key"],
                address=r["address"],
                grade=r["grade"],
                score=r["score"],
                findings=r["findings"],
            )
            for r in rows
        ]


class Recorder:
    """Records one scan while it runs: the glue between ``run_scan``'s ``on_device`` hook and
    a :class:`Store` (or none, with ``--no-history``, when it still keeps the finished devices
    in memory so an interrupted scan can print what it has)."""

    def __init__(
        self,
        store: Store | None,
        scan_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        prepare: Callable[[Device], Device] | None = None,
    ) -> None:
        self.store = store
        self.scan_id = scan_id
        self.started_at = started_at
        self.targets = targets
        self.policy = policy
        self.prepare = prepare
        self.devices: list[Device] = []
        if store is not None:
            store.begin_scan(scan_id, started_at, targets, policy)

    def __call__(self, device: Device) -> None:
        if self.prepare is not None:
            device = self.prepare(device)
        self.devices.append(device)
        if self.store is not None:
            self.store.record_device(self.scan_id, device)

    def finish(self, result: ScanResult) -> None:
        if self.store is not None:
            self.store.finish_scan(result, "complete")

    def partial(self) -> ScanResult:
        """The result so far: the devices finished before the scan was stopped."""
        return ScanResult(
            scan_id=self.scan_id,
            started_at=self.started_at,
            finished_at=utcnow(),
            policy=self.policy,
            targets=self.targets,
            devices=sorted(self.devices, key=lambda d: _address_order(d.address)),
            errors=["scan interrupted: devices still in progress were not stored"],
        )

    def interrupt(self) -> ScanResult:
        """The partial result, stored with status interrupted."""
        result = self.partial()
        if self.store is not None:
            self.store.finish_scan(result, "interrupted")
        return result
