"""Scheme 2026.3's evidence rules on whole results: a device nothing could be tested on gets no
letter and no "passed" anywhere, whatever its declaration says; partial scans are upper
bounds; re-rating keeps the embedded declaration; the label carries what it is based on."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest
from iotrate.rating_schema import SCHEME_DIR
from iotrate.rating_schema.loader import load_scheme
from iotrate.reports.label import device_label
from iotrate.reports.terminal import top_reason
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.cli.console import EXIT_USAGE
from iotrate.declarations import assign_declarations, load_declaration
from iotrate.history import diff_results, scan_scope_line
from iotrate.models import (
    CategoryStatus,
    Device,
    OutcomeStatus,
    Policy,
    ProbeOutcome,
    ScanResult,
    ScanScope,
)
from iotrate.probing import RunnerOptions, default_runner
from iotrate.rating import rate_result

PLUG = Path(resources.files("iotrate").joinpath("lab/declarations/plug.yaml"))  # type: ignore[arg-type]
LAB = ScanScope(
    profile="lab", tcp_ports="all", tcp_port_count=65535, udp=True, policy=Policy.DEFAULT
)
SCHEME = load_scheme()
runner = CliRunner()


def silent_device() -> Device:
    """What the real probes record for a device with no open service and no version: every
    probe not applicable, the update probe ran and saw no version. Probed on 127.0.0.1 with no
    services, so nothing is sent anywhere."""
    probes, errors = default_runner(RunnerOptions(policy=Policy.DEFAULT))
    assert not errors
    (device,) = asyncio.run(probes.run([Device(id="silent", address="127.0.0.1")]))
    assert {o.status for o in device.outcomes} == {OutcomeStatus.NOT_APPLICABLE, OutcomeStatus.RAN}
    return device.model_copy(update={"vendor": "TP-Link", "model": "Tapo P110"})


def result_of(*devices: Device, scope: ScanScope | None = LAB) -> ScanResult:
    return ScanResult(
        scan_id="00000000-0000-4000-8000-000000000015",
        started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        devices=list(devices),
        scope=scope,
        vulndb_date=date(2026, 2, 20),
    )


def svg_text(svg: str) -> str:
    return " ".join(re.findall(r">([^<>]*)</text>", svg))


def test_a_silent_device_is_never_a_or_b_and_its_label_says_passed_nowhere() -> None:
    silent = silent_device()
    scan = result_of(silent)
    decl = load_declaration(PLUG)
    with_decl = rate_result(scan, SCHEME, assign_declarations(scan, [decl]))
    without = rate_result(scan, SCHEME)
    for rated in (with_decl, without):
        (d,) = rated.devices
        assert d.rating is not None
        assert d.rating.grade not in ("A", "B")
        assert d.rating.grade is None and d.rating.status == "insufficient_evidence"
        assert all(row.status is not CategoryStatus.PASS for row in d.rating.categories)
        for size in ("full", "sticker"):
            svg = device_label(d, rated, size=size)
            assert "passed" not in svg.lower()
        text = svg_text(device_label(d, rated))
        assert "NO GRADE" in text and "not enough seen to rate" in text
        assert "not tested" in text
        assert top_reason(d).startswith("insufficient evidence")
    # under 2026.2 the same device was B without and A with its declaration
    old = load_scheme(SCHEME_DIR / "iotrate-2026.2.yaml")
    assert rate_result(scan, old).devices[0].rating.grade == "B"  # type: ignore[union-attr]


def test_rows_without_a_check_that_ran_are_not_tested_with_the_reason() -> None:
    silent = silent_device()
    (d,) = rate_result(result_of(silent), SCHEME).devices
    assert d.rating is not None
    rows = {r.id: r for r in d.rating.categories}
    assert rows["encryption"].status is CategoryStatus.UNKNOWN
    assert rows["encryption"].reason == "nothing it tests was found on the device"
    assert rows["updates"].status is CategoryStatus.UNKNOWN  # no version: never passed
    assert "update.cve" in (rows["updates"].reason or "")
    assert d.rating.coverage is not None and d.rating.coverage.rows_tested == 0


def test_a_partial_scan_is_an_upper_bound_with_what_was_left_out() -> None:
    ok = Device(
        id="d",
        address="10.0.0.2",
        firmware="1.0.4",
        outcomes=[
            ProbeOutcome(
                probe="all",
                status=OutcomeStatus.RAN,
                checks=[c.id for c in SCHEME.checks if c.source == "scan" and c.expected],
            )
        ],
    )
    cut = LAB.model_copy(update={"budget_cut": True, "budget_s": 10.0})
    (d,) = rate_result(result_of(ok, scope=cut), SCHEME).devices
    assert d.rating is not None and d.rating.at_best
    assert d.rating.grade == "B"
    assert any("time budget" in x for x in d.rating.left_out)
    assert "partial-scope" in {c.cap for c in d.rating.caps}
    assert "at best" in svg_text(device_label(d, result_of(ok, scope=cut)))
    (old,) = rate_result(result_of(ok, scope=None), SCHEME).devices
    assert old.rating is not None and old.rating.at_best
    assert "scope not recorded (result written before schema 1.2)" in old.rating.left_out


def test_rerating_keeps_the_embedded_declaration_and_the_label_marks_declared_facts(
    tmp_path: Path,
) -> None:
    plug = Device(id="p", address="10.0.0.7", outcomes=silent_device().outcomes)
    scan = result_of(plug)
    decl = load_declaration(PLUG)
    once = rate_result(scan, SCHEME, assign_declarations(scan, [decl], device="p"))
    r = once.devices[0].rating
    assert r is not None and r.declared is not None
    assert r.declared.sha256 == decl.sha256 and r.declared.content["model"] == "Tapo P110"
    twice = rate_result(once, SCHEME)  # no file: the embedded declaration is used
    assert twice.devices[0].rating == r
    text = svg_text(device_label(once.devices[0], once))
    assert "Tapo P110 (declared)" in text and "TP-Link (declared)" in text
    assert "valid until" in text and "2026.3" in text
    # the CLI, re-rating its own output without --declaration
    src, out = tmp_path / "rated.json", tmp_path / "again.json"
    src.write_text(once.model_dump_json())
    res = runner.invoke(app, ["rate", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    again = ScanResult.model_validate_json(out.read_text())
    assert again.devices[0].rating and again.devices[0].rating.declared == r.declared


def test_cli_force_is_needed_recorded_and_shown(tmp_path: Path) -> None:
    other = Device(id="o", address="10.0.0.8", vendor="LG", model="Fridge")
    src = tmp_path / "scan.json"
    src.write_text(result_of(other).model_dump_json())
    args = ["rate", str(src), "--declaration", str(PLUG), "--device", "o", "--json"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == EXIT_USAGE
    assert "does not match device o" in refused.output and "--force" in refused.output
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    d = ScanResult.model_validate_json(forced.stdout).devices[0]
    assert d.rating and d.rating.declared and d.rating.declared.forced
    assert "declaration-forced" in {c.cap for c in d.rating.caps}
    assert "declaration forced:" in svg_text(device_label(d, result_of(other)))


@pytest.mark.parametrize(
    ("declared_on", "message"),
    [("2023-01-01", "more than 730 days before the scan"), ("2026-06-01", "after the scan")],
)
def test_cli_refuses_a_stale_or_future_declaration(
    tmp_path: Path, declared_on: str, message: str
) -> None:
    decl = tmp_path / "decl.yaml"
    decl.write_text(PLUG.read_text().replace("2026-01-15", declared_on))
    src = tmp_path / "scan.json"
    src.write_text(result_of(Device(id="p", address="10.0.0.7")).model_dump_json())
    res = runner.invoke(app, ["rate", str(src), "--declaration", str(decl), "--device", "p"])
    assert res.exit_code == EXIT_USAGE
    assert message in res.output
    assert "Traceback" not in res.output
    assert len([ln for ln in res.output.splitlines() if ln.strip()]) == 1


def test_stale_vulnerability_data_keeps_a_device_out_of_a() -> None:
    ok = Device(
        id="d",
        address="10.0.0.2",
        firmware="1.0.4",
        outcomes=[
            ProbeOutcome(
                probe="all",
                status=OutcomeStatus.RAN,
                checks=[c.id for c in SCHEME.checks if c.source == "scan" and c.expected],
            )
        ],
    )
    decl = load_declaration(PLUG)
    fresh = result_of(ok)
    (a,) = rate_result(fresh, SCHEME, {"d": decl}).devices
    assert a.rating is not None and a.rating.grade == "A", a.rating.reasons
    assert a.rating.valid_until == date(2027, 3, 1)
    stale = fresh.model_copy(update={"vulndb_date": date(2025, 8, 25)})
    (b,) = rate_result(stale, SCHEME, {"d": decl}).devices
    assert b.rating is not None and b.rating.grade == "B"
    assert [c.cap for c in b.rating.caps] == ["vulndb-stale"]
    assert b.rating.vulndb_date == date(2025, 8, 25)


def test_diff_compares_like_with_like() -> None:
    """A budget-cut scan that stopped before TLS, then a full one: the hub's TLS findings are
    "not compared", never "fixed" then "new problem", and the grade change is not "better"."""
    tls_checks = ["tls.protocol.obsolete", "tls.cert.expired"]
    finding = SCHEME.finding("tls.cert.expired", "expired 2019", 443, {}, probe="tls")
    base = ProbeOutcome(probe="svc", status=OutcomeStatus.RAN, checks=["svc.telnet"])
    full = Device(
        id="hub",
        address="10.0.0.13",
        findings=[finding],
        outcomes=[base, ProbeOutcome(probe="tls", status=OutcomeStatus.RAN, checks=tls_checks)],
    )
    cut = full.model_copy(
        update={
            "findings": [],
            "outcomes": [
                base,
                ProbeOutcome(
                    probe="tls",
                    status=OutcomeStatus.FAILED,
                    reason="time budget reached",
                    checks=tls_checks,
                    budget_s=10.0,
                ),
            ],
        }
    )
    scope_cut = LAB.model_copy(update={"budget_cut": True, "budget_s": 10.0})
    first = rate_result(result_of(full), SCHEME)
    second = rate_result(result_of(cut, scope=scope_cut), SCHEME)
    third = rate_result(result_of(full), SCHEME)
    for before, after in ((first, second), (second, third)):
        d = diff_results(before, after)
        (change,) = d.changed
        assert change.findings_fixed == [] and change.findings_new == []
        assert [f.check for f in change.not_compared] == ["tls.cert.expired"]
        assert change.direction in ("not_compared", "same")
        if change.grade_before != change.grade_after:
            assert change.direction == "not_compared"
    assert "budget 10 s (cut short)" in scan_scope_line(second)
    assert scan_scope_line(result_of(full, scope=None)).endswith("scope not recorded")
    # the same scope twice: a fixed finding is "fixed"
    fixed = third.model_copy(
        update={"devices": [third.devices[0].model_copy(update={"findings": []})]}
    )
    (change,) = diff_results(first, rate_result(fixed, SCHEME)).changed
    assert [f.check for f in change.findings_fixed] == ["tls.cert.expired"]
