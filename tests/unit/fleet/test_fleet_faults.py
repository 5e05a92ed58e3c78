"""Fleet faults the other tests do not reach, against a real mosquitto and PostgreSQL: the
collector killed while the broker is still handing it a backlog, one of its writer processes
killed, the whole process group signalled, and the dashboard reading the database a collector
filled."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.executables import IOTRATE
from support.fleet import (
    CollectorProcess,
    Mosquitto,
    PostgresServer,
    gone,
    postgres,  # noqa: F401
    wait_for,
)
from support.storage import device, finding, peek, result

from iotrate.fleet.messages import DeviceMessage, EndMessage, StartMessage, encode, topic_for
from iotrate.models import ToolInfo, utcnow

N_DEVICES = 3000


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    # Saved by time, not after every message: a few thousand queued messages would otherwise
    # rewrite the persistence file thousands of times (this test never restarts the broker).
    b = Mosquitto(autosave="autosave_interval 60")
    b.start()
    try:
        yield b
    finally:
        b.remove()


def publish_all(broker: Mosquitto, payloads: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-agent", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(500)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        infos = [pub.publish(topic, payload, qos=1) for topic, payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        pub.disconnect()
        pub.loop_stop()


def scan_messages(site: str, scan_id: str, n: int, seq: int = 0) -> list[tuple[str, bytes]]:
    """An agent's start, ``n`` device messages and its end, as (topic, payload)."""
    env = {"site": site, "scan_id": scan_id, "agent_id": f"agent-{site}", "sent_at": utcnow()}
    devs = [
        device(
            f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
            f"02:00:00:{i // 65536:02x}:{i // 256 % 256:02x}:{i % 256:02x}",
            grade="EG"[i % 2],
            findings=(finding("telnet-open", 23),),
        )
        for i in range(n)
    ]
    final = result(scan_id).model_copy(update={"devices": []})
    messages: list[StartMessage | DeviceMessage | EndMessage] = [
        StartMessage(
            **env,
            seq=seq,
            started_at=final.started_at,
            policy="default",
            targets=final.targets,
            tool=ToolInfo(),
        ),
        *(DeviceMessage(**env, seq=seq + 1 + i, device=d) for i, d in enumerate(devs)),
        EndMessage(
            **env,
            seq=seq + n + 1,
            status="complete",
            result=final,
            addresses=[d.address for d in devs],
        ),
    ]
    return [(topic_for(m), encode(m)) for m in messages]


