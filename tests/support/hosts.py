"""What a test needs from the host (root, network namespaces, a daemon) and what it does when
that is missing: skip on a developer's machine, fail under ``CI``, which must run everything —
so a missing capability never hides as a silent skip in CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

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


def _find(*names: str) -> str | None:
    return next((p for n in names if (p := shutil.which(n))), None)


def chromium_driver() -> Iterator[Any]:
    """A headless Debian chromium under Selenium, with its browser console log kept, quit and
    its profile removed afterwards (``yield from`` it in a fixture)."""
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    chromedriver = _find("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if chromium is None or chromedriver is None:
        missing("needs chromium, chromium-driver and selenium (see scripts/lab-packages.txt)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="iotrate-chromium-")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver))
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
