"""JSON output: the scan result exactly as the published schema describes it."""

from __future__ import annotations

import json

from iotrate.models import ScanResult, json_schema


def render(result: ScanResult, indent: int | None = 2) -> str:
    return result.model_dump_json(indent=indent)


def load(text: str) -> ScanResult:
    return ScanResult.model_validate_json(text)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
