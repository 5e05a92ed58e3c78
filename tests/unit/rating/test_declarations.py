"""Manufacturer declarations: the lab's example loads, mistakes are errors with a clear message
(a typo must never read as a missing support period), and a declaration reaches only the
device it describes."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest

from iotrate.declarations import (
    Declaration,
    DeclarationError,
    applies_to,
    assign_declarations,
    check_declaration_age,
    embedded_declaration,
    load_declaration,
    mismatches,
    parse_declaration,
)
from iotrate.errors import UsageError
from iotrate.models import Device, ScanResult

PLUG = Path(resources.files("iotrate").joinpath("lab/declarations/plug.yaml"))  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "decl.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_lab_plug_declaration_loads() -> None:
    d = load_declaration(PLUG)
    assert (d.manufacturer, d.model) == ("TP-Link", "Tapo P110")
    assert d.support_period_end == date(2032, 12, 31)
    assert d.declared_on == date(2026, 1, 15)
    assert d.vulnerability_disclosure_policy and d.vulnerability_disclosure_policy.startswith(
        "https"
    )
    assert d.security_contact == "security@tp-link.com"
    assert d.security_update_policy and d.security_update_policy.delivery
    assert d.source == str(PLUG)


def test_month_and_year_means_the_end_of_that_month(tmp_path: Path) -> None:
    d = load_declaration(
        write(tmp_path, "manufacturer: A\nmodel: B\nsupport_period_end: 2028-02\n")
    )
    assert d.support_period_end == date(2028, 2, 29)


def test_minimal_declaration_and_extension_keys(tmp_path: Path) -> None:
    d = load_declaration(write(tmp_path, "manufacturer: A\nmodel: B\nx-lab-ticket: 42\n"))
    assert d.support_period_end is None and d.vulnerability_disclosure_policy is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("manufacturer: A\nmodel: B\nsupport_period_ends: 2030-01-01\n", "support_period_ends"),
        ("manufacturer: A\n", "'model' is a required property"),
        ("manufacturer: A\nmodel: B\nsupport_period_end: 2030-02-30\n", "is not a date"),
        ("manufacturer: A\nmodel: B\nsupport_period_end: next year\n", "support_period_end"),
        ("manufacturer: A\nmodel: B\nvulnerability_disclosure_policy: ftp://x\n", "vulnerab"),
        ("manufacturer: A\nmodel: B\nsecurity_contact: nobody\n", "security_contact"),
        ("manufacturer: A\nmodel: B\nsecurity_update_policy: {delivry: ota}\n", "delivry"),
        ("manufacturer: A\nmodel: B\nmodel: C\n", "duplicate key 'model'"),
        ("- a list\n", "must be a YAML mapping"),
        ("manufacturer: [unclosed\n", "not valid YAML"),
        ("manufacturer: 42\nmodel: B\n", "manufacturer"),
        ("manufacturer: A\nmodel: [B]\n", "model"),
        ("manufacturer: A\nmodel: B\ndeclared_on: 1015-01-01\n", "outside 2000-2100"),
        ("manufacturer: A\nmodel: B\nsupport_period_end: 9999-12\n", "outside 2000-2100"),
        ("manufacturer: A\nmodel: " + "B" * 5000 + "\n", "is too long"),
        ("manufacturer: A\nmodel: B\nnotes: " + "n" * 5000 + "\n", "is too long"),
    ],
)
def test_bad_declarations_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DeclarationError) as exc:
        load_declaration(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)
    assert isinstance(exc.value, UsageError)  # exit code 2 at the CLI


def test_unreadable_declaration(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read"):
        load_declaration(tmp_path / "absent.yaml")


def _device(id: str, vendor: str | None = None, model: str | None = None) -> Device:
    return Device(id=id, address=f"10.0.0.{ord(id[0])}", vendor=vendor, model=model)


def _result(*devices: Device) -> ScanResult:
    return ScanResult(
        scan_id="s", started_at=datetime(2026, 3, 1, tzinfo=UTC), devices=list(devices)
    )


def test_vendor_and_model_match_exactly_after_normalising() -> None:
    d = load_declaration(PLUG)
    assert applies_to(d, _device("a", "TP-LINK TECHNOLOGIES CO.,LTD.", "Tapo P110"))
    assert applies_to(d, _device("a", "tp-link", "TAPO-P110"))
    assert applies_to(d, _device("a", "TP-Link", "TP-Link Tapo P110"))  # maker in the model
    assert not applies_to(d, _device("a", "TP-Link", "Tapo P100"))
    assert not applies_to(d, _device("a", "TP-Link", None))
    assert not applies_to(d, _device("a", None, "Tapo P110"))


def test_no_substring_matching_either_way() -> None:
    """Issue 15: a device announcing vendor "e" picked up another maker's declaration."""
    d = load_declaration(PLUG)
    assert not applies_to(d, _device("a", "e", "Tapo P110"))
    assert not applies_to(d, _device("a", "TP", "Tapo P110"))
    assert not applies_to(d, _device("a", "TP-Link", "P110"))
    assert not applies_to(d, _device("a", "TP-Link", "Tapo P110 Pro"))
    assert not applies_to(d, _device("a", "TP-Link Systems Inc", "Tapo P110"))


