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
import hashlib
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
from iotrate.models import DeclaredFacts, Device, ScanResult
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
        # jsonschema quotes the offending value whole; a message quotes a short excerpt of the
        # value and keeps what is wrong with it ("… is too long").
        text, quoted = err.message, repr(err.instance)
        if len(quoted) > 60 and quoted in text:
            text = text.replace(quoted, excerpt(quoted, 60))
        messages.append(f"{excerpt(where, 80)}: {excerpt(text)}")
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
    sha256: str | None = None
    forced: bool = False
    mismatch: list[str] = []

    def content(self) -> dict[str, Any]:
        """The declaration's own fields as plain data (what the maker stated)."""
        return self.model_dump(
            mode="json", exclude={"source", "sha256", "forced", "mismatch"}, exclude_none=True
        )

    def facts(self) -> DeclaredFacts:
        """The declaration as embedded in a rating, so re-rating never needs the file."""
        digest = (
            self.sha256
            or hashlib.sha256(json.dumps(self.content(), sort_keys=True).encode()).hexdigest()
        )
        return DeclaredFacts(
            content=self.content(),
            sha256=digest,
            source=self.source,
            forced=self.forced,
            mismatch=list(self.mismatch),
        )


def embedded_declaration(facts: DeclaredFacts) -> Declaration:
    """The declaration a rating embedded, validated again like a file would be: the result
    JSON is input too, and an edited one must not smuggle a declaration past the schema."""
    decl = parse_declaration(dict(facts.content), facts.source)
    return decl.model_copy(
        update={"sha256": facts.sha256, "forced": facts.forced, "mismatch": list(facts.mismatch)}
    )


def check_declaration_age(decl: Declaration, scanned: date, max_age_days: int) -> None:
    """Refuse a declaration dated after the scan or older than ``max_age_days`` at the scan:
    a statement made years ago (or not yet made) does not describe the device as scanned, and
    refusing it, rather than quietly ignoring it, tells the lab to ask the maker for a
    current one. Undated declarations are accepted (the field is optional)."""
    made = decl.declared_on
    if made is None:
        return
    if made > scanned:
        raise DeclarationError(
            f"declaration {decl.source}: declared_on {made} is after the scan ({scanned})"
        )
    if (scanned - made).days > max_age_days:
        raise DeclarationError(
            f"declaration {decl.source}: declared_on {made} is more than {max_age_days} days "
            f"before the scan ({scanned}); ask the manufacturer for a current declaration"
        )


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
            if not _FIRST_YEAR <= fields[key].year <= _LAST_YEAR:
                raise DeclarationError(
                    f"declaration {source}: {key}: {fields[key]} is outside "
                    f"{_FIRST_YEAR}-{_LAST_YEAR}"
                )
    return Declaration.model_validate({**fields, "source": source})


_FIRST_YEAR, _LAST_YEAR = 2000, 2100
"""Dates a declaration can sensibly carry; anything else is a typo or a hostile input."""


def load_declaration(path: Path) -> Declaration:
    """A declaration file, with the SHA-256 of its bytes for the rating's record."""
    decl = parse_declaration(load_yaml(path, "declaration", DeclarationError), str(path))
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:  # pragma: no cover - load_yaml read it a moment ago
        raise DeclarationError(f"declaration {path}: cannot read: {exc.strerror or exc}") from exc
    return decl.model_copy(update={"sha256": digest})


def _norm(text: str | None) -> str:
    return "".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


_CORPORATE = frozenset(
    "co corp corporation company inc incorporated ltd limited llc gmbh ag sa bv plc "
    "technologies technology tech electronics international group holdings".split()
)