def test_collector_killed_mid_backlog_resumes_and_stores_each_device_once(
    broker: Mosquitto,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database("faults")
    coll = CollectorProcess(broker, db, tmp_path / "collector.log", "fault-collector")
    coll.start()
    coll.kill()  # its session lives on in the broker, which queues everything below
    scan_id = "bada55ed-0000-4000-8000-000000000001"
    publish_all(broker, scan_messages("store-1", scan_id, N_DEVICES))

    coll.start()
    writers = coll.writer_pids()
    # Killed while the broker is still delivering the backlog: some batches committed, the
    # ones in flight received but neither committed nor acknowledged.
    wait_for(lambda: peek(db, "SELECT COUNT(*) FROM devices")[0][0] > 0, "the first stored batch")
    coll.kill()
    # Its writer processes do not outlive it (the kernel ends them with it).
    wait_for(lambda: all(map(gone, writers)), "the writers to end with the collector", 5)
    stored_at_kill = peek(db, "SELECT COUNT(*) FROM devices")[0][0]
    assert 0 < stored_at_kill < N_DEVICES, stored_at_kill
    assert peek(db, "SELECT status FROM scans") == [("running",)]

    mark = len(broker.log_text())
    coll.start()
    wait_for(lambda: peek(db, "SELECT status FROM scans") == [("complete",)], "the end", timeout=60)
    assert coll.stop() == 0
    # What the killed collector had been sent but not acknowledged came again (DUP flag)...
    assert re.search(r"Sending PUBLISH to fault-collector \(d1, q1", broker.log_text(mark))
    # ...and is stored once: every device, every child row, exactly once.
    assert_stored_once(db, N_DEVICES)
    grades = dict(peek(db, "SELECT grade, COUNT(*) FROM ratings GROUP BY grade"))
    assert grades == {"E": N_DEVICES // 2, "G": N_DEVICES // 2}
    log = (tmp_path / "collector.log").read_text()
    assert "(resumed session)" in log and "dropped a message" not in log, log[-3000:]
    assert "Traceback" not in log


def assert_stored_once(db: str, n: int) -> None:
    assert peek(db, "SELECT COUNT(*), COUNT(DISTINCT address) FROM devices") == [(n, n)]
    for table in ("ratings", "findings", "services"):
        assert peek(db, f"SELECT COUNT(*) FROM {table}") == [(n,)], table


def test_a_writer_process_dying_stops_the_collector_and_loses_nothing(
    broker: Mosquitto,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database("writer")
    log_path = tmp_path / "collector.log"
    coll = CollectorProcess(broker, db, log_path, "writer-collector")
    coll.start()
    coll.kill()
    scan_id = "bada55ed-0000-4000-8000-000000000002"
    publish_all(broker, scan_messages("store-2", scan_id, N_DEVICES))

    coll.start()
    writers = coll.writer_pids()
    assert len(writers) == 2, writers
    wait_for(lambda: peek(db, "SELECT COUNT(*) FROM devices")[0][0] > 0, "the first stored batch")
    # The writer that owns this scan (the collector picks it by a CRC-32 of the scan id) is
    # killed (out of memory, say) in the middle of the backlog: the collector says which and
    # stops with a runtime failure (exit 3) for its supervisor to restart it, rather than go
    # on with a gap it could never acknowledge past.
    busy = zlib.crc32(scan_id.encode()) % len(writers)
    os.kill(writers[busy], signal.SIGKILL)
    assert coll.proc is not None
    assert coll.proc.wait(timeout=60) == 3
    log = log_path.read_text()
    said = f"the writer process iotrate-writer-{busy} ended (exit code -9)"
    assert said in log, log[-2000:]
    assert "Traceback" not in log
    assert peek(db, "SELECT status FROM scans") == [("running",)]
    wait_for(lambda: all(map(gone, writers)), "the other writer to end", 5)

    # Restarted in its own process group, which then gets a terminal's Ctrl-C: the writers
    # ignore it and finish what they hold; the collector stops cleanly.
    coll.start(own_group=True)
    wait_for(lambda: peek(db, "SELECT status FROM scans") == [("complete",)], "the end", timeout=60)
    assert coll.signal_group(signal.SIGINT) == 0
    assert_stored_once(db, N_DEVICES)
    log = log_path.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    assert re.search(r"stopped: \d+ message\(s\) received", log)


def test_dashboard_lists_the_sites_a_collector_filled(
    broker: Mosquitto,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database("dash")
    coll = CollectorProcess(broker, db, tmp_path / "collector.log", "dash-collector")
    coll.start()
    scans = {"store-12": 3, "lab.bench-b": 2}
    for n, (site, count) in enumerate(scans.items()):
        publish_all(broker, scan_messages(site, f"5ca1ab1e-0000-4000-8000-00000000000{n}", count))
    wait_for(
        lambda: peek(db, "SELECT COUNT(*) FROM scans WHERE status = 'complete'") == [(2,)],
        "both scans stored",
    )
    assert coll.stop() == 0

    proc = subprocess.Popen(
        [IOTRATE, "serve", "--port", "0", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/) ", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        with httpx.Client(base_url=found.group(1), timeout=10) as h:
            api = h.get("/api/sites").json()
            assert {s["site"]: s["devices"] for s in api["sites"]} == scans
            page = h.get("/")
            assert page.status_code == 200
            assert all(site in page.text for site in scans)
            g = h.get("/api/devices", params={"site": "store-12", "grade": "G"}).json()
            assert len(g["devices"]) == 1  # devices 1 of 0..2 is G
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_agent_command_cli_sends_a_signed_scan_now(broker: Mosquitto, tmp_path: Path) -> None:
    """``iotrate agent-command`` waits for its connection, publishes a command an agent with the
    same key accepts, and says so on stderr; with the broker gone it fails with exit 3."""
    from iotrate.fleet import commands

    key = tmp_path / "store-12.key"
    key.write_text("k" * 44 + "\n")
    key.chmod(0o600)  # a command key others can read is refused
    got: list[bytes] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-agent-sub", protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("iotrate/v1/store-12/command", qos=1)
    sub.loop_start()
    time.sleep(0.3)  # the subscription
    cmd = [IOTRATE, "agent-command", "scan-now", "--broker", broker.url, "--site", "store-12",
           "--command-key", str(key), "--timeout", "3"]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "sent scan-now to site store-12" in done.stderr
        wait_for(lambda: got, "the command")
    finally:
        sub.disconnect()
        sub.loop_stop()
    nonces: set[str] = set()

    def first(nonce: str, _now: float, _window: float) -> bool:
        new = nonce not in nonces
        nonces.add(nonce)
        return new

    assert commands.verify(b"k" * 44, "store-12", got[0], first) == "scan-now"
    with pytest.raises(commands.CommandRejected, match="replayed"):
        commands.verify(b"k" * 44, "store-12", got[0], first)
    with pytest.raises(commands.CommandRejected, match="signature"):
        commands.verify(b"another key, long enough", "store-12", got[0], lambda *_: True)

    broker.stop()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and "did not take the command" in done.stderr
    assert "Traceback" not in done.stderr