def test_assign_declarations() -> None:
    d = load_declaration(PLUG)
    match = _device("m", "TP-Link", "Tapo P110")
    other = _device("o", "LG", "Fridge")
    assert assign_declarations(_result(match, other), [d]) == {"m": d}
    # a device identification could not name takes a declaration only when the lab names it
    with pytest.raises(DeclarationError, match="matches no device"):
        assign_declarations(_result(_device("u")), [d])
    named = assign_declarations(_result(_device("u")), [d], device="u")["u"]
    assert named.mismatch == [] and not named.forced
    assert assign_declarations(_result(match), []) == {}
    with pytest.raises(DeclarationError, match="matches no device"):
        assign_declarations(_result(other), [d])
    with pytest.raises(DeclarationError, match="no device 'zz'"):
        assign_declarations(_result(match), [d], device="zz")
    with pytest.raises(DeclarationError, match="exactly one"):
        assign_declarations(_result(match), [d, d], device="m")
    twin = d.model_copy(update={"source": "twin.yaml"})
    with pytest.raises(DeclarationError, match="both match m"):
        assign_declarations(_result(match), [d, twin])


def test_device_on_a_mismatch_needs_force_which_is_recorded() -> None:
    d = load_declaration(PLUG)
    other = _device("o", "LG", "Fridge")
    with pytest.raises(DeclarationError, match=r"does not match device o.*--force"):
        assign_declarations(_result(other), [d], device="o")
    forced = assign_declarations(_result(other), [d], device="o", force=True)["o"]
    assert forced.forced
    assert forced.mismatch == [
        "vendor seen 'LG', declared 'TP-Link'",
        "model seen 'Fridge', declared 'Tapo P110'",
    ]
    assert forced.facts().forced and forced.facts().mismatch == forced.mismatch
    with pytest.raises(DeclarationError, match="--force only applies with --device"):
        assign_declarations(_result(other), [d], force=True)


def test_declared_firmware_is_checked_against_what_was_seen() -> None:
    d = load_declaration(PLUG).model_copy(update={"firmware": "1.2.3"})
    seen = _device("m", "TP-Link", "Tapo P110").model_copy(update={"firmware": "1.2.4"})
    assert mismatches(d, seen) == ["firmware seen '1.2.4', declared '1.2.3'"]
    with pytest.raises(DeclarationError, match=r"firmware seen '1\.2\.4'"):
        assign_declarations(_result(seen), [d])
    with pytest.raises(DeclarationError, match="--force"):
        assign_declarations(_result(seen), [d], device="m")
    assert assign_declarations(_result(seen), [d], device="m", force=True)["m"].forced
    same = seen.model_copy(update={"firmware": "v1.2.3"})  # spelling differs, version agrees
    assert mismatches(d, same) == []
    unseen = _device("m", "TP-Link", "Tapo P110")
    assert mismatches(d, unseen) == []  # nothing seen contradicts it


def test_declaration_content_and_hash_are_embedded_and_round_trip() -> None:
    d = load_declaration(PLUG)
    assert d.sha256 == hashlib.sha256(PLUG.read_bytes()).hexdigest()
    facts = d.facts()
    assert facts.sha256 == d.sha256
    assert facts.content["model"] == "Tapo P110"
    assert facts.content["support_period_end"] == "2032-12-31"
    again = embedded_declaration(facts)
    assert again == d
    hostile = facts.model_copy(update={"content": {**facts.content, "model": ["x"]}})
    with pytest.raises(DeclarationError):
        embedded_declaration(hostile)


def test_declaration_age_is_bounded_by_the_scan_date() -> None:
    d = load_declaration(PLUG)  # declared_on 2026-01-15
    check_declaration_age(d, date(2026, 3, 1), 730)
    check_declaration_age(d, date(2028, 1, 15), 730)
    with pytest.raises(DeclarationError, match="more than 730 days before the scan"):
        check_declaration_age(d, date(2028, 1, 16), 730)
    with pytest.raises(DeclarationError, match="after the scan"):
        check_declaration_age(d, date(2026, 1, 14), 730)
    check_declaration_age(d.model_copy(update={"declared_on": None}), date(2040, 1, 1), 730)


def test_parse_declaration_takes_plain_data() -> None:
    d = parse_declaration({"manufacturer": "A", "model": "B", "standards": ["x"]}, "inline")
    assert d == Declaration(manufacturer="A", model="B", standards=["x"], source="inline")
