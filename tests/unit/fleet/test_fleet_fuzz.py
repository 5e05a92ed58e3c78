"""Hypothesis fuzzing of fleet messages and agent commands (issue 17): valid messages with
hostile values put in anywhere (huge and negative integers, NaN and infinities, odd text,
wrong types) and bytes that are not messages at all. Every message is stored or dropped with a
log line; the writer (on SQLite and PostgreSQL), a running collector and a running agent never
stop. The example counts are kept modest so the suite stays fast; the strategies, not the
counts, are what reach the corners."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from support.fleet import (
    CollectorProcess,
    Mosquitto,
    postgres,  # noqa: F401  (the fixture `where` asks for)
    wait_for,
)
from support.storage import Where, device, finding, peek, result, where  # noqa: F401

from iotrate.fleet import commands
from iotrate.fleet.agent import Agent, AgentSettings
from iotrate.fleet.broker import parse_broker
from iotrate.fleet.messages import DeviceMessage, EndMessage, StartMessage, encode, topic_for
from iotrate.fleet.spool import Spool
from iotrate.fleet.writer import Writer
from iotrate.models import ScanResult, ToolInfo, utcnow
from iotrate.storage import Store

SITE, AGENT, SCAN = "fuzz-site", "fuzz-agent", "f0220000-0000-4000-8000-000000000017"
KEY = b"a-shared-secret-of-32-bytes-long"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def samples() -> list[tuple[str, dict[str, Any]]]:
    """One valid message of each kind, as (topic, JSON object to mutate)."""
    env = {"site": SITE, "scan_id": SCAN, "agent_id": AGENT, "sent_at": utcnow()}
    dev = device("192.0.2.5", "aa:bb:cc:00:00:05", findings=(finding("telnet-open", 23),))
    dev = dev.model_copy(
        update={"outcomes": [o.model_copy(update={"attempts": 3, "duration_s": 0.5})
                             for o in dev.outcomes]}
    )  # fmt: skip
    lean = result(SCAN).model_copy(update={"devices": []})
    messages: list[StartMessage | DeviceMessage | EndMessage] = [
        StartMessage(
            **env, seq=1, started_at=lean.started_at, policy="default", targets=lean.targets,
            tool=ToolInfo(), options={"ports": "iot"},
        ),
        DeviceMessage(**env, seq=2, device=dev),
        EndMessage(**env, seq=3, status="complete", result=lean, addresses=["192.0.2.5"]),
    ]  # fmt: skip
    # Devices twice: most of what reaches the columns is in them.
    return [(topic_for(m), json.loads(encode(m))) for m in (*messages, messages[1])]


SAMPLES = samples()


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value that a hostile agent could fill."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


HOSTILE_INTS = st.one_of(
    st.sampled_from([10**20, 2**40, 2**31, 2**63, -1, 65536, 10**400]),
    st.integers(min_value=2**31 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=2**70),
)
HOSTILE_NUMBERS = st.one_of(HOSTILE_INTS, st.floats(allow_nan=True, allow_infinity=True))
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\x1b[2J", "é" * 70, "0001-01-01T00:00:00+14:00"]),
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_NUMBERS,
    HOSTILE_TEXT,
    st.none(),
    st.booleans(),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@st.composite
def hostile_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic, payload): a valid message with one or two values replaced, or junk bytes."""
    if draw(st.integers(0, 9)) == 0:
        return f"iotrate/v1/{SITE}/{SCAN}/start", draw(st.binary(max_size=200))
    topic, original = draw(st.sampled_from(SAMPLES))
    doc = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 2))):
        places = paths(doc)  # a replaced container has no children any more
        # Half the time a number: ports, counts and durations are what overflow columns.
        numbers = [p for p in places if _is_number(_get(doc, p))]
        if numbers and draw(st.booleans()):
            places = numbers
        path = draw(st.sampled_from(places))
        # Mostly a value of the same type, which gets past the type checks to the bounds.
        current = _get(doc, path)
        if (_is_number(current) or isinstance(current, str)) and draw(st.integers(0, 4)):
            kinds = {int: HOSTILE_INTS, float: HOSTILE_NUMBERS, str: HOSTILE_TEXT}
            value = draw(kinds[type(current)])
        else:
            value = draw(HOSTILE_VALUES)
        _set(doc, path, value)
    try:
        payload = json.dumps(doc).encode()
    except ValueError:  # an integer too long for str(): the agent could not have sent it
        payload = b"{}"
    return topic, payload


def test_the_writer_stores_or_drops_every_message(where: Where) -> None:  # noqa: F811
    lines: list[str] = []
    with Store(where("fuzz.db")) as store:
        writer = Writer(store, 8 * 1024 * 1024, lambda _level, line: lines.append(line))

        @FUZZ
        @given(st.lists(hostile_messages(), min_size=1, max_size=5))
        def check(batch: list[tuple[str, bytes]]) -> None:
            lines.clear()
            report = writer.handle(batch, lambda _s: True)
            assert report.committed
            assert report.stored + report.ignored + report.rejected == len(batch), lines
            assert sum("dropped a message" in line for line in lines) == report.rejected

        check()


