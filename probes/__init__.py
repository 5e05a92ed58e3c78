"""Security probes, installed as ``iotrate.probes``: one module per protocol (``telnet``,
``ssh``, ``http``, ``mqtt``, …) holding its exposure, login and configuration probes, and a
subpackage where a protocol needs layers (``tls``). Protocol clients live in the private
``_clients`` subpackage and shared login logic in ``_login``; the registry does not look there.

The registry finds probes rather than listing them: every concrete :class:`Probe` subclass
defined in a module of this package is built in, and third-party packages add theirs through
the ``iotrate.probes`` entry-point group (an entry point names a Probe subclass or an iterable
of them). So adding a probe means adding a module, not editing a central table. A module or
entry point that fails to load is reported, not fatal: the scan still runs every other probe,
and the error lands in the scan result.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .base import Probe

ENTRY_POINT_GROUP = "iotrate.probes"
_SKIP_MODULES = frozenset({"base"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    """Probe classes in a stable order (by id), and what could not be loaded."""

    probes: tuple[type[Probe], ...]
    errors: tuple[str, ...] = field(default_factory=tuple)

    def by_id(self) -> dict[str, type[Probe]]:
        return {p.id: p for p in self.probes}


def is_probe_class(obj: Any) -> bool:
    return (
        inspect.isclass(obj)
        and issubclass(obj, Probe)
        and obj is not Probe
        and not inspect.isabstract(obj)
        and isinstance(getattr(obj, "id", None), str)
    )


def _module_probes(module: Any) -> list[type[Probe]]:
    return [
        obj
        for obj in vars(module).values()
        if is_probe_class(obj) and obj.__module__ == module.__name__
    ]


def _probe_modules(path: Iterable[str], prefix: str) -> list[str]:
    """Module names under ``path``, subpackages included (``tls.probes``), in a stable order;
    private names (``_clients``, ``_login``) and their contents are skipped: they hold
    clients and helpers, not probes."""
    names: list[str] = []
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _SKIP_MODULES:
            continue
        name = f"{prefix}.{info.name}"
        names.append(name)
        if info.ispkg:
            try:
                package = importlib.import_module(name)
            except Exception as exc:  # reported as an error when builtin_probes loads it
                log.debug("probe package %s failed to load: %s", name, exc)
                continue
            names += _probe_modules(package.__path__, name)
    return names


def builtin_probes() -> tuple[list[type[Probe]], list[str]]:
    """Every probe class defined in this package's modules and subpackages (private ``_x``
    modules and packages skipped)."""
    found: list[type[Probe]] = []
    errors: list[str] = []
    for name in _probe_modules(__path__, __name__):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken module must not take the other probes down
            log.warning("probe module %s failed to load: %s", name, exc)
            errors.append(f"probe module {name} failed to load: {type(exc).__name__}: {exc}")
            continue
        found.extend(_module_probes(module))
    return found, errors


def _as_probes(obj: Any) -> list[type[Probe]] | None:
    if is_probe_class(obj):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        items = list(obj)
        if items and all(is_probe_class(i) for i in items):
            return items
    return None


def plugin_probes() -> tuple[list[type[Probe]], list[str]]:
    """Probes from installed packages' ``iotrate.probes`` entry points."""
    found: list[type[Probe]] = []
    errors: list[str] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            probes = _as_probes(ep.load())
        except Exception as exc:
            errors.append(f"probe plugin {ep.name} ({ep.value}) failed to load: {exc}")
            continue
        if probes is None:
            errors.append(f"probe plugin {ep.name} ({ep.value}) is not a Probe subclass")
            continue
        found.extend(probes)
    return found, errors


def registry(include_plugins: bool = True) -> Registry:
    """Built-in probes, then plugins; on a duplicate id the first one wins (built-ins)."""
    probes, errors = builtin_probes()
    if include_plugins:
        more, more_errors = plugin_probes()
        probes += more
        errors += more_errors
    chosen: dict[str, type[Probe]] = {}
    for p in probes:
        if p.id in chosen and chosen[p.id] is not p:
            errors.append(f"probe id {p.id!r} defined twice ({p.__module__}); first kept")
            continue
        chosen[p.id] = p
    return Registry(tuple(sorted(chosen.values(), key=lambda p: p.id)), tuple(errors))


__all__ = ["ENTRY_POINT_GROUP", "Registry", "builtin_probes", "plugin_probes", "registry"]
