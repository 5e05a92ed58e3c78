"""The scale profile end to end: 40 emulated hosts come up, a full scan from the scanner
namespace finds and rates every one, the planted weaknesses are found, tarpits cost only
"could not test" outcomes, and ``lab down`` leaves nothing behind.

The profile runs as its own lab instance (``IOTRATE_SCALE_LAB_INSTANCE``, default ``sct`` on
10.233.0.0/16), beside the reference lab the other lab tests share, so it talks to the lab
through the command line with that instance in the environment (the instance is fixed when
``iotrate.lab`` is imported).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE
from support.hosts import need_namespaces

HOSTS = 40
INSTANCE = os.environ.get("IOTRATE_SCALE_LAB_INSTANCE", "sct")
SUBNET = os.environ.get("IOTRATE_SCALE_LAB_SUBNET", "10.233.0.0/16")
# The planted weakness -> the finding (check, port) the default scan must report for it.
EXPECTED = {
    "telnet-default-password": ("cred.default-password", 23),
    "web-default-password": ("cred.default-password", 80),
    "adb-unauthenticated": ("svc.adb.unauthenticated", 5555),
    "telnet": ("svc.telnet", 23),
}


def _env() -> dict[str, str]:
    return {**os.environ, "IOTRATE_LAB_INSTANCE": INSTANCE, "IOTRATE_LAB_SUBNET": SUBNET}


def _iotrate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [IOTRATE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )
    assert res.returncode == 0, f"iotrate {' '.join(args)}: {res.stderr[-2000:]}"
    return res


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    """Running, or stopped but not yet dead; a zombie (killed, waiting for init to reap it)
    holds no socket and no namespace, so it counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture()
def scale_lab() -> Any:
    need_namespaces("the scale lab")
    _iotrate("lab", "up", "--profile", "scale", "--hosts", str(HOSTS), "--link", "macvlan")
    try:
        yield json.loads(_iotrate("lab", "status", "--json").stdout)
    finally:
        subprocess.run([IOTRATE, "lab", "down"], env=_env(), timeout=120, check=False)


@pytest.mark.lab
def test_the_scale_lab_is_found_rated_and_torn_down(
    scale_lab: dict[str, Any], tmp_path: Path
) -> None:
    status = scale_lab
    assert status["running"] and status["profile"] == "scale"
    assert status["hosts"] == HOSTS and status["link"] == "macvlan"
    rows = {r["address"]: r for r in status["devices"]}
    assert len(rows) == HOSTS
    kinds = {r["kind"] for r in rows.values()}
    assert {"dvr", "tarpit", "telnet", "closed"} <= kinds  # the mix this test relies on

    out = tmp_path / "scan.json"
    scanner = status["scanner"]["namespace"]
    res = subprocess.run(
        ["ip", "netns", "exec", scanner, IOTRATE, "scan",
         status["targets"], "--json", "-o", str(out), "--no-history"],
        capture_output=True, text=True, timeout=180, env=_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(out.read_text())
    devices = {d["address"]: d for d in result["devices"]}
    assert set(devices) == set(rows)  # every host, silent ones too (they answer ARP)
    assert result["discovery_mode"].startswith("arp")

    for address, row in rows.items():
        d = devices[address]
        assert d["mac"] == row["mac"], address  # the ARP sweep saw each host's own MAC
        rating = d["rating"]
        assert rating, address
        if row["weaknesses"]:  # a planted weakness is decisive: always a letter
            assert rating["grade"] in tuple("ABCDEFG"), (address, rating["reasons"])
        else:  # a quiet host: a letter, or "not enough seen to rate" (scheme 2026.3)
            assert rating["grade"] in tuple("ABCDEFG") or (
                rating["grade"] is None and rating["status"] == "insufficient_evidence"
            ), (address, rating["reasons"])
        found = {(f["check"], f.get("port")) for f in d["findings"]}
        for weakness, finding in EXPECTED.items():
            if weakness in row["weaknesses"]:
                assert finding in found, (address, row["kind"], weakness)
            elif finding[0] != "svc.telnet":  # exposure is a finding for every telnet host
                assert finding not in found, (address, row["kind"], weakness)
        if row["kind"] == "tarpit":
            # Open ports that never answer: the probes on them fail with a reason, which is
            # unknown coverage, never a finding about the service and never a pass.
            on_ports = [o for o in d["outcomes"] if o.get("port") in (23, 80)]
            assert on_ports and all(
                o["status"] == "failed" and o.get("reason") for o in on_ports
            ), on_ports
            assert not [f for f in d["findings"] if f.get("port") in (23, 80)]
            assert d["rating"]["coverage"]["fraction"] < 1.0
            assert set(d["rating"]["coverage"]["checks_unknown"]) >= {"svc.telnet"}

    # lab down: no namespace, process or state file of this instance is left.
    pids = [p["pid"] for p in status["daemons"]]
    assert pids
    subprocess.run([IOTRATE, "lab", "down"], env=_env(), timeout=120, check=True)
    assert not [ns for ns in _namespaces() if ns.startswith(f"iotr{INSTANCE}-")]
    assert not [p for p in pids if _alive(p)]
    assert not Path(status["state_file"]).exists()
    assert not (status["temp_dir"] and Path(status["temp_dir"]).exists())
