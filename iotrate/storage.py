"""Scan history: one schema in SQLite (one machine) or PostgreSQL (a fleet's collector).

A scan is recorded as it goes — its row first (status ``running``), then each device in its
own transaction the moment its pipeline is done, then the final result — so a scan stopped by
Ctrl-C, a crash or ``kill -9`` keeps every device it had finished. The finished result is also
kept whole as JSON, because the columns are for querying and comparing, while reports and
``iotrate diff`` need the exact result back.

Everything a device said (names, banners, titles) reaches SQL only as a bound parameter: the
scanner talks to hostile software and must not let it write the queries. The queries are
SQLAlchemy Core, so the same code runs on both databases; timestamps are ISO 8601 text in UTC in
both, which sorts in time order and reads back without a timezone surprise.

The schema is versioned by Alembic (``iotrate/migrations``), run in-process when a database is
opened: an older database is brought forward, a newer one is refused rather than misread.
Databases made before Alembic (a ``schema_version`` counter) are recognised and stamped with the
matching revision; their counter is then parked at :data:`LEGACY_PARKED`, so an iotrate from
before the move refuses the database instead of writing into a schema it does not know.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.sql import Executable

from iotrate.errors import IotrateError, RuntimeFailure, UsageError
from iotrate.models import Device, ScanResult, Target, ToolInfo, utcnow

ScanStatus = Literal["running", "complete", "interrupted"]

#: The schema this iotrate writes: the number of the newest Alembic revision (``0005``).
SCHEMA_VERSION = 5
#: The revision a pre-Alembic database with ``schema_version`` N already has.
LEGACY_REVISIONS = ("0001", "0002")
#: The value the old counter is set to once Alembic manages the database: higher than any
#: hand-rolled migration count, so older iotrate releases refuse it as "newer".
LEGACY_PARKED = 1000
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x696F_7472  # PostgreSQL advisory lock key: one migrator at a time

# -- the schema at head (the migrations build it; this describes it for the queries) --------

metadata = MetaData()


def _scan_fk() -> Column[str]:
    return Column("scan_id", Text, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False)


def _scan_of_device() -> Column[str]:
    """A child row's scan: kept for queries; the device's own key already ties them."""
    return Column("scan_id", Text, nullable=False)


def _device_of_child() -> Column[int]:
    """A child row's device. No foreign key (migration 0005): the store writes a device's
    children in the device's own transaction and deletes them with it (:meth:`Store._drop`),
    and the per-row check cost the collector half of its database time."""
    return Column("device_id", Integer, nullable=False)


scans = Table(
    "scans",
    metadata,
    Column("id", Text, primary_key=True),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("status", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("targets_key", Text, nullable=False),
    Column("targets_json", Text, nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("discovery_mode", Text),
    Column("errors_json", Text, nullable=False, server_default="[]"),
    Column("result_json", Text),
    Column("options_json", Text),
    Column("site", Text, nullable=False, server_default="local"),
    Column("owner", Text),
    Column("agent_id", Text),
    CheckConstraint("status IN ('running', 'complete', 'interrupted')", name="scans_status"),
    Index("scans_started", "started_at"),
    Index("scans_targets", "targets_key", "started_at"),
    Index("scans_unfinished", "status", "targets_key", "started_at"),
    Index("scans_site", "site", "started_at"),
)
devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    _scan_fk(),
    Column("device_key", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("mac", Text),
    Column("vendor", Text),
    Column("model", Text),
    Column("category", Text),
    Column("firmware", Text),
    Column("names_json", Text, nullable=False),
    Column("device_json", Text, nullable=False),
    Column("stored_at", Text, nullable=False),
    # The idempotency key of a device within a scan: writing it again replaces it.
    UniqueConstraint("scan_id", "address", name="devices_scan_address"),
    Index("devices_key", "device_key"),
)
services = Table(
    "services",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("port", Integer, nullable=False),
    Column("transport", Text, nullable=False),
    Column("protocol", Text),
    Column("banner", Text),
    Column("tls", Integer),
    Column("product", Text),
    Column("version", Text),
    Index("services_device", "device_id"),
)
observations = Table(
    "observations",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("source", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("weight", Float, nullable=False),
    Index("observations_device", "device_id"),
)
findings = Table(
    "findings",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("check_id", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("port", Integer),
    Column("probe", Text),
    Column("confidence", Text, nullable=False),
    Column("finding_json", Text, nullable=False),
    Index("findings_device", "device_id"),
)
outcomes = Table(
    "outcomes",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("probe", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("port", Integer),
    Column("transport", Text),
    Column("reason", Text),
    Column("duration_s", Float),
    Column("attempts", Integer),
    Index("outcomes_device", "device_id"),
)
ratings = Table(
    "ratings",
    metadata,
    _scan_of_device(),
    Column("device_id", Integer, primary_key=True, autoincrement=False),
    Column("grade", Text),
    Column("score", Float),
    Column("scheme_id", Text),
    Column("scheme_version", Text),
    Column("coverage", Float),
    Column("rating_json", Text, nullable=False),
)


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


def is_url(location: str | Path) -> bool:
    """``--db`` takes a plain path (SQLite) or a URL (``sqlite:///…``, ``postgresql://…``)."""
    return isinstance(location, str) and "://" in location


def database_url(location: str | Path) -> URL:
    """The SQLAlchemy URL for ``--db``: a path is an SQLite file; ``postgresql://`` means
    PostgreSQL through psycopg 3, the driver iotrate ships with."""
    if not is_url(location):
        return URL.create("sqlite", database=str(Path(location).expanduser()))
    text_ = str(location)
    if text_.startswith("postgres://"):
        text_ = "postgresql://" + text_[len("postgres://") :]
    try:
        url = make_url(text_)
    except ArgumentError as exc:
        raise UsageError(f"not a database URL: {exc}") from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UsageError("an SQLite URL needs a file: sqlite:///PATH")
        return url.set(drivername="sqlite")
    if backend == "postgresql":
        if driver not in ("psycopg", "psycopg2") and "+" in url.drivername:
            raise UsageError(f"unsupported PostgreSQL driver {driver!r}; use postgresql+psycopg")
        return url.set(drivername="postgresql+psycopg")
    raise UsageError(
        f"unsupported database {backend!r}: use a path, sqlite:///PATH or postgresql://…"
    )


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
    site: str = "local"


@dataclass(frozen=True)
class ScanRecord:
    """One stored scan's own row, without its devices: what ``--resume`` starts from."""

    scan_id: str
    started_at: datetime
    finished_at: datetime | None
    status: ScanStatus
    policy: str
    targets_key: str
    targets: list[Target]
    options: dict[str, Any] | None  # None: stored by an iotrate that did not keep options
    site: str
    owner: str | None  # the process that writes (or wrote) the scan, as given to begin_scan
    errors: list[str]
    agent_id: str | None = None  # the fleet agent that sent the scan; None for local scans


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


@dataclass(frozen=True)
class DeviceBrief:
    """One stored device as a list shows it, read from its columns and its findings' rows
    rather than its JSON: a fleet's dashboard lists thousands of devices, and parsing each
    one's full result (some 20 kB) took most of the time of such a page."""

    scan_id: str
    device_key: str
    address: str
    mac: str | None
    vendor: str | None
    model: str | None
    category: str | None
    names: list[str]
    grade: str | None
    score: float | None
    findings: list[tuple[str, str]]  # (check id, severity) of each finding

    @classmethod
    def of(cls, device: Device, scan_id: str) -> DeviceBrief:
        """The same from a loaded device: what its rows hold."""
        r = device.rating
        return cls(
            scan_id=scan_id,
            device_key=device.id,
            address=device.address,
            mac=device.mac,
            vendor=device.vendor,
            model=device.model,
            category=device.category,
            names=list(device.names),
            grade=r.grade if r else None,
            score=r.score if r else None,
            findings=[(f.check, str(f.severity)) for f in device.findings],
        )


class ForeignScan(IotrateError):
    """A fleet message about a scan that another site or agent owns: never merged into it."""


def _address_order(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _when(value: datetime) -> str:
    """ISO text in UTC, so results from agents in other timezones still sort in time order."""
    return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()


def _no_nul(row: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL text cannot hold NUL, which a device may well send: written as ``\\x00``,
    the way banners show control bytes (the exact JSON keeps the original, escaped)."""
    return {
        k: v.replace("\x00", "\\x00") if isinstance(v, str) and "\x00" in v else v
        for k, v in row.items()
    }


def _no_nul_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        v.replace("\x00", "\\x00") if isinstance(v, str) and "\x00" in v else v for v in row
    )


# The columns of the bulk-written tables, in the order their rows are built.
_CHILD_COLUMNS: dict[Table, tuple[str, ...]] = {
    devices: ("id", "scan_id", "device_key", "address", "mac", "vendor", "model", "category",
              "firmware", "names_json", "device_json", "stored_at"),
    services: ("scan_id", "device_id", "port", "transport", "protocol", "banner", "tls",
               "product", "version"),
    observations: ("scan_id", "device_id", "source", "field", "value", "rule", "weight"),
    findings: ("scan_id", "device_id", "check_id", "severity", "title", "port", "probe",
               "confidence", "finding_json"),
    outcomes: ("scan_id", "device_id", "probe", "status", "port", "transport", "reason",
               "duration_s", "attempts"),
    ratings: ("scan_id", "device_id", "grade", "score", "scheme_id", "scheme_version",
              "coverage", "rating_json"),
}  # fmt: skip


def _child_rows(scan_id: str, dev_id: int, d: Device) -> dict[Table, list[tuple[Any, ...]]]:
    """A device's rows in the child tables, as tuples in :data:`_CHILD_COLUMNS` order.
    ``str()`` of a StrEnum member is its value, without the enum machinery's cost."""
    r = d.rating
    return {
        services: [
            (scan_id, dev_id, s.port, str(s.transport), s.protocol, s.banner,
             None if s.tls is None else int(s.tls), s.product, s.version)
            for s in d.services
        ],
        observations: [
            (scan_id, dev_id, e.source, e.field, e.value, e.rule, e.weight)
            for e in (d.identity.evidence if d.identity is not None else [])
        ],
        findings: [
            (scan_id, dev_id, f.check, str(f.severity), f.title, f.port, f.probe,
             str(f.confidence), f.model_dump_json())
            for f in d.findings
        ],
        outcomes: [
            (scan_id, dev_id, o.probe, str(o.status), o.port,
             None if o.transport is None else str(o.transport), o.reason, o.duration_s,
             o.attempts)
            for o in d.outcomes
        ],
        ratings: []
        if r is None
        else [
            (scan_id, dev_id, r.grade, r.score, r.scheme_id, r.scheme_version,
             None if r.coverage is None else r.coverage.fraction, r.model_dump_json())
        ],
    }  # fmt: skip


def _targets_json(targets: Sequence[Target]) -> str:
    return json.dumps([t.model_dump(mode="json") for t in targets])


@cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return frozenset(r.revision for r in script.walk_revisions())


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    engine = create_engine(
        url,
        # Several threads (the dashboard's) may use the store; the pool hands each connection
        # to one at a time.
        connect_args={"timeout": 10, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off: ``_on_begin`` says BEGIN, so
        # a writer takes the lock up front (IMMEDIATE) instead of failing to upgrade it later.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("iotrate_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Store:
    """The history database: a path or ``sqlite:///`` URL (local), or ``postgresql://`` (a
    fleet's collector). Safe to read from another connection mid-scan (WAL on SQLite)."""

    def __init__(self, location: Path | str) -> None:
        self.url = database_url(location)
        self.dialect = self.url.get_backend_name()
        #: Where the data is, for messages: the file, or the URL without its password.
        self.path: Path | str = (
            Path(self.url.database or "")
            if self.dialect == "sqlite"
            else self.url.render_as_string(hide_password=True)
        )
        self._local = threading.local()  # each thread's open batch, if any
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RuntimeFailure(
                    f"cannot open the history database {self.path}: {exc}"
                ) from exc
        self._engine = _make_engine(self.url)
        try:
            with self._errors():
                self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self._engine.dispose()

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
        """Database errors become the CLI's runtime failure (exit 3) with the database named."""
        try:
            yield
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise RuntimeFailure(
                f"cannot use the history database {self.path}: {detail[0] if detail else exc}"
            ) from exc

    @property
    def _batch(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "batch", None)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction, or the open :meth:`batch`'s."""
        if self._batch is not None:
            yield self._batch
            return
        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(iotrate_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside goes into one transaction, committed at the end. The collector
        stores a batch of messages this way and acknowledges them only after the commit. A
        batch belongs to the thread that opened it; several threads may each have one."""
        with self._tx() as conn:
            self._local.batch = conn
            try:
                yield
            finally:
                self._local.batch = None

    def schema_version(self) -> int:
        """The Alembic revision of the database as a number (revision ``0003`` is 3)."""
        with self._errors(), self._engine.connect() as conn:
            from alembic.runtime.migration import MigrationContext

            rev = MigrationContext.configure(conn).get_current_revision()
        return int(rev) if rev and rev.isdigit() else 0

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self._engine.connect() as conn:
            conn.execution_options(iotrate_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                tables = set(inspect(conn).get_table_names())
                ctx = MigrationContext.configure(conn)
                current: str | None = None
                if "alembic_version" in tables:
                    current = ctx.get_current_revision()
                elif "schema_version" in tables:
                    row = conn.execute(text("SELECT version FROM schema_version")).first()
                    legacy = int(row[0]) if row else 0
                    if legacy > len(LEGACY_REVISIONS):
                        raise self._newer(str(legacy))
                    if legacy:
                        current = LEGACY_REVISIONS[legacy - 1]
                        ctx.stamp(ScriptDirectory(str(MIGRATIONS_DIR)), current)
                    elif "scans" in tables:
                        raise RuntimeFailure(f"{self.path} has history tables but no version")
                elif "scans" in tables:
                    raise RuntimeFailure(f"{self.path} has a scans table but no schema version")
                if current is not None and current not in _known_revisions():
                    raise self._newer(current)
                if current != f"{SCHEMA_VERSION:04d}":
                    cfg = Config()
                    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                if self.dialect == "sqlite":
                    conn.execute(
                        text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                    )
                    conn.execute(text("DELETE FROM schema_version"))
                    conn.execute(
                        text("INSERT INTO schema_version (version) VALUES (:v)"),
                        {"v": LEGACY_PARKED},
                    )

    def _newer(self, found: str) -> RuntimeFailure:
        return RuntimeFailure(
            f"the history database {self.path} has schema {found}, newer than this iotrate "
            f"knows ({SCHEMA_VERSION:04d}); upgrade iotrate"
        )

    # -- writing -----------------------------------------------------------------------------

    def begin_scan(
        self,
        scan_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        *,
        options: Mapping[str, Any] | None = None,
        site: str = "local",
        owner: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """The scan's row, before the first packet, so even a scan killed early is listed.

        ``options`` is what a later ``--resume`` needs to run the rest the same way; ``owner``
        names the process writing the scan, so a resume can tell a dead writer from a live one.
        """
        with self._tx() as c:
            c.execute(
                insert(scans),
                {
                    "id": scan_id,
                    "started_at": _when(started_at),
                    "status": "running",
                    "policy": policy,
                    "targets_key": targets_key(targets),
                    "targets_json": _targets_json(targets),
                    "tool_version": ToolInfo().version,
                    "options_json": None
                    if options is None
                    else json.dumps(dict(options), sort_keys=True),
                    "site": site,
                    "owner": owner,
                    "agent_id": agent_id,
                },
            )

    def reopen_scan(self, scan_id: str, owner: str, expected_owner: str | None) -> bool:
        """Take over an unfinished scan for ``--resume``: back to ``running``, written by
        ``owner``, its provisional result dropped so a second interruption rebuilds it from
        the device rows. Compare-and-set on the previous owner, so of two resumes started at
        once only one wins; returns whether this one did."""
        with self._tx() as c:
            cur = c.execute(
                update(scans)
                .where(
                    scans.c.id == scan_id,
                    scans.c.status != "complete",
                    scans.c.owner.is_not_distinct_from(expected_owner),
                )
                .values(status="running", owner=owner, finished_at=None, result_json=None)
            )
            return cur.rowcount == 1

    def record_device(self, scan_id: str, device: Device) -> None:
        """One device, committed on its own: what is stored stays stored if the scan dies."""
        with self._tx() as c:
            self._insert_devices(c, scan_id, [device])

    def finish_scan(self, result: ScanResult, status: ScanStatus = "complete") -> None:
        """Replace the provisional device rows with the final (correlated, rated) ones and keep
        the whole result, in one transaction so a reader never sees half of each."""
        with self._tx() as c:
            if self._scan_row(c, result.scan_id) is None:
                self._placeholder(c, result.scan_id, result.started_at, "local", None, result)
            self._finish(c, result, status)

    def _finish(self, c: Connection, result: ScanResult, status: ScanStatus) -> None:
        final = {d.address: d for d in result.devices}
        stored = {
            r.address: r.device_json
            for r in c.execute(
                select(devices.c.address, devices.c.device_json).where(
                    devices.c.scan_id == result.scan_id
                )
            )
        }
        # A provisional row that already says exactly what the final result says stays:
        # most devices come out of correlation and rating unchanged, and rewriting them
        # would double the work of every scan.
        self._drop(c, result.scan_id, [a for a in stored if a not in final])
        changed = [d for a, d in final.items() if stored.get(a) != d.model_dump_json()]
        self._insert_devices(c, result.scan_id, changed)
        c.execute(
            update(scans)
            .where(scans.c.id == result.scan_id)
            .values(
                status=status,
                finished_at=_when(result.finished_at or utcnow()),
                discovery_mode=result.discovery_mode,
                errors_json=json.dumps(result.errors),
                result_json=result.model_dump_json(),
            )
        )

    def _scan_row(self, c: Connection, scan_id: str) -> Row[Any, Any, Any] | None:
        return c.execute(
            select(scans.c.site, scans.c.agent_id, scans.c.status).where(scans.c.id == scan_id)
        ).first()

    def _placeholder(
        self,
        c: Connection,
        scan_id: str,
        started_at: datetime,
        site: str,
        agent_id: str | None,
        result: ScanResult | None = None,
    ) -> None:
        """A scan row for writes that arrive without its start (a finish without begin, or a
        fleet device message that overtook its scan's start message)."""
        c.execute(
            insert(scans),
            {
                "id": scan_id,
                "started_at": _when(started_at),
                "status": "running",
                "policy": result.policy if result else "unknown",
                "targets_key": targets_key(result.targets) if result else "",
                "targets_json": _targets_json(result.targets if result else []),
                "tool_version": result.tool.version if result else "unknown",
                "site": site,
                "agent_id": agent_id,
            },
        )

    def _drop(self, c: Connection, scan_id: str, addresses: Sequence[str]) -> None:
        """Delete devices of a scan by address, and their rows in the child tables, which no
        foreign key ties to them any more (migration 0005). One statement when none of them
        was stored yet, as for every device a collector receives once."""
        for i in range(0, len(addresses), 500):
            ids = list(
                c.execute(
                    delete(devices)
                    .where(
                        devices.c.scan_id == scan_id,
                        devices.c.address.in_(addresses[i : i + 500]),
                    )
                    .returning(devices.c.id)
                ).scalars()
            )
            if ids:
                for table in _CHILD_COLUMNS:
                    if table is not devices:
                        c.execute(delete(table).where(table.c.device_id.in_(ids)))

    def _insert_devices(self, c: Connection, scan_id: str, devs: Sequence[Device]) -> None:
        """Devices of one scan, each replacing any row of the same address (the scan's device
        key) and its child rows; a few statements per call, not per row."""
        latest = {d.address: d for d in devs}
        if not latest:
            return
        self._drop(c, scan_id, list(latest))
        now = _when(utcnow())
        jsons = {a: d.model_dump_json() for a, d in latest.items()}
        rows = [
            {
                "scan_id": scan_id,
                "device_key": d.id,
                "address": d.address,
                "mac": d.mac,
                "vendor": d.vendor,
                "model": d.model,
                "category": d.category,
                "firmware": d.firmware,
                "names_json": json.dumps(d.names),
                "device_json": jsons[d.address],
                "stored_at": now,
            }
            for d in latest.values()
        ]
        # A NUL anywhere in a device shows in its JSON as \u0000; only then is every value
        # of its rows looked at (see _no_nul).
        nul = {a for a, j in jsons.items() if "\\u0000" in j}
        rows = [_no_nul(r) if r["address"] in nul else r for r in rows]
        if self.dialect == "postgresql":
            # Ids drawn from the table's own sequence first, so the rows can go by COPY.
            ids = list(
                c.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('devices', 'id'))"
                        " FROM generate_series(1, :n)"
                    ),
                    {"n": len(rows)},
                ).scalars()
            )
            self._bulk_insert(
                c,
                devices,
                [
                    (dev_id, *(r[k] for k in _CHILD_COLUMNS[devices][1:]))
                    for dev_id, r in zip(ids, rows, strict=True)
                ],
            )
        else:
            ids = [
                r[0]
                for r in c.execute(
                    insert(devices).returning(devices.c.id, sort_by_parameter_order=True), rows
                )
            ]
        children: dict[Table, list[tuple[Any, ...]]] = {
            t: [] for t in _CHILD_COLUMNS if t is not devices
        }
        for dev_id, d in zip(ids, latest.values(), strict=True):
            rows_of = _child_rows(scan_id, dev_id, d)
            if d.address in nul:
                rows_of = {t: [_no_nul_row(r) for r in rs] for t, rs in rows_of.items()}
            for table, rs in rows_of.items():
                children[table] += rs
        for table, params in children.items():
            if params:
                self._bulk_insert(c, table, params)

    def _bulk_insert(self, c: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Many rows at once: COPY on PostgreSQL (a device has dozens of findings, outcomes
        and observations; one INSERT per row would cap the collector far below its target),
        an executemany elsewhere. Values travel as data in both, never as SQL text; table and
        column names are the schema's own."""
        columns = _CHILD_COLUMNS[table]
        if self.dialect != "postgresql":
            c.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
            return
        names = ", ".join(columns)
        cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    # -- fleet ingestion (the collector) -----------------------------------------------------
    # Each write is idempotent, so a message the broker delivers twice changes nothing the
    # second time; a scan belongs to the site and agent that started it.

    def _claim(
        self, c: Connection, scan_id: str, site: str, agent_id: str | None
    ) -> Row[Any, Any, Any] | None:
        row = self._scan_row(c, scan_id)
        if row is not None and (
            row.site != site or (row.agent_id is not None and row.agent_id != agent_id)
        ):
            raise ForeignScan(
                f"scan {scan_id} belongs to site {row.site!r}, not {site!r} (agent {agent_id})"
            )
        return row

    def ingest_start(
        self,
        *,
        scan_id: str,
        site: str,
        agent_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        tool_version: str,
        options: Mapping[str, Any] | None = None,
    ) -> bool:
        """A fleet scan's start: its row, or the row a device message made before it filled
        in. A scan that has already ended is left alone; returns whether anything changed."""
        with self._tx() as c:
            row = self._claim(c, scan_id, site, agent_id)
            if row is None:
                self._placeholder(c, scan_id, started_at, site, agent_id)
            elif row.status != "running":
                return False
            c.execute(
                update(scans)
                .where(scans.c.id == scan_id)
                .values(
                    started_at=_when(started_at),
                    policy=policy,
                    targets_key=targets_key(targets),
                    targets_json=_targets_json(targets),
                    tool_version=tool_version,
                    options_json=None
                    if options is None
                    else json.dumps(dict(options), sort_keys=True),
                    agent_id=agent_id,
                )
            )
            return True

    def ingest_devices(
        self,
        scan_id: str,
        devs: Sequence[Device],
        *,
        site: str,
        agent_id: str,
        received_at: datetime,
    ) -> bool:
        """Devices of a running fleet scan, each replacing its earlier version. Ignored once
        the scan's end is stored: its final devices win over a late or redelivered one."""
        with self._tx() as c:
            row = self._claim(c, scan_id, site, agent_id)
            if row is None:
                self._placeholder(c, scan_id, received_at, site, agent_id)
            elif row.status != "running":
                return False
            self._insert_devices(c, scan_id, devs)
            return True

    def ingest_end(
        self,
        result: ScanResult,
        status: ScanStatus,
        *,
        site: str,
        agent_id: str,
        addresses: Sequence[str] | None,
    ) -> None:
        """A fleet scan's end: its status and everything the result says besides its devices.
        The devices are the rows the device messages stored (the agent re-sends any the end
        of the scan changed), less those not in ``addresses`` (None: keep them all); the
        result is rebuilt from them when loaded, so an end message stays small however large
        the network."""
        with self._tx() as c:
            if self._claim(c, result.scan_id, site, agent_id) is None:
                self._placeholder(c, result.scan_id, result.started_at, site, agent_id, result)
            if addresses is not None:
                keep = set(addresses)
                stored = c.execute(
                    select(devices.c.address).where(devices.c.scan_id == result.scan_id)
                ).scalars()
                self._drop(c, result.scan_id, [a for a in stored if a not in keep])
            c.execute(
                update(scans)
                .where(scans.c.id == result.scan_id)
                .values(
                    status=status,
                    finished_at=_when(result.finished_at or utcnow()),
                    discovery_mode=result.discovery_mode,
                    errors_json=json.dumps(result.errors),
                    result_json=None,
                    started_at=_when(result.started_at),
                    policy=result.policy,
                    targets_key=targets_key(result.targets),
                    targets_json=_targets_json(result.targets),
                    tool_version=result.tool.version,
                )
            )

    # -- reading -----------------------------------------------------------------------------

    def _query(self, stmt: Executable) -> list[dict[str, Any]]:
        if self._batch is not None:
            return [dict(r._mapping) for r in self._batch.execute(stmt)]
        with self._errors(), self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def _tuples(self, stmt: Executable) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for the many-row reads, where a dict per row shows."""
        if self._batch is not None:
            return [tuple(r) for r in self._batch.execute(stmt)]
        with self._errors(), self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    def scans(self) -> list[ScanSummary]:
        """Every stored scan, oldest first, with a count of devices per grade."""
        rows = self._query(
            select(
                scans.c.id,
                scans.c.started_at,
                scans.c.finished_at,
                scans.c.status,
                scans.c.policy,
                scans.c.targets_json,
                scans.c.site,
                func.count(devices.c.id).label("devices"),
            )
            .select_from(scans.outerjoin(devices, devices.c.scan_id == scans.c.id))
            .group_by(scans.c.id)
            .order_by(scans.c.started_at, scans.c.id)
        )
        grade = func.coalesce(ratings.c.grade, "?")
        grades: dict[str, dict[str, int]] = {}
        for g in self._query(
            select(devices.c.scan_id, grade.label("grade"), func.count().label("n"))
            .select_from(devices.outerjoin(ratings, ratings.c.device_id == devices.c.id))
            .group_by(devices.c.scan_id, grade)
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
                site=r["site"],
            )
            for r in rows
        ]

    def unfinished_scans(self, key: str | None = None) -> list[str]:
        """Scans left ``running`` or ``interrupted``, newest first, optionally only those of
        one :func:`targets_key`: the candidates for ``iotrate scan --resume``."""
        stmt = select(scans.c.id).where(scans.c.status.in_(("running", "interrupted")))
        if key is not None:
            stmt = stmt.where(scans.c.targets_key == key)
        rows = self._query(stmt.order_by(scans.c.started_at.desc(), scans.c.id.desc()))
        return [str(r["id"]) for r in rows]

    def scan_record(self, scan_id: str) -> ScanRecord:
        """The scan's own row (no devices) with its JSON columns decoded."""
        scan_id = self.resolve(scan_id)
        (row,) = self._query(select(scans).where(scans.c.id == scan_id))
        return ScanRecord(
            scan_id=row["id"],
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            status=row["status"],
            policy=row["policy"],
            targets_key=row["targets_key"],
            targets=[Target.model_validate(t) for t in json.loads(row["targets_json"])],
            options=None if row["options_json"] is None else json.loads(row["options_json"]),
            site=row["site"],
            owner=row["owner"],
            errors=json.loads(row["errors_json"]),
            agent_id=row["agent_id"],
        )

    def stored_addresses(self, scan_id: str) -> set[str]:
        """Addresses whose device is committed in this scan: what a resume must not redo."""
        rows = self._query(select(devices.c.address).where(devices.c.scan_id == scan_id))
        return {str(r["address"]) for r in rows}

    def load_devices(self, scan_id: str) -> list[Device]:
        """The committed devices of a scan, in the order they were stored."""
        return [
            Device.model_validate_json(d["device_json"])
            for d in self._query(
                select(devices.c.device_json)
                .where(devices.c.scan_id == scan_id)
                .order_by(devices.c.id)
            )
        ]

    def resolve(self, ref: str) -> str:
        """A full scan id or a unique prefix of one (as ``iotrate history`` prints them),
        in any letter case."""
        escaped = ref.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            select(scans.c.id)
            .where((scans.c.id == ref) | func.lower(scans.c.id).like(escaped + "%", escape="\\"))
            .order_by(scans.c.id)
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
        (row,) = self._query(select(scans).where(scans.c.id == scan_id))
        if row["result_json"]:
            return ScanResult.model_validate_json(row["result_json"])
        # In address order, as a scan's result lists them, whatever order they were stored in.
        devs = sorted(self.load_devices(scan_id), key=lambda d: _address_order(d.address))
        return ScanResult(
            tool=ToolInfo(version=row["tool_version"]),
            scan_id=scan_id,
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            discovery_mode=row["discovery_mode"],
            policy=row["policy"],
            targets=[Target.model_validate(t) for t in json.loads(row["targets_json"])],
            devices=devs,
            errors=json.loads(row["errors_json"]),
        )

    def status(self, scan_id: str) -> ScanStatus:
        rows = self._query(select(scans.c.status).where(scans.c.id == self.resolve(scan_id)))
        status: ScanStatus = rows[0]["status"]
        return status

    def previous_pair(self) -> tuple[str, str]:
        """The latest complete scan and the complete scan of the same targets before it: the
        default 'what changed since last time'. Interrupted scans are left out because their
        missing devices would read as devices gone."""
        rows = self._query(
            select(scans.c.id, scans.c.targets_key)
            .where(scans.c.status == "complete")
            .order_by(scans.c.started_at.desc(), scans.c.id.desc())
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

    def device_briefs(self, scan_ids: Sequence[str]) -> list[DeviceBrief]:
        """The devices of these scans, in the order they were stored, without their JSON."""
        out: list[DeviceBrief] = []
        ids = list(dict.fromkeys(scan_ids))
        for i in range(0, len(ids), 200):
            chunk = ids[i : i + 200]
            found: dict[int, list[tuple[str, str]]] = {}
            for device_id, check, severity in self._tuples(
                select(findings.c.device_id, findings.c.check_id, findings.c.severity)
                .select_from(findings.join(devices, devices.c.id == findings.c.device_id))
                .where(devices.c.scan_id.in_(chunk))
            ):
                found.setdefault(device_id, []).append((check, severity))
            for r in self._query(
                select(
                    devices.c.id,
                    devices.c.scan_id,
                    devices.c.device_key,
                    devices.c.address,
                    devices.c.mac,
                    devices.c.vendor,
                    devices.c.model,
                    devices.c.category,
                    devices.c.names_json,
                    ratings.c.grade,
                    ratings.c.score,
                )
                .select_from(devices.outerjoin(ratings, ratings.c.device_id == devices.c.id))
                .where(devices.c.scan_id.in_(chunk))
                .order_by(devices.c.id)
            ):
                out.append(
                    DeviceBrief(
                        scan_id=r["scan_id"],
                        device_key=r["device_key"],
                        address=r["address"],
                        mac=r["mac"],
                        vendor=r["vendor"],
                        model=r["model"],
                        category=r["category"],
                        names=json.loads(r["names_json"]),
                        grade=r["grade"],
                        score=r["score"],
                        findings=found.get(r["id"], []),
                    )
                )
        return out

    def device_history(self, ref: str) -> list[DeviceRecord]:
        """One device's grade over time, found by its key (MAC, else address) or address."""
        n_findings = (
            select(func.count())
            .select_from(findings)
            .where(findings.c.device_id == devices.c.id)
            .scalar_subquery()
        )
        rows = self._query(
            select(
                scans.c.id,
                scans.c.started_at,
                scans.c.status,
                devices.c.device_key,
                devices.c.address,
                ratings.c.grade,
                ratings.c.score,
                n_findings.label("findings"),
            )
            .select_from(
                devices.join(scans, scans.c.id == devices.c.scan_id).outerjoin(
                    ratings, ratings.c.device_id == devices.c.id
                )
            )
            .where((func.lower(devices.c.device_key) == ref.lower()) | (devices.c.address == ref))
            .order_by(scans.c.started_at, scans.c.id)
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
        *,
        options: Mapping[str, Any] | None = None,
        site: str = "local",
        owner: str | None = None,
        resumed: Sequence[Device] | None = None,
    ) -> None:
        """``resumed``: the devices a resumed scan already has; its row exists (reopened by
        :meth:`Store.reopen_scan`), so none is begun, and the partial result keeps them."""
        self.store = store
        self.scan_id = scan_id
        self.started_at = started_at
        self.targets = targets
        self.policy = policy
        self.prepare = prepare
        self.devices: list[Device] = list(resumed or ())
        if store is not None and resumed is None:
            store.begin_scan(
                scan_id, started_at, targets, policy, options=options, site=site, owner=owner
            )

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
