"""The agent against a real mosquitto over TLS with client certificates, passwords and ACLs:
the spool outlives a broker that is down and an agent that restarts, signed commands are taken
once, anything else is ignored, and a message the broker refuses for good leaves the spool.

The scan itself is faked here (the lab test runs real ones inside the lab's namespaces): an
agent in the test's own network namespace must send nothing but MQTT to 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.fleet import Mosquitto
from support.storage import device

from iotrate.fleet import commands
from iotrate.fleet.agent import Agent, AgentSettings, Publisher
from iotrate.fleet.broker import Broker, parse_broker
from iotrate.fleet.messages import EndMessage, decode
from iotrate.fleet.spool import Spool
from iotrate.lab import certs
from iotrate.models import ScanResult, utcnow
from iotrate.rating import rate_result

KEY = b"a-shared-secret-of-32-bytes-long"
TLS_CONFIG = """\
per_listener_settings false
allow_anonymous false
password_file {folder}/passwd
acl_file {folder}/acl
listener {port} 127.0.0.1
cafile {folder}/ca/lab-ca.crt
certfile {folder}/ca/broker.crt
keyfile {folder}/ca/broker.key
require_certificate true
tls_version tlsv1.2
"""
ACL = """\
user agent7
topic write iotrate/v1/shop-7/#
topic read iotrate/v1/shop-7/command
user reader
topic read iotrate/v1/#
user operator
topic write iotrate/v1/+/command
"""


def wait_for(check: Callable[[], object], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Tls:
    def __init__(self, folder: Path) -> None:
        self.dir = folder / "ca"
        ca = certs.make_ca(self.dir)
        self.ca = ca.cert
        certs.make_leaf(self.dir, "broker", "/CN=broker", "127.0.0.1", ca)
        self.cert, self.key = self.dir / "client.crt", self.dir / "client.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-config", str(self.dir / "req.cnf"),
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(self.key), "-out", str(self.cert), "-CA", str(ca.cert),
             "-CAkey", str(ca.key), "-days", "2", "-subj", "/CN=agent7",
             "-addext", "extendedKeyUsage=clientAuth"],
            check=True, capture_output=True,
        )  # fmt: skip
        for f in self.dir.iterdir():
            f.chmod(0o644)  # the broker reads them after dropping to its own user

    def broker(self, port: int, user: str, password: str) -> Broker:
        return parse_broker(
            f"mqtts://{user}:{password}@127.0.0.1:{port}",
            ca=self.ca,
            cert=self.cert,
            key=self.key,
        )


@pytest.fixture
def tls_broker() -> Iterator[tuple[Mosquitto, Tls]]:
    b = Mosquitto(TLS_CONFIG, plain=False)
    try:
        tls = Tls(b.folder)
        passwd = b.folder / "passwd"
        for user in ("agent7", "reader", "operator"):
            subprocess.run(
                ["mosquitto_passwd", "-b", *([] if passwd.exists() else ["-c"]), str(passwd),
                 user, f"{user}-pw"],
                check=True, capture_output=True,
            )  # fmt: skip
        passwd.chmod(0o644)
        (b.folder / "acl").write_text(ACL)
        yield b, tls
    finally:
        b.remove()


class Reader:
    """A subscriber with the collector's rights: what reached the broker, in order."""

    def __init__(self, broker: Broker) -> None:
        from iotrate.fleet.broker import connect_async, make_client

        self.got: list[tuple[str, bytes]] = []
        self.client = make_client(broker, "test-reader")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe("iotrate/v1/#", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = lambda c, u, m: (
            None if m.topic.endswith("/command") else self.got.append((m.topic, bytes(m.payload)))
        )
        connect_async(self.client, broker)
        self.client.loop_start()
        assert subscribed.wait(10), "the reader could not subscribe"

    def ends(self) -> list[EndMessage]:
        return [m for m in (decode(t, p) for t, p in self.got) if isinstance(m, EndMessage)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fake_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``run_scan`` that finds two devices without sending a packet."""
    done: list[str] = []

    async def run(targets: Any, options: Any) -> ScanResult:
        devices = [device("192.0.2.2", grade="E"), device("192.0.2.3", grade="B")]
        for d in devices:
            options.on_device(d)
        done.append(options.scan_id)
        return rate_result(
            ScanResult(
                scan_id=options.scan_id,
                started_at=utcnow(),
                finished_at=utcnow(),
                targets=list(targets.targets),
                devices=devices,
            )
        )

    monkeypatch.setattr("iotrate.scan.run_scan", run)
    return done


def test_agent_over_tls_spool_restart_and_signed_commands(
    tls_broker: tuple[Mosquitto, Tls],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="iotrate.fleet")
    mosq, tls = tls_broker
    scans = fake_scans(monkeypatch)
    settings = AgentSettings(site="shop-7", targets=["127.0.0.2"], ports="80")
    agent_login = tls.broker(mosq.port, "agent7", "agent7-pw")
    spool = Spool(tmp_path / "spool.db")

    # 1. The broker is down: a --once run scans, cannot deliver, and keeps it all.
    run_once_while_broker_down(settings, agent_login, spool)

    # 2. The broker is back; the agent starts again on the same spool, scheduled this time.
    mosq.start()
    reader = Reader(tls.broker(mosq.port, "reader", "reader-pw"))
    second = Agent(settings, agent_login, spool, agent_id="agent-7", command_key=KEY)
    stop = threading.Event()
    runner = threading.Thread(
        target=second.run, kwargs={"once": False, "drain_timeout": 5, "stop": stop}
    )
    runner.start()
    try:
        check_spool_delivered_after_restart(reader, scans, spool)
        # 3. Commands: only an authentic, fresh, first-time scan-now starts a scan.
        check_only_authentic_commands_scan(mosq, tls, reader, scans, caplog)
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()

    # 4. The broker's ACL refuses another site's topic: PUBACK "not authorised", for good.
    check_refused_for_good(agent_login, tmp_path, reader, caplog)

    # 5. A wrong password or no client certificate: no connection at all.
    check_no_connection_without_credentials(mosq, tls, tmp_path)
    reader.close()


def run_once_while_broker_down(settings: AgentSettings, login: Broker, spool: Spool) -> None:
    first = Agent(settings, login, spool, agent_id="agent-7", command_key=KEY)
    assert not first.run(once=True, drain_timeout=1.0, stop=threading.Event())
    assert spool.count() == 4  # start, two devices, end
    # As if a later run had been killed mid-scan: its start is spooled, its end never came.
    spool.set("open_scan", json.dumps({
        "scan_id": "killed-scan", "started_at": utcnow().isoformat(), "policy": "default",
        "targets": [],
    }))  # fmt: skip


def check_spool_delivered_after_restart(reader: Reader, scans: list[str], spool: Spool) -> None:
    wait_for(lambda: len(reader.ends()) == 3, "the spooled scan, the killed one and a new one")
    ends = reader.ends()
    assert [e.scan_id for e in ends] == [scans[0], "killed-scan", scans[1]]
    assert [(e.status, e.addresses) for e in ends] == [
        ("complete", ["192.0.2.2", "192.0.2.3"]),
        ("interrupted", None),
        ("complete", ["192.0.2.2", "192.0.2.3"]),
    ]
    assert [json.loads(p)["seq"] for _, p in reader.got] == sorted(
        json.loads(p)["seq"] for _, p in reader.got
    )  # oldest first, across the restart
    assert [t.rsplit("/", 2)[-1] for t, _ in reader.got[:4]] == [
        "start", "192.0.2.2", "192.0.2.3", "end",
    ]  # fmt: skip
    wait_for(lambda: spool.count() == 0, "every PUBACK")


def check_only_authentic_commands_scan(
    mosq: Mosquitto,
    tls: Tls,
    reader: Reader,
    scans: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    operator = mqtt.Client(CallbackAPIVersion.VERSION2, "test-op", protocol=mqtt.MQTTv5)
    operator.username_pw_set("operator", "operator-pw")
    operator.tls_set(ca_certs=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
    operator.connect("127.0.0.1", mosq.port)
    operator.loop_start()
    topic = "iotrate/v1/shop-7/command"
    good = commands.sign(KEY, "shop-7", "scan-now")
    for payload in (
        b"rm -rf /",
        commands.sign(b"not-the-key-but-long-enough", "shop-7", "scan-now"),
        good,
    ):
        operator.publish(topic, payload, qos=1).wait_for_publish(5)
    wait_for(lambda: len(reader.ends()) == 4, "the commanded scan")
    operator.publish(topic, good, qos=1).wait_for_publish(5)  # replayed
    wait_for(lambda: "replayed" in caplog.text, "the replay to be seen")
    time.sleep(0.5)
    assert len(scans) == 3 and len(reader.ends()) == 4
    assert caplog.text.count("ignored a command") == 3
    assert "not JSON" in caplog.text and "bad signature" in caplog.text
    operator.disconnect()
    operator.loop_stop()


def check_refused_for_good(
    login: Broker, tmp_path: Path, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    other = Spool(tmp_path / "other.db")
    other.put(lambda seq: ("iotrate/v1/shop-8/x/start", b"{}"))
    pub = Publisher(login, "test-intruder", other)
    pub.start()
    try:
        assert pub.wait_drained(10)
    finally:
        pub.stop()
    assert "refused message 1 for good" in caplog.text
    assert not any("/shop-8/" in t for t, _ in reader.got)


def check_no_connection_without_credentials(mosq: Mosquitto, tls: Tls, tmp_path: Path) -> None:
    for broker in (
        tls.broker(mosq.port, "agent7", "wrong"),
        parse_broker(f"mqtts://agent7:agent7-pw@127.0.0.1:{mosq.port}", ca=tls.ca),
    ):
        denied = Publisher(broker, "test-denied", Spool(tmp_path / f"d{os.getpid()}.db"))
        denied.start()
        try:
            assert not denied.connected.wait(1.5)
        finally:
            denied.stop()