def _norm_vendor(text: str | None) -> str:
    """ "TP-Link" and "TP-LINK TECHNOLOGIES CO.,LTD." are one maker: compare the letters and
    digits of the name without trailing company-form words."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    while len(words) > 1 and words[-1] in _CORPORATE:
        words.pop()
    return "".join(words)


def _norm_model(model: str | None, vendor: str | None) -> str:
    """A model without a leading maker name ("TP-Link Tapo P110" is "Tapo P110")."""
    m, v = _norm(model), _norm_vendor(vendor)
    return m[len(v) :] if v and m.startswith(v) and len(m) > len(v) else m


def _seen_firmware(device: Device) -> str | None:
    if device.firmware:
        return device.firmware
    return device.identity.firmware if device.identity is not None else None


def mismatches(declaration: Declaration, device: Device) -> list[str]:
    """What the scan saw that contradicts the declaration: another maker, another model,
    another firmware. What the scan did not see contradicts nothing."""
    out = []
    d = declaration
    if device.vendor and _norm_vendor(device.vendor) != _norm_vendor(d.manufacturer):
        out.append(f"vendor seen {device.vendor!r}, declared {d.manufacturer!r}")
    vendor = d.manufacturer
    if device.model and _norm_model(device.model, vendor) != _norm_model(d.model, vendor):
        out.append(f"model seen {device.model!r}, declared {d.model!r}")
    seen = _seen_firmware(device)
    if d.firmware and seen and _norm(seen).removeprefix("v") != _norm(d.firmware).removeprefix("v"):
        out.append(f"firmware seen {seen!r}, declared {d.firmware!r}")
    return out


def applies_to(declaration: Declaration, device: Device) -> bool:
    """Exact match of normalised vendor and model, both seen: a substring match let a device
    announcing vendor "e" pick up another maker's declaration."""
    return (
        bool(device.vendor and device.model)
        and _norm_vendor(declaration.manufacturer) == _norm_vendor(device.vendor)
        and _norm_model(declaration.model, declaration.manufacturer)
        == _norm_model(device.model, declaration.manufacturer)
    )


def assign_declarations(
    result: ScanResult,
    declarations: Iterable[Declaration],
    device: str | None = None,
    *,
    force: bool = False,
) -> dict[str, Declaration]:
    """Which device each declaration is for, keyed by device id.

    A declaration is about one model, so it goes to the devices whose normalised vendor and
    model equal its own (and whose firmware, if both say one, agrees). A lab names its device
    under test with ``device`` (an id or address) when identification could not name it; if
    what the scan saw contradicts the declaration, that needs ``force``, which is recorded on
    the rating and shown on the label (and keeps the device out of A). Anything else is an
    error rather than a guess, because a declaration on the wrong device could earn it an A.
    """
    decls = list(declarations)
    chosen: dict[str, Declaration] = {}
    if device is not None:
        if len(decls) != 1:
            raise DeclarationError("--device needs exactly one --declaration")
        hits = [d for d in result.devices if device in (d.id, d.address, *d.addresses)]
        if not hits:
            raise DeclarationError(f"no device {device!r} in the result")
        decl = decls[0]
        wrong = mismatches(decl, hits[0])
        if wrong and not force:
            raise DeclarationError(
                f"declaration {decl.source} ({decl.manufacturer} {decl.model}) does not match "
                f"device {device}: {'; '.join(wrong)}; add --force to apply it anyway "
                "(recorded and shown on the label)"
            )
        return {hits[0].id: decl.model_copy(update={"forced": bool(wrong), "mismatch": wrong})}
    if force:
        raise DeclarationError("--force only applies with --device")
    for decl in decls:
        hits = [d for d in result.devices if applies_to(decl, d)]
        if not hits:
            raise DeclarationError(
                f"declaration {decl.source} ({decl.manufacturer} {decl.model}) matches no device "
                "in the result; name the device with --device ID"
            )
        for d in hits:
            wrong = mismatches(decl, d)
            if wrong:
                raise DeclarationError(
                    f"declaration {decl.source} does not match device {d.id}: {'; '.join(wrong)}"
                )
            if d.id in chosen:
                raise DeclarationError(
                    f"declarations {chosen[d.id].source} and {decl.source} both match {d.id}"
                )
            chosen[d.id] = decl
    return chosen