def test_commands_are_accepted_or_refused_never_raised() -> None:
    good = json.loads(commands.sign(KEY, SITE, "scan-now"))
    fields = sorted(good)

    @settings(max_examples=200, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.fixed_dictionaries(
                {k: st.one_of(st.just(good[k]), HOSTILE_VALUES) for k in fields}
            ).map(lambda d: json.dumps(d).encode()),
        )
    )
    def check(payload: bytes) -> None:
        try:
            commands.verify(KEY, SITE, payload, lambda *_: True)
        except commands.CommandRejected:
            pass

    check()


# -- running processes --------------------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    b.start()
    try:
        yield b
    finally:
        b.remove()


def publisher(broker: Mosquitto) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-pub", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def test_a_running_collector_takes_fuzzed_messages(broker: Mosquitto, tmp_path: Path) -> None:
    db = tmp_path / "fuzz.db"
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, str(db), log_path, "fuzz-collector")
    coll.start()
    pub = publisher(broker)
    sent = [0]
    try:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(hostile_messages())
        def check(message: tuple[str, bytes]) -> None:
            pub.publish(*message, qos=1).wait_for_publish(timeout=10)
            sent[0] += 1
            assert coll.proc is not None and coll.proc.poll() is None, "the collector stopped"

        check()
        # A valid message after them all is stored: the collector is still taking messages.
        marker = DeviceMessage(
            site=SITE, scan_id="marker", agent_id=AGENT, sent_at=utcnow(), seq=9,
            device=device("192.0.2.99"),
        )  # fmt: skip
        pub.publish(topic_for(marker), encode(marker), qos=1).wait_for_publish(timeout=10)
        wait_for(
            lambda: peek(db, "SELECT COUNT(*) FROM devices WHERE scan_id = 'marker'") == [(1,)],
            "the marker after the fuzzed messages",
        )
    finally:
        pub.disconnect()
        pub.loop_stop()
    assert coll.stop() == 0
    log = log_path.read_text()
    m = re.search(r"stopped: (\d+) message\(s\) received, (\d+) stored, (\d+) superseded, "
                  r"(\d+) rejected", log)  # fmt: skip
    assert m is not None, log[-2000:]
    received, stored, superseded, rejected = map(int, m.groups())
    assert received == sent[0] + 1 == stored + superseded + rejected
    assert log.count("dropped a message") == rejected and "Traceback" not in log
    assert stored >= 1 and rejected >= 1


def test_a_running_agent_takes_fuzzed_commands(
    broker: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="iotrate.fleet")
    scans: list[str] = []

    async def run(targets: Any, options: Any) -> ScanResult:  # no packets: MQTT is the subject
        scans.append(options.scan_id)
        return ScanResult(scan_id=options.scan_id, started_at=utcnow(), finished_at=utcnow())

    monkeypatch.setattr("iotrate.scan.run_scan", run)
    settings_ = AgentSettings(site=SITE, targets=["127.0.0.2"], ports="80", every=3600)
    agent = Agent(
        settings_, parse_broker(broker.url), Spool(tmp_path / "spool.db"),
        agent_id=AGENT, command_key=KEY,
    )  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(
        target=agent.run, kwargs={"once": False, "drain_timeout": 5, "stop": stop}
    )
    runner.start()
    pub = publisher(broker)
    topic = f"iotrate/v1/{SITE}/command"
    good = json.loads(commands.sign(KEY, SITE, "scan-now"))
    sent = [0]
    try:
        wait_for(lambda: len(scans) == 1 and agent.publisher.connected.is_set(), "the first scan")

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            st.one_of(
                st.binary(max_size=200),
                st.fixed_dictionaries(
                    {k: st.one_of(st.just(v), HOSTILE_VALUES) for k, v in good.items()}
                ).map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass")),
            )
        )
        def check(payload: bytes) -> None:
            pub.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
            sent[0] += 1

        check()
        # Every fuzzed command is accounted for: refused, or (a replay of the signed fields
        # with a hostile value where it does not matter) refused as replayed or accepted.
        wait_for(
            lambda: (
                caplog.text.count("ignored a command") + caplog.text.count("accepted command")
                >= sent[0]
            ),
            "every fuzzed command to be answered",
        )
        before = len(scans)
        pub.publish(topic, commands.sign(KEY, SITE, "scan-now"), qos=1).wait_for_publish(10)
        wait_for(lambda: len(scans) > before, "the valid command obeyed")
    finally:
        pub.disconnect()
        pub.loop_stop()
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    assert "failed; carrying on" not in caplog.text and "Traceback" not in caplog.text
