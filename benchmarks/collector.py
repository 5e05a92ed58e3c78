"""The fleet collector's ingest rate into PostgreSQL: its write path alone, and end to end
through mosquitto.

Usage::

    python -m benchmarks.collector [--result SCAN.json] [--scans 100] [--devices 50] [--json]

Device results are the lab's own (a scan result of the reference lab, by default
``tests/data/lab-scan.json``; make one with ``iotrate lab exec -- iotrate scan SUBNET -o
FILE``), copied into ``--scans`` scans of ``--devices`` devices each with fresh addresses, MACs
and scan ids, and wrapped in the messages an agent sends: a start, one message per device, an
end (the result without its devices, and the addresses that stand).

1. **write path**: the collector's own message handling (size check, JSON, the envelope's JSON
   Schema, the models, the database transactions) fed from memory by a thread standing in for
   paho's;
2. **end to end** through a real mosquitto, QoS 1, persistent session, manual acknowledgement
   after each commit, until the last end message is stored: *live* (an agent process
   publishes while the collector runs; both share this machine's cores) and *backlog* (all
   of it queued for the collector first, as after an outage, then drained).

Both start their own PostgreSQL 15 with the stock durability settings (fsync on) and their
own mosquitto (persistence saved every 60 s), on 127.0.0.1 with free ports;
run as root, the servers run as their own system users. The rate is device results per
second: devices stored divided by the wall time from the first message to the last commit.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from fleet_support import Mosquitto, PostgresServer  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from iotrate.fleet.broker import parse_broker  # noqa: E402
from iotrate.fleet.collector import Collector, tune_gc  # noqa: E402
from iotrate.fleet.messages import (  # noqa: E402
    DeviceMessage,
    EndMessage,
    StartMessage,
    encode,
    topic_for,
)
from iotrate.models import Device, ScanResult, ToolInfo, utcnow  # noqa: E402
from iotrate.storage import Store  # noqa: E402

DEFAULT_RESULT = ROOT / "tests" / "data" / "lab-scan.json"


def workload(template: ScanResult, scans: int, per_scan: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of ``scans`` agents' scans, in the order an agent sends them."""
    out: list[tuple[str, bytes]] = []
    seq = 0
    for n in range(scans):
        site, agent, scan_id = f"site-{n % 20}", f"agent-{n % 20}", str(uuid.uuid4())
        started = utcnow() - timedelta(minutes=scans - n)
        devices: list[Device] = []
        for i in range(per_scan):
            base = template.devices[i % len(template.devices)]
            address = f"10.{n // 250}.{n % 250}.{i + 2}"
            mac = f"02:{n // 256 % 256:02x}:{n % 256:02x}:00:{i // 256:02x}:{i % 256:02x}"
            devices.append(
                base.model_copy(
                    update={"id": mac, "address": address, "addresses": [address], "mac": mac}
                )
            )
        env: dict[str, Any] = {"site": site, "scan_id": scan_id, "agent_id": agent}
        result = template.model_copy(
            update={"scan_id": scan_id, "started_at": started, "devices": []}
        )
        messages: list[StartMessage | DeviceMessage | EndMessage] = [
            StartMessage(
                **env,
                sent_at=utcnow(),
                seq=seq,
                started_at=started,
                policy="default",
                targets=template.targets,
                tool=ToolInfo(),
            )
        ]
        messages += [
            DeviceMessage(**env, sent_at=utcnow(), seq=seq + 1 + i, device=d)
            for i, d in enumerate(devices)
        ]
        messages.append(
            EndMessage(
                **env,
                sent_at=utcnow(),
                seq=seq + per_scan + 1,
                status="complete",
                result=result,
                addresses=[d.address for d in devices],
            )
        )
        seq += per_scan + 2
        out += [(topic_for(m), encode(m)) for m in messages]
    return out


