"""Declarative fingerprint rules: matchers on named record fields, conclusions as templates.

The shape follows nuclei-templates: a rule is data - an id, the conditions (all must hold inside
one record, negated ones must not), and what it concludes, with regex captures feeding the
conclusions. Rule files live in ``iotrate/data/identify/*.yaml``::

    rules:
      - id: upnp.igd
        note: why this evidence means what it says
        match:
          ssdp.root_device_type: ':device:InternetGatewayDevice:'
          "!ssdp.manufacturer": '^microsoft'         # negation: no value may match
          "mdns.txt.md|mdns.txt.model": '^(?P<m>.+)'  # alternatives
          "http.json.*model*": '.'                   # glob over field names
        then: { category: router, model: '{m}', firmware: '{@ssdp.firmware}' }
        weight: 0.85
        weights: { model: 0.5 }

    tables:                                         # many cases over one field
      - id: hap.ci
        field: mdns.txt.ci
        require: { mdns.service_type: '^_hap\\._' }
        cases: { "5": bulb, "7": { category: plug } }   # exact values (case-insensitive)
        regex: false                                     # true: case keys are regexes

Regexes are searched case-insensitively. In ``then``, ``{name}`` is a named capture group and
``{@field}`` the first value of a field of the same record; a conclusion whose template cannot
be filled is dropped, never emitted half-empty.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from iotrate.identify.claims import ATTRIBUTES, CATEGORIES, Attribute, Claim
from iotrate.identify.datafiles import (
    require_float,
    require_list,
    require_mapping,
    require_str,
)
from iotrate.identify.errors import FingerprintDataError
from iotrate.identify.facts import Record

DEFAULT_WEIGHT = 0.6
_TEMPLATE = re.compile(r"\{(@?[A-Za-z0-9_.*\-]+)\}")


@dataclass(frozen=True)
class Matcher:
    fields: tuple[str, ...]
    pattern: re.Pattern[str]
    negate: bool

    def candidates(self, record: Record) -> Iterator[tuple[str, str]]:
        for spec in self.fields:
            if "*" in spec or "?" in spec or "[" in spec:
                for name, values in record.fields.items():
                    if fnmatch.fnmatchcase(name, spec):
                        for v in values:
                            yield name, v
            else:
                for v in record.fields.get(spec, ()):
                    yield spec, v


@dataclass(frozen=True)
class Rule:
    id: str
    matchers: tuple[Matcher, ...]
    then: tuple[tuple[Attribute, str], ...]
    weights: tuple[tuple[Attribute, float], ...]
    note: str = ""

    def weight(self, attribute: Attribute) -> float:
        for a, w in self.weights:
            if a == attribute:
                return w
        return DEFAULT_WEIGHT

    def required_fields(self) -> tuple[str, ...]:
        """Exact field names the first positive matcher needs (a fast pre-check)."""
        for m in self.matchers:
            if not m.negate:
                if any(c in f for f in m.fields for c in "*?["):
                    return ()
                return m.fields
        return ()

    def apply(self, record: Record) -> list[Claim]:
        groups: dict[str, str] = {}
        hits: list[tuple[str, str]] = []
        for m in self.matchers:
            found = None
            for name, value in m.candidates(record):
                hit = m.pattern.search(value)
                if hit:
                    found = (name, value, hit)
                    break
            if m.negate:
                if found is not None:
                    return []
                continue
            if found is None:
                return []
            name, value, hit = found
            hits.append((name, value))
            for k, v in hit.groupdict().items():
                if v is not None and k not in groups:
                    groups[k] = v
        if not hits:
            return []
        field, observed = hits[0]
        claims = []
        for attribute, template in self.then:
            filled = _fill(template, groups, record)
            if filled:
                claims.append(
                    Claim(
                        attribute=attribute,
                        value=filled,
                        weight=self.weight(attribute),
                        rule=self.id,
                        source=record.kind,
                        field=field,
                        observed=observed,
                        record=record.uid,
                    )
                )
        return claims


def _fill(template: str, groups: dict[str, str], record: Record) -> str | None:
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        key = m.group(1)
        value: str | None
        if key.startswith("@"):
            value = record.first(key[1:])
        else:
            value = groups.get(key)
        if value is None or not value.strip():
            missing = True
            return ""
        return value.strip()

    out = _TEMPLATE.sub(sub, template)
    if missing:
        return None
    out = " ".join(out.split())
    return out or None


# --- loading ----------------------------------------------------------------------------------


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise FingerprintDataError(f"{where}: bad regex {pattern!r}: {exc}") from exc


def _matchers(spec: dict[str, Any], where: str) -> list[Matcher]:
    out = []
    for key, pattern in spec.items():
        negate = key.startswith("!")
        fields = tuple(f.strip() for f in key.lstrip("!").split("|") if f.strip())
        if not fields:
            raise FingerprintDataError(f"{where}: empty field name in {key!r}")
        if isinstance(pattern, bool) or not isinstance(pattern, str | int | float):
            # YAML turns a bare yes/no into a boolean: quote it in the rule file.
            raise FingerprintDataError(f"{where}: pattern for {key!r} must be a string")
        pattern = str(pattern)
        out.append(Matcher(fields, _compile(pattern, where), negate))
    return out


def _then(spec: Any, where: str) -> tuple[tuple[Attribute, str], ...]:
    if isinstance(spec, str):
        spec = {"category": spec}
    mapping = require_mapping(spec, where)
    out: list[tuple[Attribute, str]] = []
    for key, value in mapping.items():
        if key not in ATTRIBUTES:
            raise FingerprintDataError(f"{where}: unknown attribute {key!r}")
        if not isinstance(value, str) or not value:
            raise FingerprintDataError(f"{where}: {key} must be a non-empty string")
        if key == "category" and value not in CATEGORIES:
            raise FingerprintDataError(f"{where}: unknown category {value!r}")
        out.append((key, value))
    return tuple(out)


def _weights(entry: dict[str, Any], where: str) -> tuple[tuple[Attribute, float], ...]:
    default = require_float(entry.get("weight"), where, DEFAULT_WEIGHT)
    per = require_mapping(entry.get("weights") or {}, where)
    out: list[tuple[Attribute, float]] = []
    for attribute in ATTRIBUTES:
        out.append((attribute, require_float(per.get(attribute), where, default)))
    for key in per:
        if key not in ATTRIBUTES:
            raise FingerprintDataError(f"{where}: unknown attribute in weights: {key!r}")
    return tuple(out)


def load_rules(data: Any, source: str) -> list[Rule]:
    """Rules from one parsed YAML document; raises :class:`FingerprintDataError` when invalid."""
    doc = require_mapping(data, source)
    rules: list[Rule] = []
    for i, item in enumerate(require_list(doc, "rules", source)):
        entry = require_mapping(item, f"{source} rule #{i + 1}")
        rid = require_str(entry, "id", f"{source} rule #{i + 1}")
        where = f"{source} {rid}"
        match = require_mapping(entry.get("match"), where)
        matchers = _matchers(match, where)
        if not any(not m.negate for m in matchers):
            raise FingerprintDataError(f"{where}: needs at least one positive condition")
        rules.append(
            Rule(
                id=rid,
                matchers=tuple(matchers),
                then=_then(entry.get("then"), where),
                weights=_weights(entry, where),
                note=str(entry.get("note", "")),
            )
        )
    for i, item in enumerate(require_list(doc, "tables", source)):
        entry = require_mapping(item, f"{source} table #{i + 1}")
        tid = require_str(entry, "id", f"{source} table #{i + 1}")
        where = f"{source} {tid}"
        field_spec = require_str(entry, "field", where)
        require = _matchers(require_mapping(entry.get("require") or {}, where), where)
        is_regex = bool(entry.get("regex", False))
        weights = _weights(entry, where)
        cases = require_mapping(entry.get("cases"), where)
        for n, (key, conclusion) in enumerate(cases.items(), start=1):
            key_text = str(key)
            pattern = key_text if is_regex else rf"^\s*{re.escape(key_text)}\s*$"
            main = _matchers({field_spec: pattern}, f"{where} case {key_text!r}")
            then = _then(conclusion, f"{where} case {key_text!r}")
            # Exact cases are readable ids ("dnssd.hap.ci:5"); regex cases get their number
            # and what they conclude ("model.tv:3:Philips/tv").
            label = key_text if not is_regex else f"{n}:" + "/".join(v for _, v in then)
            rules.append(
                Rule(
                    id=f"{tid}:{label}",
                    matchers=tuple(main + require),
                    then=then,
                    weights=weights,
                    note=str(entry.get("note", "")),
                )
            )
    counts = Counter(r.id for r in rules)
    dupes = sorted(x for x, n in counts.items() if n > 1)
    if dupes:
        raise FingerprintDataError(f"{source}: duplicate rule ids {dupes}")
    return rules


def apply_rules(rules: Iterable[Rule], records: Iterable[Record]) -> list[Claim]:
    recs = list(records)
    out: list[Claim] = []
    for rule in rules:
        for rec in recs:
            out.extend(rule.apply(rec))
    return out
