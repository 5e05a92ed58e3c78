"""Shared fixtures. ``lab``: the reference lab, built once per session for ``@pytest.mark.lab``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.hosts import need_namespaces


@pytest.fixture(autouse=True)
def _history_db(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """``iotrate scan`` records history by default; tests must never write the user's own
    database, so each test gets a throwaway one (subprocesses inherit the variable)."""
    path = tmp_path_factory.mktemp("history") / "iotrate.db"
    monkeypatch.setenv("IOTRATE_DB", str(path))


@pytest.fixture(autouse=True)
def _no_leftover_collectors() -> Iterator[None]:
    """A fleet test that fails half-way must not leave its ``iotrate collector`` running."""
    yield
    from support.fleet import kill_leftovers

    kill_leftovers()


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, Any]]:
    """The running lab's status; torn down at the end, even when tests fail.

    A lab that was already running before the session (a developer's) is left running.
    Skips only where the lab cannot exist at all; a failure to build it is an error.
    """
    need_namespaces()
    from iotrate import lab as lab_api

    was_running = bool(lab_api.lab_status()["running"])
    try:
        yield lab_api.lab_up()
    finally:
        if not was_running:
            lab_api.lab_down()


@pytest.fixture(scope="session")
def in_scanner(lab: dict[str, Any]) -> Callable[[str], Any]:
    """Run a Python snippet inside the lab's scanner namespace; it prints JSON, we parse it.

    Everything a test sends to lab devices goes out from there, never from this namespace."""

    def run(code: str, timeout: float = 120) -> Any:
        res = subprocess.run(
            ["ip", "netns", "exec", lab["scanner"]["namespace"], sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def empty_netns() -> Iterator[str]:
    """A network namespace with only loopback: a scan run in it can reach nothing, and its
    loopback counters prove whether it tried to send anything at all."""
    need_namespaces("a safety test")
    name = f"iotr-empty-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
