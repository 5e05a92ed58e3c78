"""Shared fixtures. ``lab``: the reference lab, built once per session for ``@pytest.mark.lab``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, Any]]:
    """The running lab's status; torn down at the end, even when tests fail.

    A lab that was already running before the session (a developer's) is left running.
    Skips only where the lab cannot exist at all; a failure to build it is an error.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("the lab needs Linux network namespaces")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces); CI runs as root")
    from iotrate import lab as lab_api

    was_running = bool(lab_api.lab_status()["running"])
    try:
        yield lab_api.lab_up()
    finally:
        if not was_running:
            lab_api.lab_down()
