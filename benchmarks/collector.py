"""The fleet collector's ingest rate into PostgreSQL: its write path alone, and end to end
through mosquitto.

Usage::

    python -m benchmarks.collector [--result SCAN.json] [--scans 100] [--devices 50] [--json]

Device results are the lab's own (a scan result of the reference lab, by default
``tests/data/lab-scan.json``; make one with ``iotrate lab exec -- iotrate scan SUBNET -o
FILE``), copied into ``--scans`` scans of ``--devices`` devices each with fresh addresses, MACs
and scan ids, and wrapped in the messages an agent sends: a start, one message per device, an
end (the result without its devices, and the addresses that stand).

1. **write path**: the collector's own message handling (size check, the strict models over
   the whole message, the database transactions) fed from memory by a thread standing in for
   paho's;
2. **end to end** through a real mosquitto, QoS 1, persistent session, manual acknowledgement
   after each commit, until the last end message is stored: *live* (an agent process
   publishes while the collector runs; both share this machine's cores) and *backlog* (all
   of it queued for the collector first, as after an outage, then drained).

Both start their own PostgreSQL 15 with the stock durability settings (fsync on) and their
own mosquitto (persistence saved every 60 s), on 127.0.0.1 with free ports;
run as root, the servers run as their own system users. The rate is device results per
second: devices stored divided by the wall time from the first message to the last commit.
On a machine shared with other work the rate says little on its own, so each phase also
reports the CPU milliseconds per device of the collector, PostgreSQL and mosquitto, and the
rate that CPU allows on two idle cores; and the benchmark process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from support.fleet import Mosquitto, PostgresServer  # noqa: E402

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
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (and, for PostgreSQL's postmaster, of its exited children:
    the backends of closed connections)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class CpuMeter:
    """CPU time spent by the collector's own process (paho, dispatch, acknowledgements), its
    writer processes, PostgreSQL (the postmaster, its live backends and the exited ones) and
    mosquitto: rates depend on what else the machine runs, CPU time per device much less.
    Writers alive at a snapshot are read from /proc; those that ended in between are in this
    process's ``RUSAGE_CHILDREN`` (nothing else of ours ends while a phase is measured)."""

    def __init__(
        self, postmaster: int, broker: int | None = None, writers: Callable[[], list[int]] = list
    ) -> None:
        self.postmaster, self.broker, self.writers = postmaster, broker, writers

    def snapshot(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg = _proc_cpu(self.postmaster, children=True)
        pg += sum(_proc_cpu(c) for c in _children(self.postmaster))
        return {
            "collector": own.ru_utime + own.ru_stime,
            "writers": ended.ru_utime + ended.ru_stime + sum(map(_proc_cpu, self.writers())),
            "postgres": pg,
            "mosquitto": _proc_cpu(self.broker) if self.broker else 0.0,
        }

    @staticmethod
    def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: b[k] - a[k] for k in a}


def workload(
    template: ScanResult, scans: int, per_scan: int, sites: int = 20
) -> list[tuple[str, bytes]]:
    """(topic, payload) of ``scans`` agents' scans, in the order an agent sends them: scan n
    comes from site n mod ``sites``."""
    out: list[tuple[str, bytes]] = []
    seq = 0
    for n in range(scans):
        site, agent, scan_id = f"site-{n % sites}", f"agent-{n % sites}", str(uuid.uuid4())
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


def write_path(
    db: str, messages: list[tuple[str, bytes]], batch: int, writers: int, postmaster: int
) -> tuple[float, dict[str, float]]:
    """Seconds (and CPU seconds) for the collector to decode and store ``messages`` fed from
    memory."""
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

        # As in production: paho's thread hands messages over while the writer processes
        # check and store earlier ones; serve() returns once everything received is stored.
        def feed() -> None:
            for m in msgs:
                collector._on_message(collector.client, None, m)
            stop.set()

        feeder = threading.Thread(target=feed)
        # The writers are alive at the first snapshot, ended (and in RUSAGE_CHILDREN) at the
        # last.
        meter = CpuMeter(postmaster, writers=lambda: collector.writer_pids)
        started: dict[str, Any] = {}

        def start() -> None:  # as the broker connection would: once the writers are up
            started["cpu"], started["t"] = meter.snapshot(), time.perf_counter()
            feeder.start()

        collector.serve(stop, start)
        feeder.join()
        c0, t0 = started["cpu"], started["t"]
        elapsed = time.perf_counter() - t0
        cpu = meter.delta(c0, meter.snapshot())
        assert collector.stats.rejected == 0, collector.stats
    return elapsed, cpu


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
    postmaster: int,
) -> tuple[float, dict[str, float]]:
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
            assert broker.proc is not None
            if backlog:
                stop.set()
                runner.join(60)
                agent.start()
                agent.join()
                coll, stop, runner = collector()
                # Timed from here: the writers are up, the backlog is being received.
                meter = CpuMeter(postmaster, broker.proc.pid, lambda: coll.writer_pids)
                c0 = meter.snapshot()
                t0 = time.perf_counter()
            else:
                meter = CpuMeter(postmaster, broker.proc.pid, lambda: coll.writer_pids)
                c0 = meter.snapshot()
                t0 = time.perf_counter()
                agent.start()
            # One connection for the polling: a new one each time would fork a backend and
            # build an engine every 50 ms, and be counted as the collector's work.
            sql = text("SELECT COUNT(*) FROM scans WHERE status = 'complete'")
            engine = create_engine(db)
            try:
                with engine.connect() as conn:
                    while int(conn.execute(sql).scalar_one()) < scans:
                        conn.rollback()  # a fresh snapshot next time
                        time.sleep(0.05)
            finally:
                engine.dispose()
            elapsed = time.perf_counter() - t0
            cpu = meter.delta(c0, meter.snapshot())
            agent.join()
            stop.set()
            runner.join(60)
            assert coll.stats.rejected == 0, coll.stats
    finally:
        broker.remove()
    return elapsed, cpu


