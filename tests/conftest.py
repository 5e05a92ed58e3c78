"""Fixtures every test folder shares: a throwaway history database, no collector left behind,
an empty network namespace. The reference lab's fixtures are in lab/conftest.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

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
