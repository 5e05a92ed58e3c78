"""``iotrate collector`` against a real mosquitto and a real PostgreSQL: acknowledged after the
commit, resumed from its persistent session after a kill and a broker restart, bad messages
dropped without harm, redeliveries stored once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.fleet import (
    CollectorProcess,
    Mosquitto,
    PostgresServer,
    postgres,  # noqa: F401
    wait_for,
)
from support.storage import device, peek, result, target

from iotrate.fleet.messages import DeviceMessage, EndMessage, StartMessage, encode, topic_for
from iotrate.models import ToolInfo, utcnow
from iotrate.storage import Store

SITE, AGENT, SCAN = "shop-7", "agent-7", "c0ffee00-0000-4000-8000-000000000007"


def publisher(broker: Mosquitto) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-pub", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def send(c: mqtt.Client, topic: str, payload: bytes) -> None:
    c.publish(topic, payload, qos=1).wait_for_publish(timeout=10)


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    b.start()
    try:
        yield b
    finally:
        b.remove()


def test_collector_resumes_its_session_and_drops_bad_messages(
    broker: Mosquitto,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database()
    coll = CollectorProcess(
        broker, db, tmp_path / "collector.log", "test-collector", "--max-message-bytes", "65536"
    )
    coll.start()
    now = utcnow()
    env = {"site": SITE, "scan_id": SCAN, "agent_id": AGENT, "sent_at": now}
    a, b = device("192.0.2.2", grade="E"), device("192.0.2.3", "aa:bb:cc:00:00:03")
    final = result(SCAN, device("192.0.2.2", grade="C"), b)
    start = StartMessage(
        **env, seq=1, started_at=final.started_at, policy="default", targets=[target()],
        tool=ToolInfo(),
    )  # fmt: skip
    dev_a = DeviceMessage(**env, seq=2, device=a)
    pub = publisher(broker)
    for first in (start, dev_a):
        send(pub, topic_for(first), encode(first))
    wait_for(lambda: peek(db, "SELECT COUNT(*) FROM devices") == [(1,)], "device a stored")

    # The collector dies; its session, and the broker's queue for it, live on.
    coll.kill()
    dev_b = DeviceMessage(**env, seq=3, device=b)
    lean = final.model_copy(update={"devices": []})
    dev_a2 = DeviceMessage(**env, seq=4, device=final.devices[0])  # the end changed it
    end = EndMessage(
        **env, seq=5, status="complete", result=lean, addresses=["192.0.2.2", "192.0.2.3"]
    )
    foreign = StartMessage(**{**start.model_dump(), "site": "shop-8", "seq": 9})
    sequence: list[StartMessage | DeviceMessage | EndMessage] = [
        dev_b, dev_b, dev_a2, end, dev_a, foreign,
    ]  # fmt: skip
    for m in sequence:  # a duplicate, and a late copy after the end
        send(pub, topic_for(m), encode(m))
    send(pub, topic_for(dev_a), b"{not json")
    send(pub, topic_for(dev_a), json.dumps({**json.loads(encode(dev_a)), "seq": -1}).encode())
    send(pub, topic_for(dev_a), b'{"schema":"iotrate.fleet/1","pad":"' + b"x" * 100_000 + b'"}')
    # A valid message on another site's topic: a publisher claiming what is not its own.
    send(pub, topic_for(dev_a).replace(f"/{SITE}/", "/shop-9/"), encode(dev_a))
    send(pub, f"iotrate/v1/{SITE}/command", b"for the agents, not the collector")
    pub.disconnect()
    pub.loop_stop()
    broker.stop()  # and the broker restarts while the collector is away
    broker.start()
    pub = publisher(broker)
    marker = StartMessage(**{**start.model_dump(), "scan_id": "marker", "seq": 10})
    send(pub, topic_for(marker), encode(marker))
    pub.disconnect()
    pub.loop_stop()

    coll.start()
    wait_for(lambda: peek(db, "SELECT id FROM scans WHERE id = 'marker'"), "the queue drained")
    assert coll.stop() == 0
    with Store(db) as s:
        assert s.load_scan(SCAN) == final
        assert {x.scan_id: (x.site, x.status, x.devices) for x in s.scans()} == {
            SCAN: (SITE, "complete", 2),
            "marker": (SITE, "running", 0),
        }
    assert peek(db, "SELECT COUNT(*) FROM devices") == [(2,)]
    log = (tmp_path / "collector.log").read_text()
    assert "(resumed session)" in log
    # Not JSON, against the schema, too large (the collector's own limit: the broker delivered
    # it from the queue), on a topic that is not the message's, and a claim on another site's
    # scan.
    assert log.count("dropped a message") == 5, log
    assert "not JSON" in log and "schema: at seq" in log and "more than the limit of 65536" in log
    assert "dropped a message on 'iotrate/v1/shop-9/" in log and "topic does not match" in log
    assert "belongs to site 'shop-7'" in log
    assert "command" not in log.split("dropped a message")[-1]
    assert "Traceback" not in log


def scan_of(scan_id: str, n: int) -> list[StartMessage | DeviceMessage | EndMessage]:
    """A start, ``n`` devices and the end of one scan of SITE."""
    env = {"site": SITE, "scan_id": scan_id, "agent_id": AGENT, "sent_at": utcnow()}
    devs = [device(f"192.0.2.{i + 2}", f"aa:bb:cc:00:01:{i:02x}") for i in range(n)]
    final = result(scan_id)
    return [
        StartMessage(
            **env, seq=1, started_at=final.started_at, policy="default", targets=[target()],
            tool=ToolInfo(),
        ),
        *(DeviceMessage(**env, seq=2 + i, device=d) for i, d in enumerate(devs)),
        EndMessage(
            **env, seq=2 + n, status="complete",
            result=final.model_copy(update={"devices": []}),
            addresses=[d.address for d in devs],
        ),
    ]  # fmt: skip


def admin(postgres: PostgresServer, sql: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(postgres.url().replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def test_database_away_keeps_messages_unacknowledged_until_it_is_back(
    broker: Mosquitto,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database("away")
    name = db.rsplit("/", 1)[1]
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, db, log_path, "away-collector")
    coll.start()
    # The database goes away under the running collector: no new connections, and the
    # writers' open ones cut.
    admin(postgres, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    admin(
        postgres, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )
    pub = publisher(broker)
    for m in scan_of(SCAN, 3):
        send(pub, topic_for(m), encode(m))
    wait_for(lambda: "retrying in" in log_path.read_text(), "the writer to retry")
    # Stopped while it waits (its back-off is up to 30 s): it gives up the wait at once and
    # leaves the batch unacknowledged, for the broker to keep.
    assert coll.stop() == 0
    log = log_path.read_text()
    assert "stopped: 0 message(s) received, 0 stored" in log, log[-2000:]

    admin(postgres, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    coll.start()
    wait_for(lambda: peek(db, "SELECT status FROM scans") == [("complete",)], "the scan stored")
    assert coll.stop() == 0
    pub.disconnect()
    pub.loop_stop()
    assert peek(db, "SELECT COUNT(*), COUNT(DISTINCT address) FROM devices") == [(3, 3)]
    assert "Traceback" not in log_path.read_text()


def test_collector_into_sqlite_uses_one_writer(broker: Mosquitto, tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, str(db), log_path, "lite-collector", "--writers", "3")
    coll.start()
    pub = publisher(broker)
    for scan_id in (SCAN, "c0ffee00-0000-4000-8000-000000000008"):
        for m in scan_of(scan_id, 4):
            send(pub, topic_for(m), encode(m))
    pub.disconnect()
    pub.loop_stop()
    wait_for(
        lambda: peek(db, "SELECT COUNT(*) FROM scans WHERE status = 'complete'") == [(2,)],
        "both scans stored",
    )
    assert coll.stop() == 0
    assert peek(db, "SELECT COUNT(*) FROM devices") == [(8,)]
    log = log_path.read_text()
    assert "1 writer process(es)" in log and "Traceback" not in log, log
