"""``iotrate collector``: take the agents' messages off the broker and store them.

Delivery is at least once, end to end. The collector's MQTT session is persistent (fixed
client id, clean start off, a session expiry), so messages published while it is down wait in
the broker. It acknowledges a message (paho's manual ack) only after the database transaction
holding it has committed; a collector killed before that gets the message again. Every write is
idempotent — a device replaces its earlier version under the (scan, address) key, a start
fills in its scan row, an end replaces the scan's devices with the final ones — so a message
stored twice is stored once.

Whatever is not a valid message for its topic (too large, not JSON, not the schema or its
bounds, topic and payload disagreeing, a scan claimed by another site) or that the database
refuses is logged and acknowledged without being stored, so it can neither poison the database
nor block the queue behind it, nor come back after a restart. Only a database that cannot be
reached holds messages back (unacknowledged, retried). The paho callbacks log what goes wrong
in them and carry on (:mod:`iotrate.fleet.callbacks`).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from iotrate.errors import RuntimeFailure
from iotrate.fleet.broker import Broker, connect_async, connect_properties, make_client
from iotrate.fleet.callbacks import guarded
from iotrate.fleet.messages import MAX_MESSAGE_BYTES, TOPIC_ROOT
from iotrate.fleet.writer import Report, WriterProcess, spawn_context, tune_gc
from iotrate.storage import Store

__all__ = ["Collector", "Stats", "tune_gc", "wait_connected"]

log = logging.getLogger(__name__)

#: A received message: its arrival number and the MQTT message.
Received = tuple[int, mqtt.MQTTMessage]


@dataclass
class Stats:
    received: int = 0
    stored: int = 0  # messages whose content is in the database
    ignored: int = 0  # valid but superseded (a device after its scan's end)
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, report: Report, received: int) -> None:
        """Count a writer's batch: ``received`` messages, with what became of them."""
        self.received += received
        self.stored += report.stored
        self.ignored += report.ignored
        self.rejected += report.rejected
        for key, n in report.by_reason.items():
            self.by_reason[key] = self.by_reason.get(key, 0) + n


