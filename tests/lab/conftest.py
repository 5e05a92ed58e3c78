"""The lab tests' fixtures. ``lab``: the reference lab, built once per session for the tests
marked ``@pytest.mark.lab``, which all live in this folder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.hosts import need_namespaces


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
