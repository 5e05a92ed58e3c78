"""Scale benchmark: the full rating of N emulated hosts, and how its cost grows with N.

    sudo .venv/bin/python -m benchmarks.scale --hosts 250 1000 [--repeat 1]

For each N it brings up the lab's scale profile in a lab instance of its own (namespaces
``iotrscl-*``, subnet 10.232.0.0/16; ``--link auto``: macvlan with ARP up to 400 hosts, routed
above), runs ``iotrate scan`` of exactly the emulated hosts (discovery, identification, every
default probe, rating, JSON out) in the scanner namespace, which has no route off the lab, and
reports wall time, peak RSS of the scan process, devices found and rated, and time per host.
The last line is the growth: time (and memory) per host at the largest N over the smallest, so
1.0 is linear. The emulator shares the machine's cores with the scanner, as a busy LAN would
not; the figures are an upper bound. Targets and the latest figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.executables import IOTRATE

INSTANCE = "scl"
SUBNET = "10.232.0.0/16"
ENV = {**os.environ, "IOTRATE_LAB_INSTANCE": INSTANCE, "IOTRATE_LAB_SUBNET": SUBNET}
# Peak RSS of the scan, from a parent that does nothing else: RUSAGE_CHILDREN's ru_maxrss is
# the largest resident set any waited-for descendant reached (the scan is one process).
MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "dt = time.monotonic() - t\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'s': dt, 'rss': ru.ru_maxrss / 1024, 'cpu': ru.ru_utime + ru.ru_stime,\n"
    "                  'rc': p.returncode, 'err': p.stderr[-2000:]}))\n"
)


@dataclass
class Point:
    hosts: int
    link: str
    seconds: float
    cpu: float
    rss_mb: float
    found: int
    rated: int
    weak_found: int
    weak_planted: int

    @property
    def per_host_ms(self) -> float:
        return self.seconds / self.hosts * 1000


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IOTRATE, "lab", *args], capture_output=True, text=True, env=ENV, check=True
    )


# Planted weakness -> the check the default scan reports for it (spot check of the result).
WEAKNESS_CHECKS = {
    "telnet-default-password": "cred.default-password",
    "web-default-password": "cred.default-password",
    "adb-unauthenticated": "svc.adb.unauthenticated",
    "telnet": "svc.telnet",
}


def measure(n: int, out: Path) -> Point:
    lab("down")
    up = time.monotonic()
    status: dict[str, Any] = json.loads(
        lab("up", "--profile", "scale", "--hosts", str(n), "--json").stdout
    )
    print(f"  lab of {n} hosts ({status['link']}) up in {time.monotonic() - up:.1f}s", flush=True)
    ns = status["scanner"]["namespace"]
    cmd = [IOTRATE, "scan", status["targets"], "--no-history", "--json", "-o", str(out)]
    res = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", MEASURE, *cmd],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=3600,
    )
    data = json.loads(res.stdout.strip().splitlines()[-1])
    if data["rc"] != 0:
        raise SystemExit(f"scan of {n} hosts failed ({data['rc']}): {data['err']}")
    result = json.loads(out.read_text())
    devices = {d["address"]: d for d in result["devices"]}
    planted = found = 0
    for row in status["devices"]:
        checks = {f["check"] for f in devices.get(row["address"], {}).get("findings", [])}
        for weakness in row["weaknesses"]:
            if weakness in WEAKNESS_CHECKS:
                planted += 1
                found += WEAKNESS_CHECKS[weakness] in checks
    wanted = {row["address"] for row in status["devices"]}
    return Point(
        hosts=n,
        link=status["link"],
        seconds=data["s"],
        cpu=data["cpu"],
        rss_mb=data["rss"],
        found=len(wanted & set(devices)),
        rated=sum(1 for a in wanted if (devices.get(a) or {}).get("rating")),
        weak_found=found,
        weak_planted=planted,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (median reported)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (they build a lab of network namespaces)", file=sys.stderr)
        return 2
    print(f"iotrate scale benchmark — lab instance {INSTANCE} on {SUBNET}")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}", flush=True)
    points: list[Point] = []
    work = Path(tempfile.mkdtemp(prefix="iotrate-scale-"))
    try:
        for n in sorted(args.hosts):
            runs = [measure(n, work / f"scan-{n}-{i}.json") for i in range(args.repeat)]
            runs.sort(key=lambda p: p.seconds)
            p = runs[len(runs) // 2]
            p.rss_mb = max(r.rss_mb for r in runs)
            points.append(p)
            spread = (
                f" (min {runs[0].seconds:.1f}s, max {runs[-1].seconds:.1f}s)"
                if len(runs) > 1
                else ""
            )
            print(
                f"N={p.hosts:5d} {p.link:8s} wall {p.seconds:7.1f}s{spread}  "
                f"cpu {p.cpu:6.1f}s  peak RSS {p.rss_mb:6.1f} MB  "
                f"found {p.found}/{p.hosts}  rated {p.rated}/{p.hosts}  "
                f"planted weaknesses found {p.weak_found}/{p.weak_planted}  "
                f"{p.per_host_ms:6.1f} ms/host",
                flush=True,
            )
    finally:
        subprocess.run([IOTRATE, "lab", "down"], env=ENV, check=False, capture_output=True)
    if len(points) >= 2:
        lo, hi = points[0], points[-1]
        growth = hi.per_host_ms / lo.per_host_ms
        rss_growth = (hi.rss_mb / hi.hosts) / (lo.rss_mb / lo.hosts)
        print(
            f"\ngrowth N={lo.hosts} -> {hi.hosts} ({hi.hosts / lo.hosts:g}x hosts): "
            f"wall {hi.seconds / lo.seconds:.2f}x, time per host {growth:.2f}x "
            f"(1.0 = linear), cpu per host {(hi.cpu / hi.hosts) / (lo.cpu / lo.hosts):.2f}x, "
            f"RSS {hi.rss_mb / lo.rss_mb:.2f}x (per host {rss_growth:.2f}x)"
        )
        print(f"median time per host: {statistics.median(p.per_host_ms for p in points):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
