"""The bundled fingerprint data loads, validates and stays inside the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iotrate.identify import Database, FingerprintDataError
from iotrate.identify.claims import CATEGORIES
from iotrate.identify.rules import load_rules

PACKAGE = Path(__file__).resolve().parents[3] / "iotrate"


def test_database_loads_with_rules_from_every_source() -> None:
    db = Database.load()
    prefixes = {r.id.split(".")[0].split(":")[0] for r in db.rules}
    assert {"upnp", "dnssd", "api", "generic", "hass"} <= prefixes
    assert len(db.rules) > 500
    for rule in db.rules:
        for attribute, value in rule.then:
            if attribute == "category":
                assert value in CATEGORIES, rule.id


def test_identification_code_never_reads_shared_or_the_network() -> None:
    for path in (PACKAGE / "identify").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""["'][^"'\n]*\.\./shared|["']shared["']""", text), path
        assert not re.search(
            r"^\s*(import|from) (socket|httpx|urllib\.request|requests)\b", text, re.M
        ), path


def rule(**over: object) -> dict[str, object]:
    return {"id": "x", "match": {"a": "b"}, "then": {"category": "tv"}, **over}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rules": [rule(then={"category": "spaceship"})]}, "unknown category"),
        ({"rules": [rule(match={"a": True})]}, "must be a string"),
        ({"rules": [rule(match={"a": "("})]}, "bad regex"),
        ({"rules": [rule(match={"!a": "b"})]}, "positive"),
        ({"rules": [rule(then={"colour": "tv"})]}, "unknown attribute"),
        ({"rules": [rule(weight=2)]}, "weight"),
        ({"rules": [rule(), rule()]}, "duplicate"),
    ],
)
def test_invalid_rules_are_rejected_with_the_reason(doc: object, message: str) -> None:
    with pytest.raises(FingerprintDataError, match=message):
        load_rules(doc, "test.yaml")


def test_rule_templates_fill_from_captures_and_fields() -> None:
    from iotrate.identify.facts import Record

    (rule,) = load_rules(
        {
            "rules": [
                {
                    "id": "t",
                    "match": {"a.b": "^(?P<v>\\w+)-(?P<m>\\w+)$"},
                    "then": {"vendor": "{v}", "model": "{m}", "firmware": "{@a.fw}"},
                }
            ]
        },
        "t.yaml",
    )
    rec = Record("http", "r", {"a.b": ["Acme-X1"], "a.fw": ["1.2"]}, "r0")
    got = {c.attribute: c.value for c in rule.apply(rec)}
    assert got == {"vendor": "Acme", "model": "X1", "firmware": "1.2"}
    rec2 = Record("http", "r", {"a.b": ["Acme-X1"]}, "r1")
    assert {c.attribute for c in rule.apply(rec2)} == {"vendor", "model"}  # no half-filled firmware
