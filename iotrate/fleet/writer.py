"""The collector's writer processes: they check batches of messages and store them.

Why processes and not threads: checking a device message (pydantic's strict validator turning
some 20 kB of JSON into models) and turning it into rows costs about 0.6 ms of Python per
device. In threads of one process that work shares one interpreter lock with paho's network
loop, which held the collector near 800-900 device results/s on two cores however many
threads wrote. Each writer process has its own interpreter and its own database connection.

What stays as it was: every message of a scan goes to the same writer (the collector picks it
by a hash of the scan id), so a scan's messages are stored in the order they came; a writer
answers only after its transaction has committed, and the collector acknowledges a message to
the broker only then. A writer that dies takes nothing with it: the messages it had were never
acknowledged, so the broker delivers them again and the idempotent writes store them once.

A writer ignores SIGINT and SIGTERM (Ctrl-C or a service manager signal the whole process
group; the collector then finishes what it holds and closes the writers itself) and is killed
by the kernel if the collector dies (``PR_SET_PDEATHSIG``), so none outlives it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

from sqlalchemy.exc import InterfaceError, OperationalError

from iotrate.errors import RuntimeFailure
from iotrate.fleet.messages import (
    TOPIC_ROOT,
    DeviceMessage,
    EndMessage,
    MessageRejected,
    StartMessage,
    decode,
)
from iotrate.models import utcnow
from iotrate.storage import ForeignScan, Store

Message = StartMessage | DeviceMessage | EndMessage
#: What the collector hands a writer: (topic, payload) of each message of a batch.
Batch = list[tuple[str, bytes]]


#: How a writer says something for the log: (level, message). Its lines go to the collector's
#: process as they happen, so the log stays one stream in one format whichever process saw
#: the message, and a writer waiting for the database says so while it waits.
Say = Callable[[int, str], None]


@dataclass
class Report:
    """A writer's answer for one batch."""

    committed: bool = True  # False: kept back (the database was away when asked to stop)
    stored: int = 0  # messages whose content is in the database
    ignored: int = 0  # valid but superseded (a device after its scan's end)
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Writer:
    """Checks and stores batches through one :class:`Store`; runs in a writer process (or
    in-process, for tests of its logic)."""

    def __init__(self, store: Store, max_bytes: int, say: Say) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.say = say

    def handle(self, batch: Batch, give_up: Callable[[float], bool]) -> Report:
        """Store a batch in one transaction. While the database is away it retries; between
        tries ``give_up(seconds)`` waits and says whether to stop trying, and the batch is
        then reported as not committed. Anything else that fails is the fault of a message:
        the batch is stored one message at a time and only the culprit is dropped, with the
        reason in the log, so a poison message is acknowledged once instead of stopping the
        writer and coming back after every restart."""
        report = Report()
        items = [self._decode(topic, payload, report) for topic, payload in batch]
        delay = 1.0
        while True:
            try:
                attempt = Report()  # what a failed try counted is forgotten with it
                try:
                    stored, ignored = self._store_all(items, attempt)
                except Exception as exc:
                    if _unreachable(exc):
                        raise
                    # Something in the batch the database will not take: store one by one,
                    # so only the culprit is dropped.
                    self.say(
                        logging.WARNING, f"a batch failed ({_reason(exc)}); storing one at a time"
                    )
                    one_by_one = Report()
                    self._store_one_by_one(batch, items, one_by_one)
                    _merge(report, one_by_one)
                    return report
                _merge(report, attempt)
                report.stored += stored
                report.ignored += ignored
                return report
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                # The database is away: keep the batch unacknowledged and try again; the
                # broker holds the rest. On stop, leave it to the broker's redelivery (and say
                # nothing more of the batches still queued behind it). What a one-by-one pass
                # had committed is stored again, idempotently, on the next try.
                if not give_up(0):
                    self.say(logging.ERROR, f"{_reason(exc)}; retrying in {delay:.0f}s")
                    if not give_up(delay):
                        delay = min(delay * 2, 30.0)
                        continue
                report.committed = False
                return report

    def _decode(self, topic: str, payload: bytes, report: Report) -> Message | None:
        try:
            return decode(topic, payload, self.max_bytes)
        except MessageRejected as exc:
            self._reject(report, topic, str(exc))
        except Exception as exc:
            self._reject(report, topic, f"could not be checked: {_reason(exc)}")
        return None

    def _store_all(self, items: Sequence[Message | None], report: Report) -> tuple[int, int]:
        """Everything in one transaction; (stored, ignored) once it has committed."""
        stored = ignored = 0
        with self.store.batch():
            i = 0
            while i < len(items):
                item = items[i]
                if item is None:
                    i += 1
                    continue
                if isinstance(item, DeviceMessage):
                    # A run of devices of one scan goes in with a few statements in all.
                    j = i
                    while (
                        j < len(items)
                        and isinstance(items[j], DeviceMessage)
                        and _same_scan(items[j], item)
                    ):
                        j += 1
                    group = [m for m in items[i:j] if m is not None]
                    i = j
                else:
                    group = [item]
                    i += 1
                changed = self._apply(group, report)
                stored += len(group) if changed else 0
                ignored += 0 if changed or changed is None else len(group)
        return stored, ignored

    def _store_one_by_one(
        self, batch: Batch, items: Sequence[Message | None], report: Report
    ) -> None:
        for (topic, _), item in zip(batch, items, strict=True):
            if item is None:
                continue
            try:
                with self.store.batch():
                    changed = self._apply([item], report)
            except Exception as exc:
                if _unreachable(exc):
                    raise  # not this message's fault: the whole batch waits and retries
                self._reject(report, topic, f"the database refused it: {_reason(exc)}")
                continue
            if changed:
                report.stored += 1
            elif changed is not None:
                report.ignored += 1

    def _apply(self, group: list[Message], report: Report) -> bool | None:
        """Store one message, or a run of devices of one scan: True if stored, False if
        superseded, None if rejected (a scan another site owns)."""
        first = group[0]
        try:
            if isinstance(first, StartMessage):
                changed = self.store.ingest_start(
                    scan_id=first.scan_id,
                    site=first.site,
                    agent_id=first.agent_id,
                    started_at=first.started_at,
                    targets=first.targets,
                    policy=first.policy,
                    tool_version=first.tool.version,
                    options=first.options,
                )
            elif isinstance(first, DeviceMessage):
                changed = self.store.ingest_devices(
                    first.scan_id,
                    [m.device for m in group if isinstance(m, DeviceMessage)],
                    site=first.site,
                    agent_id=first.agent_id,
                    received_at=utcnow(),
                )
            else:
                self.store.ingest_end(
                    first.result,
                    first.status,
                    site=first.site,
                    agent_id=first.agent_id,
                    addresses=first.addresses,
                )
                changed = True
        except ForeignScan as exc:
            for m in group:
                self._reject(report, f"{TOPIC_ROOT}/{m.site}/{m.scan_id}", str(exc))
            return None
        return changed

    def _reject(self, report: Report, topic: str, why: str) -> None:
        key = why.split(":")[0][:60]
        report.rejected += 1
        report.by_reason[key] = report.by_reason.get(key, 0) + 1
        self.say(logging.WARNING, f"dropped a message on {topic[:160]!r}: {why}")


