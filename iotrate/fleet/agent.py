"""``iotrate agent``: scan this network on a schedule and publish every result to the broker.

The scan is the one ``iotrate scan`` runs — same target checks (refusals happen at start-up,
before the broker is even contacted), same probes and policies, except that ``--intrusive`` is
not offered to an unattended agent. Each device is rated on its own and published the moment it
is done, the final correlated result when the scan ends. Nothing goes to the broker directly:
every message enters the :class:`~iotrate.fleet.spool.Spool` first and leaves it on PUBACK, so
results survive broker outages and agent restarts.

The agent listens on its site's command topic for one thing, a signed ``scan-now``; everything
else, including a command with a bad signature, is logged and ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from iotrate.errors import IotrateError, UsageError
from iotrate.fleet import commands
from iotrate.fleet.broker import Broker, connect_async, make_client
from iotrate.fleet.callbacks import guarded
from iotrate.fleet.messages import (
    NAME_PATTERN,
    DeviceMessage,
    EndMessage,
    StartMessage,
    command_topic,
    encode,
    topic_for,
)
from iotrate.fleet.spool import Spool
from iotrate.models import Device, ScanResult, Target, ToolInfo, utcnow
from iotrate.scanrequest import ScanRequest
from iotrate.targets import TargetSet

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: PUBACK reason codes after which sending the message again cannot help (not authorised,
#: topic invalid, packet too large, payload format invalid): the message is dropped, loudly.
_PERMANENT = {0x87, 0x90, 0x95, 0x99}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``1d`` or plain seconds; at least 10 seconds."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        raise UsageError(f"not a duration: {text!r} (e.g. 30m, 1h, 1d)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 10:
        raise UsageError("--every must be at least 10 seconds")
    return seconds


@dataclass(frozen=True)
class AgentSettings:
    """What the agent scans and how: ``iotrate scan``'s options, checked before it starts."""

    site: str
    targets: list[str]
    exclude: list[str] = field(default_factory=list)
    allow_public: bool = False
    max_hosts: int | None = None
    ports: str = "iot"
    policy: str = "default"  # safe or default; intrusive is not for unattended scans
    timeout: float = 1.0
    concurrency: int = 512
    every: float = 3600.0
    spool_max_bytes: int = 1024 * 1024 * 1024

    def request(self) -> ScanRequest:
        """The scan each run makes: the one ``iotrate scan`` would make with these options."""
        return ScanRequest(
            targets=tuple(self.targets),
            ports=self.ports,
            allow_public=self.allow_public,
            max_hosts=self.max_hosts,
            timeout=self.timeout,
            concurrency=self.concurrency,
            safe=self.policy == "safe",
            exclude=tuple(self.exclude),
        )

    def target_set(self) -> TargetSet:
        return self.request().target_set(standing_allow_list=False)

    def check(self) -> TargetSet:
        """Refuse what ``iotrate scan`` refuses, before anything is sent anywhere."""
        if not re.fullmatch(NAME_PATTERN, self.site):
            raise UsageError("--site must be 1-64 letters, digits, '.', '_' or '-'")
        if self.policy not in ("safe", "default"):
            raise UsageError("an agent's policy is safe or default (no --intrusive unattended)")
        self.request().check_ports()
        return self.target_set()

    def options(self) -> dict[str, Any]:
        return {
            "ports": self.ports,
            "exclude": self.exclude,
            "timeout": self.timeout,
            "concurrency": self.concurrency,
            "every_s": self.every,
        }


def agent_id_for(spool: Spool, given: str | None) -> str:
    """``--agent-id``, else the id this spool was given on first use (host name + random)."""
    if given is not None:
        if not re.fullmatch(NAME_PATTERN, given):
            raise UsageError("--agent-id must be 1-64 letters, digits, '.', '_' or '-'")
        spool.set("agent_id", given)
        return given
    known = spool.get("agent_id")
    if known:
        return known
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-._")[:40] or "agent"
    made = f"{host}-{secrets.token_hex(4)}"
    spool.set("agent_id", made)
    return made