def count(db: str, sql: str) -> int:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def write_path(db: str, messages: list[tuple[str, bytes]], batch: int, writers: int) -> float:
    """Seconds for the collector to decode and store ``messages`` fed from memory."""
    with Store(db) as store:
        collector = Collector(
            parse_broker("mqtt://127.0.0.1:1"), store, batch_size=batch, writers=writers
        )
        collector.client.ack = lambda mid, qos: mqtt.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
        stop = threading.Event()
        msgs = []
        for mid, (topic, payload) in enumerate(messages, 1):
            m = mqtt.MQTTMessage(mid, topic.encode())
            m.payload = payload
            m.qos = 1
            msgs.append(m)

        # As in production: paho's thread hands messages over (and checks them) while the
        # writers store earlier ones; serve() returns once everything received is stored.
        def feed() -> None:
            for m in msgs:
                collector._on_message(collector.client, None, m)
            stop.set()

        feeder = threading.Thread(target=feed)
        t0 = time.perf_counter()
        feeder.start()
        collector.serve(stop)
        feeder.join()
        elapsed = time.perf_counter() - t0
        assert collector.stats.rejected == 0, collector.stats
    return elapsed


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """An agent's side: publish everything at QoS 1 and wait for every PUBACK."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-agent", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(300)
    pub.disconnect()
    pub.loop_stop()


def end_to_end(
    db: str,
    messages: list[tuple[str, bytes]],
    scans: int,
    batch: int,
    writers: int,
    backlog: bool,
) -> float:
    """Seconds until the collector has committed the last end message, through mosquitto.

    Live: an agent process publishes while the collector runs (timed from its first
    publish). Backlog: everything is queued in the collector's session first, as after an
    outage, and the collector then drains it (timed from its start)."""
    broker = Mosquitto(
        "max_inflight_messages 1000\nmax_queued_messages 1000000\n",
        autosave="autosave_interval 60",
    )
    broker.start()
    try:
        with Store(db) as store:

            def collector() -> tuple[Collector, threading.Event, threading.Thread]:
                c = Collector(
                    parse_broker(broker.url),
                    store,
                    client_id="bench-collector",
                    batch_size=batch,
                    writers=writers,
                )
                stop = threading.Event()
                runner = threading.Thread(target=c.run, args=(stop,))
                runner.start()
                if not c.connected.wait(15):
                    raise SystemExit("the collector did not connect")
                time.sleep(0.3)  # its subscription
                return c, stop, runner

            agent = multiprocessing.get_context("fork").Process(
                target=_publish, args=(broker.port, messages)
            )
            coll, stop, runner = collector()
            if backlog:
                stop.set()
                runner.join(60)
                agent.start()
                agent.join()
                t0 = time.perf_counter()
                coll, stop, runner = collector()
            else:
                t0 = time.perf_counter()
                agent.start()
            sql = "SELECT COUNT(*) FROM scans WHERE status = 'complete'"
            while count(db, sql) < scans:
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            agent.join()
            stop.set()
            runner.join(60)
            assert coll.stats.rejected == 0, coll.stats
    finally:
        broker.remove()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--result", type=Path, default=DEFAULT_RESULT, help="a lab scan result")
    ap.add_argument("--scans", type=int, default=100)
    ap.add_argument("--devices", type=int, default=50, help="devices per scan")
    ap.add_argument("--batch", type=int, default=200, help="the collector's batch size")
    ap.add_argument("--writers", type=int, default=2, help="the collector's writer threads")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.result.exists():
        raise SystemExit(
            f"no scan result at {args.result}: iotrate lab exec -- iotrate scan SUBNET -o FILE"
        )
    tune_gc()  # as ``iotrate collector`` does
    template = ScanResult.model_validate_json(args.result.read_text(encoding="utf-8"))
    messages = workload(template, args.scans, args.devices)
    n_devices = args.scans * args.devices
    size = sum(len(p) for t, p in messages if "/device/" in t) / n_devices
    pg = PostgresServer(fast=False)
    try:
        dbs = [pg.new_database("bench") for _ in range(3)]
        t_write = write_path(dbs[0], messages, args.batch, args.writers)
        t_live = end_to_end(dbs[1], messages, args.scans, args.batch, args.writers, backlog=False)
        t_backlog = end_to_end(dbs[2], messages, args.scans, args.batch, args.writers, backlog=True)
        stored = [count(db, "SELECT COUNT(*) FROM devices") for db in dbs]
    finally:
        pg.stop()
    assert stored == [n_devices] * 3, (stored, n_devices)
    figures = {
        "scans": args.scans,
        "devices": n_devices,
        "messages": len(messages),
        "device_message_bytes_mean": round(size),
        "write_path_s": round(t_write, 2),
        "write_path_devices_per_s": round(n_devices / t_write),
        "end_to_end_live_s": round(t_live, 2),
        "end_to_end_live_devices_per_s": round(n_devices / t_live),
        "end_to_end_backlog_s": round(t_backlog, 2),
        "end_to_end_backlog_devices_per_s": round(n_devices / t_backlog),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
