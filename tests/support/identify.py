"""Helpers for the identification tests: the shared fixtures (tests may read ../shared)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from iotrate.identify import Identifier, read_observations
from iotrate.models import Identity

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
OBSERVATIONS = SHARED / "observations.jsonl"
TRUTH = SHARED / "truth.jsonl"


def shared_or_skip() -> Path:
    if not OBSERVATIONS.is_file() or not TRUTH.is_file():
        if os.environ.get("CI"):
            pytest.fail("CI has ../shared beside the clone; ../shared/fixtures is missing")
        pytest.skip("../shared/fixtures is not available")
    return SHARED


def identify_lines(*objs: dict[str, Any]) -> Identity:
    """Identify one device from observation dicts (their 'device' defaults to 'dut')."""
    lines = [json.dumps({"device": "dut", **o}) for o in objs]
    res = read_observations(lines)
    assert not res.errors, res.errors
    results = Identifier().identify_device("dut", res.observations)
    return results


def rules_fired(identity: Identity) -> set[str]:
    return {e.rule for e in identity.evidence}


def benchmark_module() -> ModuleType:
    """``benchmarks.identify``, importable from the repository root (not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.identify")