def per_device(phase: str, cpu: dict[str, float], n: int, writers: int) -> dict[str, float]:
    """CPU milliseconds per device by process, and the rate they allow on two idle cores:
    the collector's own process is bound to one core (Python), each writer process to one,
    the whole to two."""
    ms = {k: 1000 * v / n for k, v in cpu.items()}
    total = sum(ms.values())
    out = {f"{phase}_cpu_ms_per_device_{k}": round(v, 3) for k, v in ms.items()}
    bounds = [1000 / ms["collector"], 1000 * min(writers, 2) / ms["writers"], 2000 / total]
    out[f"{phase}_devices_per_s_on_2_idle_cores"] = round(min(bounds))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--result", type=Path, default=DEFAULT_RESULT, help="a lab scan result")
    ap.add_argument("--scans", type=int, default=100)
    ap.add_argument("--devices", type=int, default=50, help="devices per scan")
    ap.add_argument("--batch", type=int, default=200, help="the collector's batch size")
    ap.add_argument("--writers", type=int, default=2, help="the collector's writer processes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.result.exists():
        raise SystemExit(
            f"no scan result at {args.result}: iotrate lab exec -- iotrate scan SUBNET -o FILE"
        )
    load_at_start = round(os.getloadavg()[0], 2)
    tune_gc()  # as ``iotrate collector`` does
    template = ScanResult.model_validate_json(args.result.read_text(encoding="utf-8"))
    messages = workload(template, args.scans, args.devices)
    n_devices = args.scans * args.devices
    size = sum(len(p) for t, p in messages if "/device/" in t) / n_devices
    pg = PostgresServer(fast=False)
    try:
        dbs = [pg.new_database("bench") for _ in range(3)]
        pm = pg.proc.pid
        t_write, cpu_write = write_path(dbs[0], messages, args.batch, args.writers, pm)
        run = (dbs[1], messages, args.scans, args.batch, args.writers)
        t_live, cpu_live = end_to_end(*run, backlog=False, postmaster=pm)
        run = (dbs[2], messages, args.scans, args.batch, args.writers)
        t_backlog, cpu_backlog = end_to_end(*run, backlog=True, postmaster=pm)
        stored = [count(db, "SELECT COUNT(*) FROM devices") for db in dbs]
    finally:
        pg.stop()
    assert stored == [n_devices] * 3, (stored, n_devices)
    figures = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "load_average_at_start": load_at_start,
        "scans": args.scans,
        "devices": n_devices,
        "messages": len(messages),
        "device_message_bytes_mean": round(size),
        "batch_size": args.batch,
        "writers": args.writers,
        "write_path_s": round(t_write, 2),
        "write_path_devices_per_s": round(n_devices / t_write),
        "end_to_end_live_s": round(t_live, 2),
        "end_to_end_live_devices_per_s": round(n_devices / t_live),
        "end_to_end_backlog_s": round(t_backlog, 2),
        "end_to_end_backlog_devices_per_s": round(n_devices / t_backlog),
        **per_device("write_path", cpu_write, n_devices, args.writers),
        **per_device("end_to_end_live", cpu_live, n_devices, args.writers),
        **per_device("end_to_end_backlog", cpu_backlog, n_devices, args.writers),
        # The collector runs in this process: its peak, plus the workload held in memory.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "workload_mib": round(sum(len(p) for _, p in messages) / 2**20),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:34} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
