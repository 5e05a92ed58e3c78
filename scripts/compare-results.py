#!/usr/bin/env python3
"""Compare two iotrate JSON results, apart from what changes on every run.

Why: a refactor must leave what a scan finds and how it grades unchanged, and timings, ids and
the order devices finished in change on every run. This prints every remaining difference as
``device  path: before -> after`` and sums them up per field, so a reviewer sees at once
whether a change is confined to the fields it meant to touch (``--ignore standards`` hides a
field that is expected to differ).

    python scripts/compare-results.py before.json after.json [--ignore FIELD ...]

Exit status: 0 when the results match, 1 when they differ, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: Keys whose values differ on every run: clock times, durations, random ids.
VOLATILE = frozenset(
    {
        "scan_id",
        "started_at",
        "finished_at",
        "rated_at",
        "duration_s",
        "elapsed_s",
        "id",
        "tool",
    }
)


def _key(item: Any) -> str:
    """A stable name for a list element, so lists compare by identity, not position."""
    if isinstance(item, dict):
        for field in ("address", "check", "probe", "cap", "name", "port", "summary"):
            if field in item:
                extra = item.get("port") if field in ("check", "probe") else None
                return f"{item[field]}" + (f"@{extra}" if extra is not None else "")
    return json.dumps(item, sort_keys=True)


def _normalise(value: Any, ignore: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _normalise(v, ignore)
            for k, v in value.items()
            if k not in VOLATILE and k not in ignore
        }
    if isinstance(value, list):
        items = [_normalise(v, ignore) for v in value]
        keyed: dict[str, Any] = {}
        for item in items:
            key = _key(item)
            while key in keyed:
                key += "'"
            keyed[key] = item
        return (
            keyed
            if all(isinstance(v, dict) for v in items)
            else sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        )
    return value


def _diff(a: Any, b: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}/{k}", out)
    elif a != b:
        out.append((path, a, b))


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", action="append", default=[], help="a field name to skip")
    args = parser.parse_args(argv)
    try:
        docs = [json.loads(p.read_text(encoding="utf-8")) for p in (args.before, args.after)]
    except (OSError, ValueError) as exc:
        print(f"compare-results: {exc}", file=sys.stderr)
        return 2
    ignore = frozenset(args.ignore)
    a, b = (_normalise(d, ignore) for d in docs)
    diffs: list[tuple[str, Any, Any]] = []
    _diff(a, b, "", diffs)
    per_field: Counter[str] = Counter()
    for path, old, new in diffs:
        print(f"{path}: {_short(old)} -> {_short(new)}")
        per_field[path.rsplit("/", 1)[-1]] += 1
    devices = len(docs[0].get("devices", []))
    print(f"{devices} devices compared; {len(diffs)} differences", end="")
    print(": " + ", ".join(f"{k} {n}" for k, n in per_field.most_common()) if diffs else "")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
