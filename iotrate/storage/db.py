"""The history database itself: where it is, its engine, its transactions, and the schema
migration run when it is opened. The writer, the fleet ingest and the queries build on
:class:`Database`.

The schema is versioned by Alembic (``iotrate/migrations``), run in-process when a database is
opened: an older database is brought forward, a newer one is refused rather than misread.
Databases made before Alembic (a ``schema_version`` counter) are recognised and stamped with the
matching revision; their counter is then parked at :data:`~.schema.LEGACY_PARKED`, so an iotrate
from before the move refuses the database instead of writing into a schema it does not know.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.sql import Executable

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.privatefiles import create_private

from .schema import LEGACY_PARKED, LEGACY_REVISIONS, MIGRATIONS_DIR, SCHEMA_VERSION

_MIGRATION_LOCK = 0x696F_7472  # PostgreSQL advisory lock key: one migrator at a time


def default_path() -> Path:
    """``$IOTRATE_DB`` if set (tests, CI and shared hosts point it elsewhere), else the
    user's data directory, so history survives reinstalls and never lands in the cwd."""
    env = os.environ.get("IOTRATE_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("iotrate") / "iotrate.db"


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


class Database:
    """The base every part of :class:`~iotrate.storage.Store` builds on: the database opened
    (and migrated) at ``location``, its write transactions, its batches and plain reads."""

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
                # Every device's weaknesses are in here: readable by its owner only.
                create_private(self.path)
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

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
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
