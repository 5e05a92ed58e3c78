"""The dashboard over a fleet-sized database: how long its pages take.

Usage::

    python -m benchmarks.dashboard [--sites 100] [--devices 50] [--scans-per-site 2] [--json]

Fills a fresh PostgreSQL database (started by the benchmark on 127.0.0.1, removed after) the way
the collector does — the lab's own devices (``tests/data/lab-scan.json``) with fresh addresses,
``--scans-per-site`` complete scans of ``--devices`` devices for each of ``--sites`` sites,
stored through the collector's writer — then requests each page of ``iotrate serve``'s app in
process (Starlette's test client: routing, the database thread, templates, no network) and
reports the median of three cold requests (a new app: empty result cache) and three warm ones,
in milliseconds, with the size of the page. "Current" devices are those of each site's newest
complete scan: ``--sites`` times ``--devices`` of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.fleet import PostgresServer  # noqa: E402

from benchmarks.collector import DEFAULT_RESULT, workload  # noqa: E402
from iotrate.fleet.messages import MAX_MESSAGE_BYTES  # noqa: E402
from iotrate.fleet.writer import Writer, tune_gc  # noqa: E402
from iotrate.models import ScanResult  # noqa: E402
from iotrate.storage import Store  # noqa: E402
from iotrate.web import DashboardConfig, create_app  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8765"


def fill(db: str, template: ScanResult, sites: int, per_site: int, per_scan: int) -> int:
    """Store the scans through the collector's writer; the number of messages."""
    messages = workload(template, sites * per_site, per_scan, sites=sites)
    with Store(db) as store:
        writer = Writer(store, MAX_MESSAGE_BYTES, lambda _level, line: print(line))
        for i in range(0, len(messages), 200):
            report = writer.handle(messages[i : i + 200], lambda _t: True)
            assert report.committed and report.rejected == 0, report
    return len(messages)


def pages(client: TestClient) -> dict[str, str]:
    """The pages to time, with real keys taken from the database through the API."""
    devices = client.get("/api/devices").json()["devices"]
    first = devices[0]
    return {
        "overview": "/",
        "devices (all current)": "/devices",
        "devices, one grade": f"/devices?grade={first['grade']}",
        "devices, one site": f"/devices?site={first['site']}",
        "device": first["href"],
        "scans": "/scans",
        "diff (default pair)": "/diff",
    }


def timed(client: TestClient, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.get(url)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return elapsed * 1000, len(r.content)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--devices", type=int, default=50, help="devices per scan")
    ap.add_argument("--scans-per-site", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tune_gc()
    template = ScanResult.model_validate_json(DEFAULT_RESULT.read_text(encoding="utf-8"))
    pg = PostgresServer()
    figures: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "sites": args.sites,
        "scans": args.sites * args.scans_per_site,
        "current_devices": args.sites * args.devices,
        "stored_devices": args.sites * args.scans_per_site * args.devices,
    }
    try:
        db = pg.new_database("dash")
        t0 = time.perf_counter()
        fill(db, template, args.sites, args.scans_per_site, args.devices)
        figures["fill_s"] = round(time.perf_counter() - t0, 1)

        def app() -> Any:
            return create_app(DashboardConfig(open_store=lambda: Store(db)))

        with TestClient(app(), base_url=BASE) as c:
            urls = pages(c)
        cold: dict[str, list[float]] = {k: [] for k in urls}
        warm: dict[str, list[float]] = {k: [] for k in urls}
        size: dict[str, int] = {}
        for _ in range(3):
            for name, url in urls.items():
                with TestClient(app(), base_url=BASE) as c:
                    cold[name].append(timed(c, url)[0])
                    ms, size[name] = timed(c, url)
                    warm[name].append(ms)
        for name in urls:
            figures[f"{name}: cold ms"] = round(statistics.median(cold[name]))
            figures[f"{name}: warm ms"] = round(statistics.median(warm[name]))
            figures[f"{name}: kB"] = round(size[name] / 1024)
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        pg.stop()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:40} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