class Publisher:
    """Moves messages from the spool to the broker and deletes each on its PUBACK.

    paho keeps a message it was handed until it is acknowledged and sends it again after a
    reconnect, so the publisher hands each spooled message to paho once per process; after a
    restart, whatever is still spooled is handed over again, oldest first.

    Only the pump thread touches the hand-over state. paho calls ``on_publish`` while holding
    its own message lock, and ``publish()`` takes that same lock: an acknowledgement handler
    that took our lock while the pump held it inside ``publish()`` deadlocked both threads
    (keep-alives stopped and the broker dropped the agent). So the handler only queues the
    acknowledgement and the pump settles it."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        spool: Spool,
        *,
        commands_topic: str | None = None,
        on_command: Callable[[bytes], None] | None = None,
        window: int = 200,
    ) -> None:
        self.broker = broker
        self.spool = spool
        self.window = window
        self.connected = threading.Event()
        self._commands_topic = commands_topic
        self._on_command = on_command
        self._acks: queue.SimpleQueue[tuple[int, ReasonCode]] = queue.SimpleQueue()
        self._handed: dict[int, int] = {}  # paho mid -> spool seq
        self._last = 0  # highest seq handed to paho by this process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = make_client(broker, client_id)
        self.client.max_inflight_messages_set(min(window, 100))
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_publish = self._acked
        self.client.on_message = self._message

    def start(self) -> None:
        connect_async(self.client, self.broker, clean_start=True)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._pump, name="iotrate-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.connected.clear()  # a disconnect asked for is no news
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        self._wake.set()

    def wait_drained(self, timeout: float) -> bool:
        """True once the broker has acknowledged everything spooled, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.spool.count():
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.1)
        return True

    # -- paho callbacks (its network thread) --------------------------------------------------

    @guarded(log, "the agent's connect callback")
    def _connected(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.broker, reason)
            return
        log.info("connected to %s", self.broker)
        if self._commands_topic is not None:
            client.subscribe(self._commands_topic, qos=1)
        self.connected.set()
        self._wake.set()

    @guarded(log, "the agent's disconnect callback")
    def _disconnected(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self.connected.is_set():
            log.warning("lost the broker %s (%s); results wait in the spool", self.broker, reason)
        self.connected.clear()

    @guarded(log, "the agent's acknowledgement callback")
    def _acked(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._acks.put((mid, reason))
        self._wake.set()

    @guarded(log, "the agent's message callback")
    def _message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_command is not None and msg.topic == self._commands_topic:
            self._on_command(bytes(msg.payload))

    # -- the pump (its own thread) ------------------------------------------------------------

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._settle()
                if self.connected.is_set():
                    self._hand_over()
            except IotrateError as exc:
                log.error("%s", exc)
                time.sleep(1)

    def _settle(self) -> None:
        """Apply the acknowledgements paho's thread queued: delete what the broker took."""
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                return
            seq = self._handed.pop(mid, None)
            if seq is None:
                continue
            if reason.is_failure and reason.value not in _PERMANENT:
                # Refused for now (quota, server busy): hand it over again later.
                self._last = min(self._last, seq - 1)
                log.warning("broker refused message %d for now: %s", seq, reason)
                continue
            if reason.is_failure:
                log.error(
                    "broker refused message %d for good (%s); dropped from the spool", seq, reason
                )
            self.spool.done(seq)

    def _hand_over(self) -> None:
        room = self.window - len(self._handed)
        if room <= 0:
            return
        for seq, topic, payload in self.spool.pending(self._last, room):
            info = self.client.publish(topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                return
            self._handed[info.mid] = seq
            self._last = seq


class Agent:
    """One site's agent: a schedule, the scans, and the publisher."""

    def __init__(
        self,
        settings: AgentSettings,
        broker: Broker,
        spool: Spool,
        *,
        agent_id: str,
        command_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.agent_id = agent_id
        self.command_key = command_key
        self.scan_now = threading.Event()
        self.publisher = Publisher(
            broker,
            f"iotrate-agent-{agent_id}",
            spool,
            commands_topic=command_topic(settings.site) if command_key else None,
            on_command=self._command if command_key else None,
        )

    # -- commands -----------------------------------------------------------------------------

    @guarded(log, "the agent's command handler")
    def _command(self, payload: bytes) -> None:
        assert self.command_key is not None
        try:
            what = commands.verify(
                self.command_key, self.settings.site, payload, self.spool.first_use_of_nonce
            )
        except commands.CommandRejected as exc:
            log.warning("ignored a command on %s: %s", command_topic(self.settings.site), exc)
            return
        except IotrateError as exc:
            log.error("could not check a command: %s", exc)
            return
        log.info("accepted command %s", what)
        self.scan_now.set()

    # -- messages -----------------------------------------------------------------------------

    def _queue(self, build: Callable[[int], StartMessage | DeviceMessage | EndMessage]) -> int:
        def make(seq: int) -> tuple[str, bytes]:
            message = build(seq)
            return topic_for(message), encode(message)

        seq = self.spool.put(make)
        self.publisher.wake()
        return seq

    def _envelope(self, scan_id: str, seq: int) -> dict[str, Any]:
        return {
            "site": self.settings.site,
            "scan_id": scan_id,
            "agent_id": self.agent_id,
            "sent_at": utcnow(),
            "seq": seq,
        }

    def _queue_device(self, scan_id: str, device: Device) -> None:
        self._queue(lambda seq: DeviceMessage(**self._envelope(scan_id, seq), device=device))

    def _queue_end(
        self,
        result: ScanResult,
        status: Literal["complete", "interrupted"],
        sent: list[Device] | None,
    ) -> None:
        """The end of a scan: first the final version of every device that differs from the
        one already sent (``sent``; None when unknown), then the result without devices."""
        if sent is not None:
            earlier = {d.address: d for d in sent}
            for d in result.devices:
                if earlier.get(d.address) != d:
                    self._queue_device(result.scan_id, d)
        addresses = None if sent is None else [d.address for d in result.devices]
        lean = result.model_copy(update={"devices": []})
        self._queue(
            lambda seq: EndMessage(
                **self._envelope(result.scan_id, seq),
                status=status,
                result=lean,
                addresses=addresses,
            )
        )

    def recover(self) -> None:
        """A scan the last run of this agent left open (killed mid-scan) is closed as
        interrupted; the devices it had sent stand."""
        raw = self.spool.get("open_scan")
        if not raw:
            return
        try:
            data = json.loads(raw)
            result = ScanResult(
                scan_id=data["scan_id"],
                started_at=datetime.fromisoformat(data["started_at"]),
                finished_at=utcnow(),
                policy=data["policy"],
                targets=[Target.model_validate(t) for t in data["targets"]],
                errors=["the agent stopped during this scan"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.error("forgetting an unreadable open scan record: %s", exc)
        else:
            log.warning("scan %s was cut short by the agent stopping; closing it", result.scan_id)
            self._queue_end(result, "interrupted", sent=None)
        self.spool.set("open_scan", None)

    # -- scanning -----------------------------------------------------------------------------

    def scan_once(self) -> ScanResult:
        # The scan machinery loads when the first scan starts, not when the agent does.
        import iotrate.scan
        from iotrate.rating import device_rater
        from iotrate.storage import Recorder

        s = self.settings
        target_set = s.check()
        targets = list(target_set.targets)
        scan_id = str(uuid.uuid4())
        started = utcnow()
        prepare = device_rater(scan_id, started)

        self._queue(
            lambda seq: StartMessage(
                **self._envelope(scan_id, seq),
                started_at=started,
                policy=s.policy,
                targets=targets,
                tool=ToolInfo(),
                options=s.options(),
            )
        )
        self.spool.set(
            "open_scan",
            json.dumps(
                {
                    "scan_id": scan_id,
                    "started_at": started.isoformat(),
                    "policy": s.policy,
                    "targets": [t.model_dump(mode="json") for t in targets],
                }
            ),
        )
        recorder = Recorder(None, scan_id, started, targets, s.policy, prepare)

        def on_device(device: Device) -> None:
            recorder(device)
            self._queue_device(scan_id, recorder.devices[-1])

        log.info(
            "scan %s of %s (%d addresses) begins", scan_id, " ".join(s.targets), target_set.size
        )
        try:
            options = s.request().scan_options(on_device=on_device, scan_id=scan_id)
            result = asyncio.run(iotrate.scan.run_scan(target_set, options))
        except BaseException:
            self._queue_end(recorder.partial(), "interrupted", recorder.devices)
            self.spool.set("open_scan", None)
            raise
        self._queue_end(result, "complete", recorder.devices)
        self.spool.set("open_scan", None)
        log.info("scan %s done: %d device(s)", scan_id, len(result.devices))
        return result

    def run(self, *, once: bool, drain_timeout: float, stop: threading.Event) -> bool:
        """Scan now and then every ``settings.every`` seconds, or when told to, until
        ``stop``; with ``once``, one scan and then wait for the broker to have it all. Returns
        False when ``once`` could not deliver everything in time (it stays spooled)."""
        self.settings.check()
        self.recover()
        self.publisher.start()
        linger = 2.0  # on the way out, a moment for the broker to take what is left
        try:
            if once:
                self.scan_once()
                linger = 0.0
                return self.publisher.wait_drained(drain_timeout)
            next_at = time.monotonic()
            while not stop.is_set():
                wait = next_at - time.monotonic()
                if wait > 0 and not self.scan_now.wait(timeout=min(wait, 1.0)):
                    continue
                self.scan_now.clear()
                if self.spool.size_bytes() > self.settings.spool_max_bytes:
                    log.error(
                        "the spool %s holds more than %d bytes the broker has not taken; "
                        "skipping this scan",
                        self.spool.path,
                        self.settings.spool_max_bytes,
                    )
                else:
                    try:
                        self.scan_once()
                    except IotrateError as exc:
                        log.error("scan failed: %s", exc)
                next_at = time.monotonic() + self.settings.every
            return True
        finally:
            if linger:
                self.publisher.wait_drained(linger)
            self.publisher.stop()
