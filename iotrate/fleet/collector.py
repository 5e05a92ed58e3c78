"""``iotrate collector``: take the agents' messages off the broker and store them.

Delivery is at least once, end to end. The collector's MQTT session is persistent (fixed
client id, clean start off, a session expiry), so messages published while it is down wait in
the broker. It acknowledges a message (paho's manual ack) only after the database transaction
holding it has committed; a collector killed before that gets the message again. Every write is
idempotent — a device replaces its earlier version under the (scan, address) key, a start
fills in its scan row, an end replaces the scan's devices with the final ones — so a message
stored twice is stored once.

Whatever is not a valid message for its topic (too large, not JSON, not the schema, topic and
payload disagreeing, a scan claimed by another site) is logged and acknowledged without being
stored, so it can neither poison the database nor block the queue behind it.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import InterfaceError, OperationalError

from iotrate.errors import RuntimeFailure
from iotrate.fleet.broker import Broker, connect_async, connect_properties, make_client
from iotrate.fleet.messages import (
    MAX_MESSAGE_BYTES,
    TOPIC_ROOT,
    DeviceMessage,
    EndMessage,
    MessageRejected,
    StartMessage,
    decode,
)
from iotrate.models import utcnow
from iotrate.storage import ForeignScan, Store

log = logging.getLogger(__name__)

Message = StartMessage | DeviceMessage | EndMessage
#: A received message: its arrival number, the MQTT message, and what it decoded to (None:
#: not decoded yet, rejected, or not for the collector).
Received = tuple[int, mqtt.MQTTMessage, Message | None]


@dataclass
class Stats:
    received: int = 0
    stored: int = 0  # messages whose content is in the database
    ignored: int = 0  # valid but superseded (a device after its scan's end)
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


def _shown(topic: str) -> str:
    """A topic from the wire, safe for a log line."""
    return repr(topic[:160])


class Collector:
    """Subscribes to ``iotrate/v1/#`` and writes through a :class:`Store` in batches."""

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
        self.store = store
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        # PostgreSQL works on one writer's transaction while the next writer prepares its
        # rows; SQLite takes one writer at a time anyway.
        self.writers = max(1, writers) if store.dialect == "postgresql" else 1
        self.stats = Stats()
        self.connected = threading.Event()
        # Messages as paho's thread received them, numbered in arrival order so they can be
        # acknowledged in that order whichever writer checked and stored them. The checks run
        # in the writers: paho's thread, left to the network, takes the GIL less often.
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

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((next(self._arrivals), msg, None))

    # -- dispatch, writers and acknowledgements ----------------------------------------------

    def run(self, stop: threading.Event) -> Stats:
        """Collect until ``stop`` is set; what was received by then is stored and acked."""
        connect_async(self.client, self.broker, clean_start=False, properties=self._props)
        self.client.loop_start()
        try:
            self.serve(stop)
        finally:
            self.connected.clear()  # a disconnect asked for is no news
            self.client.disconnect()
            self.client.loop_stop()
        return self.stats

    def serve(self, stop: threading.Event) -> None:
        """Hand received messages to the writers — all of one scan to the same writer, so a
        scan's messages are stored in the order they came — and acknowledge each once it is
        committed, in arrival order. On ``stop``, what has arrived is still stored."""
        lanes: list[queue.Queue[Received | None]] = [queue.Queue() for _ in range(self.writers)]
        threads = [
            threading.Thread(target=self._writer, args=(lane, stop), name=f"iotrate-writer-{i}")
            for i, lane in enumerate(lanes)
        ]
        for t in threads:
            t.start()
        try:
            while True:
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
            for lane in lanes:
                lane.put(None)
            for t in threads:
                t.join()
            self._ack_ready()

    def _writer(self, lane: queue.Queue[Received | None], stop: threading.Event) -> None:
        closing = False
        while not closing:
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
            batch = [(seq, msg, self._decode(msg)) for seq, msg, _ in batch]
            if self._handle(batch, stop):
                self._finished(batch)

    def _finished(self, batch: list[Received]) -> None:
        with self._done_lock:
            for seq, msg, _ in batch:
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

    def _handle(self, received: list[Received], stop: threading.Event) -> bool:
        """Store a batch in one transaction; True once it is committed (or its bad messages
        are set aside), False if the database stayed away until ``stop``."""
        batch = [msg for _, msg, _ in received]
        items = [item for _, _, item in received]
        delay = 1.0
        while True:
            try:
                stored, ignored = self._store_all(items)
                with self._stats_lock:
                    self.stats.received += len(batch)
                    self.stats.stored += stored
                    self.stats.ignored += ignored
                return True
            except RuntimeFailure as exc:
                if _unreachable(exc):
                    # The database is away: keep the batch unacknowledged and try again; the
                    # broker holds the rest. On stop, leave it to the broker's redelivery.
                    log.error("%s; retrying in %.0fs", exc, delay)
                    if stop.wait(delay):
                        return False
                    delay = min(delay * 2, 30.0)
                    continue
                # Something in the batch the database will not take: store one by one, so
                # only the culprit is dropped.
                log.warning("a batch failed (%s); storing its messages one at a time", exc)
                with self._stats_lock:
                    self.stats.received += len(batch)
                self._store_one_by_one(batch, items)
                return True

    def _decode(self, msg: mqtt.MQTTMessage) -> Message | None:
        if msg.topic.endswith("/command"):
            return None  # the agents' commands share the tree; not ours to store
        try:
            return decode(msg.topic, bytes(msg.payload), self.max_bytes)
        except MessageRejected as exc:
            self._reject(msg.topic, str(exc))
            return None

    def _reject(self, topic: str, why: str) -> None:
        key = why.split(":")[0][:60]
        with self._stats_lock:
            self.stats.rejected += 1
            self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1
        log.warning("dropped a message on %s: %s", _shown(topic), why)

    def _store_all(self, items: Sequence[Message | None]) -> tuple[int, int]:
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
                changed = self._apply(group)
                stored += len(group) if changed else 0
                ignored += 0 if changed or changed is None else len(group)
        return stored, ignored

    def _store_one_by_one(
        self, batch: list[mqtt.MQTTMessage], items: Sequence[Message | None]
    ) -> None:
        for msg, item in zip(batch, items, strict=True):
            if item is None:
                continue
            try:
                with self.store.batch():
                    changed = self._apply([item])
            except RuntimeFailure as exc:
                self._reject(msg.topic, f"the database refused it: {exc}")
                continue
            with self._stats_lock:
                if changed:
                    self.stats.stored += 1
                elif changed is not None:
                    self.stats.ignored += 1

    def _apply(self, group: list[Message]) -> bool | None:
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
                self._reject(f"{TOPIC_ROOT}/{m.site}/{m.scan_id}", str(exc))
            return None
        return changed


def _same_scan(a: Message | None, b: Message) -> bool:
    return a is not None and (a.site, a.scan_id, a.agent_id) == (b.site, b.scan_id, b.agent_id)


def _unreachable(exc: RuntimeFailure) -> bool:
    """A lost or refused database connection (worth retrying), not a bad row."""
    return isinstance(exc.__cause__, OperationalError | InterfaceError)


def tune_gc() -> None:
    """For the collector process: the cyclic garbage collector's default thresholds make it
    walk every live object after each few hundred allocations, and decoding one device
    allocates thousands, so a busy collector spent a third of its time there. The messages'
    objects are acyclic and freed by reference counting; a collection every 50,000
    allocations still catches any cycle."""
    gc.freeze()  # what start-up made lives for the whole process
    gc.set_threshold(50_000, 50, 100)


def wait_connected(collector: Collector, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not collector.connected.wait(0.1):
        if time.monotonic() > deadline:
            return False
    return True
