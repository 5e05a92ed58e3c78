"""Refresh Home Assistant's discovery matchers in ``iotrate/data/hass/`` from a release.

    python scripts/refresh_hass.py SOURCE [--version 2024.3.3]

SOURCE is a ``homeassistant-<version>-py3-none-any.whl`` (``pip download --no-deps
homeassistant==<version>``) or a checkout of home-assistant/core. The generated
``homeassistant/generated/{zeroconf,ssdp,dhcp,bluetooth}.py`` are read as Python literals (never
imported or run) and written as ``ha_<name>.json``. Each is checked before anything is written:
the expected top-level names, every matcher a mapping with a string ``domain``, known keys only,
no duplicate matcher, and a sane size; a broken source is refused with one line naming it and
nothing is changed. Licence: Apache-2.0 (``iotrate/data/hass/LICENSE-Apache-2.0``).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "iotrate" / "data" / "hass"
SOURCES: dict[str, tuple[str, ...]] = {
    "zeroconf": ("ZEROCONF", "HOMEKIT"),
    "ssdp": ("SSDP",),
    "dhcp": ("DHCP",),
    "bluetooth": ("BLUETOOTH",),
}
KEYS: dict[str, set[str]] = {
    "ZEROCONF": {"domain", "name", "properties"},
    "HOMEKIT": {"domain", "always_discover"},
    "SSDP": {"domain", "manufacturer", "deviceType", "modelName", "modelDescription",
             "manufacturerURL", "st", "nt", "x_rincon_bootseq", "server"},
    "DHCP": {"domain", "hostname", "macaddress", "registered_devices"},
    "BLUETOOTH": {"domain", "local_name", "service_uuid", "service_data_uuid", "manufacturer_id",
                  "manufacturer_data_start", "connectable"},
}  # fmt: skip
LIMITS = {"ZEROCONF": (20, 2000), "HOMEKIT": (10, 2000), "SSDP": (10, 2000),
          "DHCP": (50, 5000), "BLUETOOTH": (10, 2000)}  # fmt: skip


class BrokenSource(Exception):
    """The source is not what a Home Assistant release generates."""


def _read(source: Path, name: str) -> str:
    rel = f"homeassistant/generated/{name}.py"
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as whl:
            try:
                return whl.read(rel).decode("utf-8")
            except KeyError as exc:
                raise BrokenSource(f"{source.name}: no {rel}") from exc
    path = source / rel
    if not path.is_file():
        raise BrokenSource(f"{source}: no {rel}")
    return path.read_text(encoding="utf-8")


def _literals(text: str, where: str) -> dict[str, Any]:
    """Top-level ``NAME = literal`` / ``NAME: type = literal`` assignments, evaluated safely."""
    out: dict[str, Any] = {}
    for node in ast.parse(text, where).body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and value is not None:
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError as exc:
                raise BrokenSource(f"{where}: {target.id} is not a literal") from exc
    return out


def _entries(name: str, value: Any) -> list[tuple[str, Any]]:
    """(group, matcher) for one table: ZEROCONF/SSDP/HOMEKIT are keyed by type/domain/model."""
    if name in ("DHCP", "BLUETOOTH"):
        if not isinstance(value, list):
            raise BrokenSource(f"{name} is not a list")
        return [("", m) for m in value]
    if not isinstance(value, dict):
        raise BrokenSource(f"{name} is not a mapping")
    if name == "HOMEKIT":
        return [(str(k), m) for k, m in value.items()]
    if not all(isinstance(v, list) for v in value.values()):
        raise BrokenSource(f"{name}: a group is not a list")
    return [(str(k), m) for k, entries in value.items() for m in entries]


def validate(name: str, value: Any) -> None:
    entries = _entries(name, value)
    low, high = LIMITS[name]
    if not low <= len(entries) <= high:
        raise BrokenSource(f"{name} has {len(entries)} matchers (expected {low}-{high})")
    seen: set[str] = set()
    for group, m in entries:
        domain = group if name == "SSDP" else m.get("domain") if isinstance(m, dict) else None
        if not isinstance(m, dict) or not isinstance(domain, str) or not domain:
            raise BrokenSource(f"{name}: a matcher without a domain: {str(m)[:80]}")
        unknown = set(m) - KEYS[name]
        if unknown:
            raise BrokenSource(f"{name}: unknown matcher keys {sorted(unknown)}")
        key = group + json.dumps(m, sort_keys=True)
        if key in seen:
            raise BrokenSource(f"{name}: duplicate matcher {key[:80]}")
        seen.add(key)


def refresh(source: Path, version: str) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for file, names in SOURCES.items():
        where = f"homeassistant/generated/{file}.py"
        found = _literals(_read(source, file), where)
        doc: dict[str, Any] = {
            "_source": f"home-assistant/core {where} (from PyPI wheel homeassistant=={version}),"
            " Apache-2.0"
        }
        for n in names:
            if n not in found:
                raise BrokenSource(f"{where}: no {n}")
            validate(n, found[n])
            doc[n] = found[n]
        docs[file] = doc
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--version", required=True, help="The release, recorded in each file.")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        docs = refresh(args.source, args.version)
    except (BrokenSource, OSError, SyntaxError, zipfile.BadZipFile) as exc:
        print(f"refresh_hass: refusing {args.source}: {exc}", file=sys.stderr)
        return 1
    for file, doc in docs.items():
        (args.out / f"ha_{file}.json").write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    print(f"refresh_hass: wrote {len(docs)} files from homeassistant {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
