"""Speed benchmarks against nmap and sslscan, all inside a lab instance of our own.

    sudo .venv/bin/python -m benchmarks.run [--repeat 3] [--skip-nmap-full]

Brings up a private lab instance (namespaces ``iotrbnch-*``, subnet 10.231.60.0/24), runs every
command in its scanner namespace — which has no route off the lab — and prints, for each pair,
min / median / max wall time over the repeats, the ratio of the medians and each side's peak
RSS. The lab is taken down at the end. Targets and the latest figures: benchmarks/README.md.

Pairs:
1. discovery of the /24: iotrate's ARP sweep (a fresh interpreter, imports included) vs
   ``nmap -n -sn``;
2. full rating of the lab: ``iotrate scan`` (discovery, identification, all default probes,
   rating) vs ``nmap -n -sV -T4 -sT -sU`` with ssl-enum-ciphers, http-default-accounts,
   mqtt-subscribe, upnp-info and snmp-info over the same hosts and ports;
3. TLS on the weak hub and the hardened plug: ``iotrate scan HOST --ports 443`` (TLS and
   update probes) vs ``sslscan``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.executables import IOTRATE

INSTANCE = "bnch"
SUBNET = "10.231.60.0/24"
ENV = {**os.environ, "IOTRATE_LAB_INSTANCE": INSTANCE, "IOTRATE_LAB_SUBNET": SUBNET}


@dataclass
class Run:
    seconds: float
    rss_mb: float
    out: str


def run_in_scanner(ns: str, cmd: list[str], timeout: float = 1800) -> Run:
    """Time one command in the scanner namespace; peak RSS from a fresh measuring parent."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.monotonic() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'s': dt, 'rss': rss, 'rc': p.returncode, 'out': p.stdout[-200000:]}))\n"
    )
    res = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", probe, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return Run(seconds=data["s"], rss_mb=data["rss"], out=data["out"])


def stats(runs: list[Run]) -> str:
    s = [r.seconds for r in runs]
    return (
        f"min {min(s):7.2f}s  median {statistics.median(s):7.2f}s  max {max(s):7.2f}s  "
        f"peak RSS {max(r.rss_mb for r in runs):6.1f} MB"
    )


def compare(name: str, ours: list[Run], theirs: list[Run], their_name: str) -> float:
    ratio = statistics.median(r.seconds for r in theirs) / statistics.median(
        r.seconds for r in ours
    )
    print(f"\n{name}")
    print(f"  iotrate   {stats(ours)}")
    print(f"  {their_name:<9} {stats(theirs)}")
    print(f"  ratio     {their_name} / iotrate = {ratio:.2f}x")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-nmap-full", action="store_true", help="skip pair 2's nmap side")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (they build a lab of network namespaces)", file=sys.stderr)
        return 2
    for tool in ("nmap", "sslscan"):
        if shutil.which(tool) is None:
            print(f"benchmarks need {tool} (apt-get install {tool})", file=sys.stderr)
            return 2
    up = subprocess.run(
        [IOTRATE, "lab", "up", "--json"], capture_output=True, text=True, env=ENV, check=True
    )
    status = json.loads(up.stdout)
    try:
        ns = status["scanner"]["namespace"]
        devices = {d["name"]: d for d in status["devices"]}
        addrs = [d["address"] for d in status["devices"]]
        tcp = sorted(
            {p["port"] for d in status["devices"] for p in d["ports"] if p["transport"] == "tcp"}
        )
        udp = sorted(
            {p["port"] for d in status["devices"] for p in d["ports"] if p["transport"] == "udp"}
        )
        print(f"iotrate benchmarks — lab {SUBNET}, {len(addrs)} devices, {args.repeat} run(s) each")
        print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")

        hosts_code = (
            "import asyncio, ipaddress\n"
            "from iotrate.discovery import arp\n"
            f"hosts = [str(h) for h in ipaddress.ip_network({SUBNET!r}).hosts()]\n"
            "print(len(asyncio.run(arp.sweep(hosts))))\n"
        )
        ours = [run_in_scanner(ns, [sys.executable, "-c", hosts_code]) for _ in range(args.repeat)]
        theirs = [run_in_scanner(ns, ["nmap", "-n", "-sn", SUBNET]) for _ in range(args.repeat)]
        print(
            f"\n(hosts found: iotrate {ours[0].out.strip()}; nmap: "
            f"{theirs[0].out.count('Host is up')} incl. the scanner)"
        )
        compare("1. discovery of the /24", ours, theirs, "nmap -sn")

        result = Path(tempfile.mkdtemp(prefix="iotrate-bench-")) / "scan.json"
        scans = [
            run_in_scanner(ns, [IOTRATE, "scan", SUBNET, "--no-history", "-o", str(result)])
            for _ in range(args.repeat)
        ]
        findings = sum(len(d["findings"]) for d in json.loads(result.read_text())["devices"])
        if not args.skip_nmap_full:
            ports = "T:" + ",".join(map(str, tcp)) + ",U:" + ",".join(map(str, udp))
            nmap_cmd = [
                "nmap",
                "-n",
                "-sV",
                "-T4",
                "-sT",
                "-sU",
                "-p",
                ports,
                "--script",
                "ssl-enum-ciphers,http-default-accounts,mqtt-subscribe,upnp-info,snmp-info",
                *addrs,
            ]
            nm = [run_in_scanner(ns, nmap_cmd) for _ in range(max(1, min(args.repeat, 1)))]
            compare("2. full rating of the lab", scans, nm, "nmap -sV")
            print(
                f"  iotrate findings: {findings}; nmap script results: "
                f"{nm[0].out.count('|_') + nm[0].out.count('| ')} output lines"
            )
        else:
            print(f"\n2. full rating of the lab\n  iotrate   {stats(scans)}  ({findings} findings)")

        for name in ("hub", "plug"):
            addr = devices[name]["address"]
            ours = [
                run_in_scanner(
                    ns, [IOTRATE, "scan", addr, "--ports", "443", "--safe", "--no-history"]
                )
                for _ in range(args.repeat)
            ]
            theirs = [
                run_in_scanner(ns, ["sslscan", "--no-colour", f"{addr}:443"])
                for _ in range(args.repeat)
            ]
            compare(f"3. TLS of the {name} ({addr}:443)", ours, theirs, "sslscan")
    finally:
        subprocess.run([IOTRATE, "lab", "down"], env=ENV, check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = main()
    print(
        f"\nbenchmark wall time {time.monotonic() - t0:.0f}s; resource max RSS of this "
        f"process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    sys.exit(rc)