def _same_scan(a: Message | None, b: Message) -> bool:
    return a is not None and (a.site, a.scan_id, a.agent_id) == (b.site, b.scan_id, b.agent_id)


def _unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection (worth retrying), not a bad row: SQLAlchemy's
    errors, and psycopg's own, which the bulk COPY raises without SQLAlchemy in between."""
    import psycopg

    lost = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
    seen: BaseException | None = exc
    for _ in range(4):  # the error, what it wraps, and so on
        if seen is None:
            return False
        if isinstance(seen, lost) and not isinstance(seen, psycopg.errors.QueryCanceled):
            return True
        seen = seen.__cause__
    return False


def _reason(exc: BaseException) -> str:
    """One line for the log: a database error's first line, else the exception's type and
    text, cut short (a message can make either long)."""
    if isinstance(exc, RuntimeFailure):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _merge(into: Report, part: Report) -> None:
    into.stored += part.stored
    into.ignored += part.ignored
    into.rejected += part.rejected
    for key, n in part.by_reason.items():
        into.by_reason[key] = into.by_reason.get(key, 0) + n


def tune_gc() -> None:
    """For the collector and its writers: the cyclic garbage collector's default thresholds
    make it walk every live object after each few hundred allocations, and decoding one
    device allocates thousands, so a busy collector spent a third of its time there. The
    messages' objects are acyclic and freed by reference counting; a collection every 50,000
    allocations still catches any cycle."""
    gc.freeze()  # what start-up made lives for the whole process
    gc.set_threshold(50_000, 50, 100)


