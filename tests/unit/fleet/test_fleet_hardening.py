"""Hostile fleet traffic against a running collector and agent (issue 17, findings 2 and 3):
numbers too large for any column, a time with no UTC form and a row the database itself
refuses are each dropped once with the reason in the log and acknowledged, and the collector
stores the next good message; a command whose signature field holds non-ASCII text is ignored
and the agent still obeys the next valid one. Real mosquitto, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.fleet import (
    CollectorProcess,
    Mosquitto,
    postgres,  # noqa: F401  (the fixture `where` asks for)
    wait_for,
)
from support.storage import Where, device, finding, peek, where  # noqa: F401

from iotrate.fleet import commands
from iotrate.fleet.agent import Agent, AgentSettings
from iotrate.fleet.broker import parse_broker
from iotrate.fleet.messages import DeviceMessage, StartMessage, encode, topic_for
from iotrate.fleet.spool import Spool
from iotrate.models import ScanResult, ToolInfo, utcnow

SITE, AGENT, SCAN = "shop-1", "agent-1", "bad0bad0-0000-4000-8000-000000000017"
KEY = b"a-shared-secret-of-32-bytes-long"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    b.start()
    try:
        yield b
    finally:
        b.remove()


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for topic, payload in messages:
            pub.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        pub.disconnect()
        pub.loop_stop()


def device_message(address: str, vendor: str = "Acme") -> DeviceMessage:
    env = {"site": SITE, "scan_id": SCAN, "agent_id": AGENT, "sent_at": utcnow()}
    d = device(address, findings=(finding("telnet-open", 23),))
    return DeviceMessage(**env, seq=1, device=d.model_copy(update={"vendor": vendor}))


def tampered(message: DeviceMessage, change: Any) -> tuple[str, bytes]:
    """The message as JSON, changed the way a hostile agent would (past the models)."""
    data = json.loads(encode(message))
    change(data)
    return topic_for(message), json.dumps(data).encode()


def poison_numbers() -> list[tuple[str, bytes]]:
    """A finding port and a login attempt count of 10**20 (too large for SQLite's INTEGER)
    and 2**40 (for PostgreSQL's)."""
    out: list[tuple[str, bytes]] = []
    for n, value in enumerate((10**20, 2**40)):
        m = device_message(f"192.0.2.{10 + n}")

        def finding_port(d: dict[str, Any], v: int = value) -> None:
            d["device"]["findings"][0]["port"] = v

        def attempts(d: dict[str, Any], v: int = value) -> None:
            d["device"]["outcomes"][0]["attempts"] = v

        out += [tampered(m, finding_port), tampered(m, attempts)]
    return out


def stopped_cleanly(coll: CollectorProcess) -> None:
    assert coll.proc is not None and coll.proc.poll() is None, "the collector stopped"
    assert coll.stop() == 0


def test_poison_numbers_are_dropped_once_and_the_collector_goes_on(
    broker: Mosquitto,
    where: Where,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = str(where("poison.db"))
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, db, log_path, "poison-collector")
    coll.start()
    start = StartMessage(
        site=SITE, scan_id=SCAN, agent_id=AGENT, sent_at=utcnow(), seq=0,
        started_at=utcnow(), policy="default", targets=[], tool=ToolInfo(),
    )  # fmt: skip
    year_one = json.loads(encode(start))
    year_one["started_at"] = "0001-01-01T00:00:00+14:00"  # no UTC form: overflowed in storage
    publish(broker, [(topic_for(start), json.dumps(year_one).encode()), *poison_numbers()])
    good = device_message("192.0.2.20")
    publish(broker, [(topic_for(good), encode(good))])
    wait_for(
        lambda: peek(db, "SELECT address FROM devices") == [("192.0.2.20",)], "the good message"
    )
    log = log_path.read_text()
    assert log.count("dropped a message") == 5, log
    assert log.count("less than or equal to 65535") == 2, log
    assert log.count("less than or equal to 1000000000") == 2, log
    assert "no UTC equivalent" in log and "Traceback" not in log
    stopped_cleanly(coll)

    # Acknowledged: a collector resuming the same session is not handed them again.
    mark = len(log_path.read_text())
    coll.start()
    marker = device_message("192.0.2.21")
    publish(broker, [(topic_for(marker), encode(marker))])
    wait_for(lambda: len(peek(db, "SELECT address FROM devices")) == 2, "the marker")
    stopped_cleanly(coll)
    again = log_path.read_text()[mark:]
    assert "(resumed session)" in again and "dropped a message" not in again, again


def refuse_poison(db: str) -> None:
    """The database itself refuses a row, as a constraint a DBA added would: on PostgreSQL
    inside the bulk COPY (psycopg's error, not SQLAlchemy's), on SQLite an abort."""
    if db.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION no_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.vendor = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.execute(
                "CREATE TRIGGER no_poison BEFORE INSERT ON devices "
                "FOR EACH ROW EXECUTE FUNCTION no_poison()"
            )
        return
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER no_poison BEFORE INSERT ON devices WHEN NEW.vendor = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
    conn.close()


def test_a_row_the_database_refuses_is_dropped_and_the_rest_stored(
    broker: Mosquitto,
    where: Where,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = str(where("refuse.db"))
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, db, log_path, "refuse-collector")
    coll.start()  # the schema exists from here on
    refuse_poison(db)
    batch = [
        device_message("192.0.2.30"),
        device_message("192.0.2.31", vendor="poison"),
        device_message("192.0.2.32"),
    ]
    publish(broker, [(topic_for(m), encode(m)) for m in batch])
    wait_for(lambda: len(peek(db, "SELECT address FROM devices")) == 2, "the good devices")
    publish(broker, [(topic_for(m), encode(m)) for m in (device_message("192.0.2.33"),)])
    wait_for(lambda: len(peek(db, "SELECT address FROM devices")) == 3, "the next message")
    log = log_path.read_text()
    assert log.count("dropped a message") == 1 and "poisoned row" in log, log
    assert "Traceback" not in log
    stopped_cleanly(coll)
    assert sorted(r[0] for r in peek(db, "SELECT address FROM devices")) == [
        "192.0.2.30", "192.0.2.32", "192.0.2.33",
    ]  # fmt: skip


# -- the agent --------------------------------------------------------------------------------


def fake_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``run_scan`` that finds one device without sending a packet: this test is about the
    agent's MQTT side (the lab tests run real scans)."""
    done: list[str] = []

    async def run(targets: Any, options: Any) -> ScanResult:
        options.on_device(device("192.0.2.2"))
        done.append(options.scan_id)
        return ScanResult(
            scan_id=options.scan_id,
            started_at=utcnow(),
            finished_at=utcnow(),
            targets=list(targets.targets),
            devices=[device("192.0.2.2")],
        )

    monkeypatch.setattr("iotrate.scan.run_scan", run)
    return done


def hostile_commands(site: str) -> list[bytes]:
    """A signed command whose signature field is non-ASCII text (what raised TypeError in
    paho's thread), a lone surrogate, not text at all; and bytes that are not UTF-8."""
    good = json.loads(commands.sign(KEY, site, "scan-now"))
    out = [
        json.dumps({**good, "mac": mac}).encode("utf-8", "surrogatepass")
        for mac in ("é" * 64, "\u202e" + good["mac"][1:], "\ud800", 7, None)
    ]
    out.append(b"\xff\xfe not even UTF-8")
    return out


def test_a_non_ascii_command_leaves_the_agent_obeying(
    broker: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="iotrate.fleet")
    scans = fake_scans(monkeypatch)
    settings = AgentSettings(site=SITE, targets=["127.0.0.2"], ports="80", every=3600)
    agent = Agent(
        settings, parse_broker(broker.url), Spool(tmp_path / "spool.db"),
        agent_id=AGENT, command_key=KEY,
    )  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(
        target=agent.run, kwargs={"once": False, "drain_timeout": 5, "stop": stop}
    )
    runner.start()
    try:
        wait_for(lambda: len(scans) == 1 and agent.spool.count() == 0, "the first scan")
        wait_for(agent.publisher.connected.is_set, "the agent's connection")
        topic = f"iotrate/v1/{SITE}/command"
        publish(broker, [(topic, p) for p in hostile_commands(SITE)])
        wait_for(lambda: caplog.text.count("ignored a command") == 6, "the commands refused")
        publish(broker, [(topic, commands.sign(KEY, SITE, "scan-now"))])
        wait_for(lambda: len(scans) == 2, "the commanded scan")
        # ...and it still publishes: the scan's messages leave the spool on PUBACK.
        wait_for(lambda: agent.spool.count() == 0, "the scan's messages delivered")
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    assert "failed; carrying on" not in caplog.text and "Traceback" not in caplog.text
    assert caplog.text.count("bad signature") == 5
