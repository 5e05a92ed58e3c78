"""Reading the bundled fingerprint data, with errors that name the file.

The data ships inside the package (``iotrate/data``); nothing here reads ``../shared`` or the
network. A malformed file is a packaging bug, so it raises :class:`FingerprintDataError` with
enough context to find the entry, never a bare ``KeyError``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from iotrate.identify.errors import FingerprintDataError


def data_bytes(*parts: str) -> bytes:
    try:
        return resources.files("iotrate").joinpath("data", *parts).read_bytes()
    except OSError as exc:
        raise FingerprintDataError(f"cannot read data/{'/'.join(parts)}: {exc}") from exc


def data_names(*parts: str) -> list[str]:
    """File names in a bundled data directory, sorted."""
    try:
        folder = resources.files("iotrate").joinpath("data", *parts)
        return sorted(p.name for p in folder.iterdir())
    except OSError as exc:
        raise FingerprintDataError(f"cannot list data/{'/'.join(parts)}: {exc}") from exc


# libyaml's parser when PyYAML was built with it: ten times faster on the rule files.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(name: str, folder: str = "identify") -> Any:
    raw = data_bytes(folder, name)
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_Loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FingerprintDataError(f"data/{folder}/{name}: {exc}") from exc


def require_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FingerprintDataError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def require_list(mapping: dict[str, Any], key: str, where: str) -> list[Any]:
    value = mapping.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise FingerprintDataError(f"{where}: '{key}' must be a list")
    return value


def require_str(mapping: dict[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise FingerprintDataError(f"{where}: '{key}' must be a non-empty string ({mapping!r})")
    return value


def require_float(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise FingerprintDataError(f"{where}: weight must be a number in (0, 1], got {value!r}")
    return float(value)
