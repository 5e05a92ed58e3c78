"""Fleet mode end to end: two agents scan two lab networks, through one mosquitto, into one
PostgreSQL — with the broker restarted mid-scan and the collector down the whole time.

Where things run. Each agent runs inside its lab's scanner namespace (``ip netns exec``), so
every scan packet stays in that lab, which has no route anywhere. The agents reach the broker
through a Unix socket (mosquitto ``listener 0 PATH``): a file, not a network path, so no veth,
route or forwarding joins a lab to anything. mosquitto, PostgreSQL and the collector run in the
test's own namespace on 127.0.0.1.

The two lab instances default to ``fa`` (10.231.80.0/24) and ``fb`` (10.231.81.0/24); set
``IOTRATE_FLEET_LABS=name:subnet,name:subnet`` to use others. A lab already running is left
running; one this test brings up is taken down at the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE
from support.fleet import (
    CollectorProcess,
    Mosquitto,
    PostgresServer,
    missing,
    postgres,  # noqa: F401
    wait_for,
)

from iotrate.storage import Store

pytestmark = pytest.mark.lab


def _labs() -> list[tuple[str, str]]:
    spec = os.environ.get("IOTRATE_FLEET_LABS", "fa:10.231.80.0/24,fb:10.231.81.0/24")
    return [tuple(item.split(":", 1)) for item in spec.split(",")]  # type: ignore[misc]


def _lab(instance: str, subnet: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "IOTRATE_LAB_INSTANCE": instance, "IOTRATE_LAB_SUBNET": subnet}
    done = subprocess.run(
        [IOTRATE, "lab", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else {}


@pytest.fixture(scope="module")
def two_labs() -> Iterator[list[dict[str, Any]]]:
    if os.geteuid() != 0:
        missing("the fleet lab test needs root (network namespaces)")
    started: list[tuple[str, str]] = []
    labs = []
    try:
        for instance, subnet in _labs():
            if not _lab(instance, subnet, "status", "--json")["running"]:
                started.append((instance, subnet))
            labs.append({**_lab(instance, subnet, "up", "--json"), "instance": instance})
        yield labs
    finally:
        for instance, subnet in started:
            _lab(instance, subnet, "down")


def test_two_agents_two_labs_broker_restart_and_collector_down(
    two_labs: list[dict[str, Any]],
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    db = postgres.new_database("fleet")
    broker = Mosquitto(unix_socket=True)
    broker.start()
    collector = CollectorProcess(broker, db, tmp_path / "collector.log", "lab-collector")
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # The collector's session exists, then the collector is gone for the whole scan.
        collector.start()
        collector.kill()
        _start_agents(two_labs, broker, tmp_path, agents)
        restart = _restart_broker_mid_scan(broker, two_labs[0]["instance"])
        _check_agents_delivered_after_restart(two_labs, agents, broker, restart, tmp_path)

        # The collector comes back and finds everything queued in its session.
        collector.start()

        def both_complete() -> bool:
            with Store(db) as s:
                return [x.status for x in s.scans()] == ["complete", "complete"]

        wait_for(both_complete, "both scans stored", timeout=60)
        assert collector.stop() == 0
    finally:
        collector.kill()
        for proc in agents.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        broker.remove()

    _check_stored(db, two_labs)
    text = (tmp_path / "collector.log").read_text()
    assert "(resumed session)" in text and "dropped a message" not in text, text


def _start_agents(
    two_labs: list[dict[str, Any]],
    broker: Mosquitto,
    tmp_path: Path,
    agents: dict[str, subprocess.Popen[bytes]],
) -> None:
    """One ``--once`` agent per lab, in its scanner namespace; each is added to ``agents`` as
    soon as it runs, so the caller can stop it whatever happens next."""
    for lab in two_labs:
        name = lab["instance"]
        with (tmp_path / f"agent-{name}.log").open("wb") as log:
            agents[name] = subprocess.Popen(
                ["ip", "netns", "exec", lab["scanner"]["namespace"], IOTRATE, "agent",
                 "--broker", f"unix://{broker.socket}", "--site", f"lab-{name}",
                 "--agent-id", f"agent-{name}", "--targets", lab["subnet"], "--once",
                 "--spool", str(tmp_path / f"spool-{name}.db"), "--drain-timeout", "90"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


def _restart_broker_mid_scan(broker: Mosquitto, first: str) -> int:
    """Once the first device result is in, the broker goes down and comes back; returns where
    the restarted broker's log begins."""
    wait_for(
        lambda: (
            f"from iotrate-agent-agent-{first} " in broker.log_text()
            and "/device/" in broker.log_text()
        ),
        "a first device result",
        timeout=90,
    )
    broker.stop()
    time.sleep(2)
    restart = len(broker.log_text())
    broker.start()
    return restart


def _check_agents_delivered_after_restart(
    two_labs: list[dict[str, Any]],
    agents: dict[str, subprocess.Popen[bytes]],
    broker: Mosquitto,
    restart: int,
    tmp_path: Path,
) -> None:
    for name, proc in agents.items():
        assert proc.wait(timeout=150) == 0, (tmp_path / f"agent-{name}.log").read_text()
    after = broker.log_text(restart)
    for lab in two_labs:  # both scans ended after the restart: it was mid-scan
        assert f"Received PUBLISH from iotrate-agent-agent-{lab['instance']}" in after
        assert f"/lab-{lab['instance']}/" in after and "/end'" in after
        spool = sqlite3.connect(tmp_path / f"spool-{lab['instance']}.db")
        assert spool.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
        spool.close()


def _check_stored(db: str, two_labs: list[dict[str, Any]]) -> None:
    with Store(db) as s:
        summaries = {x.site: x for x in s.scans()}
        assert set(summaries) == {f"lab-{lab['instance']}" for lab in two_labs}
        for lab in two_labs:
            summary = summaries[f"lab-{lab['instance']}"]
            record = s.scan_record(summary.scan_id)
            assert record.agent_id == f"agent-{lab['instance']}"
            result = s.load_scan(summary.scan_id)
            want = {d["address"]: d for d in lab["devices"]}
            got = [d.address for d in result.devices]
            # Every device of the lab, exactly once, in the result and in the rows.
            assert sorted(got) == sorted(want) and summary.devices == len(want)
            assert sorted(s.stored_addresses(summary.scan_id)) == sorted(want)
            for d in result.devices:
                assert d.rating is not None and d.rating.grade is not None
                if want[d.address]["expected_grade"] == "G":
                    assert d.rating.grade == "G", (d.address, d.rating.grade)
            # No child row twice: the rows hold exactly what the final result holds.
            engine_rows = _counts(db, summary.scan_id)
            assert engine_rows == (
                sum(len(d.services) for d in result.devices),
                sum(len(d.findings) for d in result.devices),
                sum(1 for d in result.devices if d.rating is not None),
            )


def _counts(db: str, scan_id: str) -> tuple[int, int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            a, b, c = (
                conn.execute(
                    text(f"SELECT COUNT(*) FROM {table} WHERE scan_id = :s"), {"s": scan_id}
                ).scalar_one()
                for table in ("services", "findings", "ratings")
            )
            return int(a), int(b), int(c)
    finally:
        engine.dispose()