# -- the writer process -----------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the collector's process ends (Linux; elsewhere the
    closed pipe ends the writer at its next read)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def writer_main(conn: Connection, db_url: str, max_bytes: int, give_up: Connection) -> None:
    """A writer process: open the store, then answer each batch with a :class:`Report`
    until the collector sends None or goes away. ``give_up`` becomes readable (its other end
    closed) when the collector is told to stop: a writer waiting for the database stops
    waiting. A pipe rather than a multiprocessing event, whose semaphores a killed collector
    would leave behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    tune_gc()
    try:
        store = Store(db_url)
    except RuntimeFailure as exc:
        conn.send(("failed", str(exc)))
        return
    with store:
        writer = Writer(store, max_bytes, lambda level, line: conn.send(("log", (level, line))))
        conn.send(("ready", None))
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return
            if batch is None:
                return
            conn.send(("done", writer.handle(batch, give_up.poll)))


class WriterGone(RuntimeFailure):
    """A writer process ended without being asked to."""


class WriterProcess:
    """The collector's handle on one writer process: one batch at a time, answered once
    committed. Used by one thread of the collector."""

    def __init__(
        self, ctx: SpawnContext, name: str, db_url: str, max_bytes: int, give_up: Connection
    ) -> None:
        self.name = name
        self._conn, child = ctx.Pipe()
        self.proc: SpawnProcess = ctx.Process(
            target=writer_main, args=(child, db_url, max_bytes, give_up), name=name, daemon=True
        )
        self.proc.start()
        child.close()

    def _gone(self) -> WriterGone:
        self.proc.join(5)
        return WriterGone(f"the writer process {self.name} ended (exit code {self.proc.exitcode})")

    def check(self) -> None:
        """Raise :class:`WriterGone` if the process has ended, busy or not."""
        if self.proc.exitcode is not None:
            raise self._gone()

    def wait_ready(self, timeout: float) -> None:
        if not self._conn.poll(timeout):
            raise RuntimeFailure(f"the writer process {self.name} did not start in {timeout:.0f}s")
        try:
            kind, detail = self._conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        if kind != "ready":
            raise RuntimeFailure(str(detail))

    def store(self, batch: Batch, say: Say) -> Report:
        """The batch's report once committed; what the writer says meanwhile goes to
        ``say``."""
        try:
            self._conn.send(batch)
            while True:
                kind, detail = self._conn.recv()
                if kind != "log":
                    break
                say(*detail)
        except (EOFError, OSError):
            raise self._gone() from None
        if not isinstance(detail, Report):
            raise RuntimeFailure(f"the writer process {self.name} answered {detail!r}")
        return detail

    def close(self, timeout: float = 30.0) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self._conn.close()


def spawn_context() -> SpawnContext:
    """Writers start from a fresh interpreter: forking the collector would copy paho's
    thread state and its locks mid-use."""
    return multiprocessing.get_context("spawn")
