"""Manufacturer declarations: the lab's example loads, mistakes are errors with a clear message
(a typo must never read as a missing support period), and a declaration reaches only the
device it describes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest

from iotrate.declarations import (
    Declaration,
    DeclarationError,
    applies_to,
    assign_declarations,
    load_declaration,
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


def test_vendor_and_model_match_loosely_but_not_blindly() -> None:
    d = load_declaration(PLUG)
    assert applies_to(d, _device("a", "TP-LINK TECHNOLOGIES CO.,LTD.", "Tapo P110"))
    assert applies_to(d, _device("a", "tp-link", "TAPO-P110"))
    assert not applies_to(d, _device("a", "TP-Link", "Tapo P100"))
    assert not applies_to(d, _device("a", "TP-Link", None))
    assert not applies_to(d, _device("a", None, "Tapo P110"))


def test_assign_declarations() -> None:
    d = load_declaration(PLUG)
    match = _device("m", "TP-Link", "Tapo P110")
    other = _device("o", "LG", "Fridge")
    assert assign_declarations(_result(match, other), [d]) == {"m": d}
    # the lab's device under test before identification names it: one device, no model
    assert assign_declarations(_result(_device("u")), [d]) == {"u": d}
    assert assign_declarations(_result(match, other), [d], device=f"10.0.0.{ord('o')}") == {"o": d}
    assert assign_declarations(_result(match), []) == {}
    with pytest.raises(DeclarationError, match="matches no device"):
        assign_declarations(_result(other), [d])
    with pytest.raises(DeclarationError, match="matches no device"):
        assign_declarations(_result(_device("u"), other), [d])
    with pytest.raises(DeclarationError, match="no device 'zz'"):
        assign_declarations(_result(match), [d], device="zz")
    with pytest.raises(DeclarationError, match="exactly one"):
        assign_declarations(_result(match), [d, d], device="m")
    twin = d.model_copy(update={"source": "twin.yaml"})
    with pytest.raises(DeclarationError, match="both match m"):
        assign_declarations(_result(match), [d, twin])


def test_parse_declaration_takes_plain_data() -> None:
    d = parse_declaration({"manufacturer": "A", "model": "B", "standards": ["x"]}, "inline")
    assert d == Declaration(manufacturer="A", model="B", standards=["x"], source="inline")
