"""What a test needs from the host (root, network namespaces, a daemon) and what it does when
that is missing: skip on a developer's machine, fail under ``CI``, which must run everything —
so a missing capability never hides as a silent skip in CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def missing(why: str) -> None:
    """Skip for a missing capability; fail instead under CI, which must run everything."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but {why}")
    pytest.skip(why)


def need_namespaces(what: str = "the lab") -> None:
    """Linux, root and iproute2: what every network-namespace test needs."""
    if not sys.platform.startswith("linux"):
        missing(f"{what} needs Linux network namespaces")
    elif os.geteuid() != 0:
        missing(f"{what} needs root (network namespaces); CI runs as root")
    elif shutil.which("ip") is None:
        missing(f"{what} needs iproute2 (ip)")


def lo_tx_packets(ns: str) -> int:
    """Packets sent on a namespace's loopback: an empty namespace has nothing else to send on."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "-s", "link", "show", "lo"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])
