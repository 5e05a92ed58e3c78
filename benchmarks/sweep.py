"""The lab profile's full TCP sweep of one device, inside a lab instance of our own.

    sudo .venv/bin/python -m benchmarks.sweep [--device plug] [--repeat 2]

Brings up a private lab instance (namespaces ``iotrswp-*``, subnet 10.231.61.0/24), and times,
in its scanner namespace (no route off the lab), ``iotrate scan DEVICE --profile lab`` (all
65,535 TCP ports, paced by the sweep pacer, then probes and rating) and, for comparison,
``--ports all --rate-limit 0`` (no pacing and no limit at all: as fast as the machine goes,
what only a device that tolerates anything allows). Target (issue 15): the lab profile sweeps
one device in about two minutes or less. The lab is taken down at the end. Latest figures:
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.run import Run, run_in_scanner, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.executables import IOTRATE

INSTANCE = "swp"
SUBNET = "10.231.61.0/24"
ENV = {**os.environ, "IOTRATE_LAB_INSTANCE": INSTANCE, "IOTRATE_LAB_SUBNET": SUBNET}


def scan(ns: str, address: str, out: Path, *extra: str) -> tuple[Run, dict[str, Any]]:
    cmd = [IOTRATE, "scan", address, "--no-history", "-o", str(out), *extra]
    run = run_in_scanner(ns, cmd)
    result = json.loads(out.read_text())
    return run, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="plug")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (they build a lab of network namespaces)", file=sys.stderr)
        return 2
    up = subprocess.run(
        [IOTRATE, "lab", "up", "--json"], capture_output=True, text=True, env=ENV, check=True
    )
    status = json.loads(up.stdout)
    try:
        ns = status["scanner"]["namespace"]
        address = next(d["address"] for d in status["devices"] if d["name"] == args.device)
        out = Path(tempfile.mkdtemp(prefix="iotrate-sweep-")) / "scan.json"
        print(f"lab profile sweep of {args.device} ({address}), {args.repeat} run(s) each")
        modes: list[tuple[str, tuple[str, ...]]] = [
            ("lab profile, paced (--profile lab)", ("--profile", "lab")),
            (
                "unpaced, unlimited (--ports all --rate-limit 0)",
                ("--ports", "all", "--rate-limit", "0"),
            ),
        ]
        for label, extra in modes:
            runs = []
            for _ in range(args.repeat):
                run, result = scan(ns, address, out, *extra)
                runs.append(run)
            scope = result["scope"]
            (dev,) = result["devices"]
            ports = sorted(s["port"] for s in dev["services"])
            print(f"\n{label}\n  {stats(runs)}")
            grade = dev["rating"]["grade"] if dev.get("rating") else None
            print(f"  scope {scope['tcp_ports']} {scope['tcp_port_count']} TCP; open {ports}; "
                  f"grade {grade}")  # fmt: skip
    finally:
        subprocess.run([IOTRATE, "lab", "down"], capture_output=True, env=ENV, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
