"""Manufacturer declarations: what a maker states about a model that no scan can see.

Half of ETSI EN 303 645 (and two of the three UK PSTI requirements) can only be shown by the
manufacturer: the support period, the vulnerability disclosure policy, how updates are delivered.
ETSI TS 103 701 collects these in the ICS/IXIT; iotrate takes the handful the rating needs from
a small YAML file, validated against ``rating_schema/declaration.schema.json`` so that a typo
(``support_period_ends``) is an error rather than a silently "missing" support period.

This module also holds the YAML loading and schema-error formatting the rating scheme shares,
so both files give the same kind of message for the same kind of mistake.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import yaml
from pydantic import BaseModel, ConfigDict

from iotrate.errors import UsageError
from iotrate.models import Device, ScanResult
from iotrate.rating_schema import SCHEME_DIR
from iotrate.yamlfiles import SafeYamlLoader, excerpt, load_error, loads, read_capped

DECLARATION_SCHEMA = SCHEME_DIR / "declaration.schema.json"
_MAX_ERRORS = 5


class DeclarationError(UsageError):
    """A declaration file is missing, malformed or does not fit the scanned devices (exit 2)."""


class _DeclarationLoader(SafeYamlLoader):
    """Aliases and duplicate keys refused (:class:`iotrate.yamlfiles.SafeYamlLoader`), dates
    kept as text."""


def _timestamp_as_text(loader: _DeclarationLoader, node: yaml.ScalarNode) -> str:
    """Keep ``2032-12-31`` as text: JSON Schema only knows strings, and PyYAML's own date
    parsing fails on ``2030-02-30`` with a bare ValueError instead of a message naming the
    field. Dates are parsed once, with a clear error, after validation."""
    return str(loader.construct_scalar(node))


_DeclarationLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_yaml(path: Path, what: str, error: type[UsageError]) -> Any:
    """Read one YAML document as plain JSON-like data, mapping every failure to ``error``.
    Aliases and files over :data:`iotrate.yamlfiles.MAX_BYTES` are refused."""
    try:
        text = read_capped(path)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text") from exc
    except OSError as exc:
        raise error(f"{what} {path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: {load_error(exc)}") from exc
    try:
        return loads(text, _DeclarationLoader)
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML: {load_error(exc)}") from exc


@cache
def _validator(schema_path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def schema_errors(schema_path: Path, doc: Any) -> list[str]:
    """Human-readable schema violations, the most relevant first, as ``path: message``.

    ``oneOf`` failures are reported through their best-matching branch, because "is not valid
    under any of the given schemas" does not tell a lab what to fix.
    """
    messages = []
    errors = sorted(
        _validator(schema_path).iter_errors(doc), key=lambda e: [str(p) for p in e.path]
    )
    for err in errors:
        if err.context:
            err = jsonschema.exceptions.best_match(err.context) or err
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        # jsonschema quotes the offending value whole; a message quotes a short excerpt.
        messages.append(f"{excerpt(where, 80)}: {excerpt(err.message)}")
    return messages


def raise_schema_errors(
    messages: Sequence[str], what: str, source: str, error: type[UsageError]
) -> None:
    if messages:
        shown = "; ".join(messages[:_MAX_ERRORS])
        more = f" (and {len(messages) - _MAX_ERRORS} more)" if len(messages) > _MAX_ERRORS else ""
        raise error(f"{what} {source} is invalid: {shown}{more}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UpdatePolicy(_Frozen):
    delivery: str | None = None
    automatic: bool | None = None
    cadence: str | None = None
    url: str | None = None


class Declaration(_Frozen):
    """A validated declaration. ``source`` says where it came from, for the rating's record."""

    manufacturer: str
    model: str
    firmware: str | None = None
    declared_on: date | None = None
    support_period_end: date | None = None
    vulnerability_disclosure_policy: str | None = None
    security_contact: str | None = None
    security_update_policy: UpdatePolicy | None = None
    standards: list[str] = []
    notes: str | None = None
    source: str


def _date(text: str, field: str, source: str) -> date:
    """``YYYY-MM`` is the end of that month: the CRA asks makers for the month and year."""
    try:
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:])
            return date(year, month, calendar.monthrange(year, month)[1])
        return date.fromisoformat(text)
    except ValueError as exc:
        raise DeclarationError(f"declaration {source}: {field}: {text!r} is not a date") from exc


def parse_declaration(doc: Any, source: str) -> Declaration:
    """Validate a declaration already read into plain data; ``source`` names it in errors."""
    if not isinstance(doc, dict):
        raise DeclarationError(f"declaration {source} must be a YAML mapping of fields")
    raise_schema_errors(
        schema_errors(DECLARATION_SCHEMA, doc), "declaration", source, DeclarationError
    )
    fields = {k: v for k, v in doc.items() if not k.startswith("x-")}
    for key in ("declared_on", "support_period_end"):
        if key in fields:
            fields[key] = _date(fields[key], key, source)
    return Declaration.model_validate({**fields, "source": source})


def load_declaration(path: Path) -> Declaration:
    return parse_declaration(load_yaml(path, "declaration", DeclarationError), str(path))


def _norm(text: str | None) -> str:
    return "".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def _similar(a: str | None, b: str | None) -> bool:
    """Vendors and models are spelt many ways ("TP-Link" vs "TP-LINK TECHNOLOGIES CO.,LTD."),
    so two names match when one's letters and digits contain the other's."""
    x, y = _norm(a), _norm(b)
    return bool(x) and bool(y) and (x in y or y in x)


def applies_to(declaration: Declaration, device: Device) -> bool:
    return _similar(declaration.manufacturer, device.vendor) and _similar(
        declaration.model, device.model
    )


def assign_declarations(
    result: ScanResult, declarations: Iterable[Declaration], device: str | None = None
) -> dict[str, Declaration]:
    """Which device each declaration is for, keyed by device id.

    A declaration is about one model, so it goes to the devices whose vendor and model match.
    Where identification could not name the device, a lab can still rate its device under
    test: a result with a single device of unknown model takes the declaration, and ``device``
    (an id or address) forces it. Anything else is an error rather than a guess, because a
    declaration on the wrong device could earn it an A.
    """
    decls = list(declarations)
    chosen: dict[str, Declaration] = {}
    if device is not None:
        if len(decls) != 1:
            raise DeclarationError("--device needs exactly one --declaration")
        hits = [d for d in result.devices if device in (d.id, d.address, *d.addresses)]
        if not hits:
            raise DeclarationError(f"no device {device!r} in the result")
        return {hits[0].id: decls[0]}
    for decl in decls:
        hits = [d for d in result.devices if applies_to(decl, d)]
        if not hits and len(result.devices) == 1 and not result.devices[0].model:
            hits = list(result.devices)
        if not hits:
            raise DeclarationError(
                f"declaration {decl.source} ({decl.manufacturer} {decl.model}) matches no device "
                "in the result; name the device with --device ID"
            )
        for d in hits:
            if d.id in chosen:
                raise DeclarationError(
                    f"declarations {chosen[d.id].source} and {decl.source} both match {d.id}"
                )
            chosen[d.id] = decl
    return chosen