class Collector:
    """Subscribes to ``iotrate/v1/#`` and has writer processes (:mod:`iotrate.fleet.writer`)
    check and store what arrives, in batches, in the database of ``store``."""

    def __init__(
        self,
        broker: Broker,
        store: Store,
        *,
        client_id: str = "iotrate-collector",
        max_bytes: int = MAX_MESSAGE_BYTES,
        session_expiry: int = 7 * 24 * 3600,
        batch_size: int = 200,
        receive_maximum: int = 1000,
        writers: int = 2,
    ) -> None:
        self.broker = broker
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        # Each writer process opens the database itself (the URL keeps its password).
        self._db_url = store.url.render_as_string(hide_password=False)
        # Writer processes check and store in parallel on PostgreSQL; SQLite takes one
        # writer at a time anyway.
        self.writers = max(1, writers) if store.dialect == "postgresql" else 1
        self._failure: RuntimeFailure | None = None
        #: The running writer processes' ids (for measurements and diagnostics).
        self.writer_pids: list[int] = []
        self.stats = Stats()
        self.connected = threading.Event()
        # Messages as paho's thread received them, numbered in arrival order so they can be
        # acknowledged in that order whichever writer checked and stored them.
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._arrivals = itertools.count()
        self._stats_lock = threading.Lock()
        self._done: dict[int, mqtt.MQTTMessage] = {}
        self._done_lock = threading.Lock()
        self._next_ack = 0
        self.client = make_client(broker, client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._props = connect_properties(
            session_expiry=session_expiry,
            # Bounded memory: the broker sends no more than this many unacknowledged
            # messages, and none larger than the limit (it drops those itself).
            receive_maximum=receive_maximum,
            maximum_packet_size=max_bytes + 65536,
        )

    # -- paho's thread ------------------------------------------------------------------------

    @guarded(log, "the collector's connect callback")
    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.broker, reason)
            return
        resumed = bool(getattr(flags, "session_present", False))
        log.info("connected to %s (%s session)", self.broker, "resumed" if resumed else "new")
        client.subscribe(f"{TOPIC_ROOT}/#", qos=1)
        self.connected.set()

    @guarded(log, "the collector's disconnect callback")
    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self.connected.is_set():
            log.warning("lost the broker %s (%s); reconnecting", self.broker, reason)
        self.connected.clear()

    @guarded(log, "the collector's message callback")
    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((next(self._arrivals), msg))

    # -- dispatch, writers and acknowledgements ----------------------------------------------

    def run(self, stop: threading.Event) -> Stats:
        """Collect until ``stop`` is set; what was received by then is stored and acked."""

        def connect() -> None:
            connect_async(self.client, self.broker, clean_start=False, properties=self._props)
            self.client.loop_start()

        try:
            self.serve(stop, connect)
        finally:
            self.connected.clear()  # a disconnect asked for is no news
            self.client.disconnect()
            self.client.loop_stop()
        return self.stats

    def serve(self, stop: threading.Event, then: Callable[[], None] | None = None) -> None:
        """Start the writer processes, then (``then``: connect to the broker, so nothing
        arrives before it can be stored) hand them the received messages — all of one scan
        to the same writer, so a scan's messages are stored in the order they came — and
        acknowledge each once it is committed, in arrival order. On ``stop``, what has
        arrived is still stored. Raises :class:`RuntimeFailure` if a writer cannot start or
        dies; what it held stays unacknowledged, for the broker to deliver again."""
        ctx = spawn_context()
        # Closed on stop: a writer waiting for the database gives up.
        give_up, give_up_sender = ctx.Pipe(duplex=False)
        procs: list[WriterProcess] = []
        lanes: list[queue.Queue[Received | None]] = [queue.Queue() for _ in range(self.writers)]
        threads: list[threading.Thread] = []
        self._failure = None
        try:
            for i in range(self.writers):
                procs.append(
                    WriterProcess(ctx, f"iotrate-writer-{i}", self._db_url, self.max_bytes, give_up)
                )
            give_up.close()  # the writers have theirs
            self.writer_pids = [p.proc.pid for p in procs if p.proc.pid is not None]
            for proc in procs:
                proc.wait_ready(120)
            if then is not None:
                then()
            threads = [
                threading.Thread(
                    target=self._feed, args=(lane, proc), name=f"iotrate-feed-{proc.name}"
                )
                for lane, proc in zip(lanes, procs, strict=True)
            ]
            for t in threads:
                t.start()
            checked = time.monotonic()
            while self._failure is None:
                if time.monotonic() - checked > 0.5:
                    # A writer that died idle is noticed now, not at its next batch.
                    self._check(procs)
                    checked = time.monotonic()
                try:
                    item = self._inbox.get(timeout=0.05)
                except queue.Empty:
                    self._ack_ready()
                    if stop.is_set():
                        break
                    continue
                topic = item[1].topic
                if topic.endswith("/command"):
                    with self._stats_lock:
                        self.stats.received += 1
                    self._finished([item])  # the agents' commands: acknowledged, not ours
                else:
                    # By the topic's scan level: a message whose topic and content disagree
                    # is rejected by its writer anyway.
                    scan = topic.split("/", 4)[3:4]
                    lanes[zlib.crc32(scan[0].encode() if scan else b"") % len(lanes)].put(item)
                self._ack_ready()
        finally:
            if stop.is_set():
                give_up_sender.close()
            for lane in lanes:
                lane.put(None)
            for t in threads:
                t.join()
            for proc in procs:
                proc.close()
            give_up_sender.close()
            self._ack_ready()
        if self._failure is not None:
            log.error("%s; what it held stays with the broker", self._failure)
            raise self._failure

    def _check(self, procs: list[WriterProcess]) -> None:
        for proc in procs:
            try:
                proc.check()
            except RuntimeFailure as exc:
                self._failure = self._failure or exc

    def _feed(self, lane: queue.Queue[Received | None], proc: WriterProcess) -> None:
        """One writer's batches: whatever has queued up for it, up to the batch size, while
        it stores the previous one."""
        closing = False
        while not closing and self._failure is None:
            first = lane.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    more = lane.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                batch.append(more)
            try:
                report = proc.store(
                    [(msg.topic, bytes(msg.payload)) for _, msg in batch],
                    lambda level, line: log.log(level, "%s", line),
                )
            except RuntimeFailure as exc:
                self._failure = self._failure or exc
                return
            with self._stats_lock:
                self.stats.add(report, len(batch) if report.committed else 0)
            if report.committed:
                self._finished(batch)

    def _finished(self, batch: list[Received]) -> None:
        with self._done_lock:
            for seq, msg in batch:
                self._done[seq] = msg

    def _ack_ready(self) -> None:
        """PUBACK every committed message up to the first one still being stored. Only the
        dispatching thread calls this, and calls paho outside any lock of ours (paho holds
        its own while it runs our callbacks)."""
        ready = []
        with self._done_lock:
            while self._next_ack in self._done:
                ready.append(self._done.pop(self._next_ack))
                self._next_ack += 1
        for msg in ready:
            self.client.ack(msg.mid, msg.qos)


def wait_connected(collector: Collector, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not collector.connected.wait(0.1):
        if time.monotonic() > deadline:
            return False
    return True
