"""The rating engine on concrete cases: the reference lab's devices get the grades the lab
expects, and coverage, categories, caps, unknown checks and the CLI behave as METHODOLOGY.md
says. Every rating produced here is validated against the published ScanResult schema."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from iotrate.rating_schema.loader import load_scheme
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.cli.console import EXIT_FAIL_UNDER, EXIT_OK, EXIT_USAGE
from iotrate.declarations import Declaration, load_declaration
from iotrate.models import (
    GRADES,
    CategoryStatus,
    Confidence,
    Device,
    Evidence,
    Finding,
    OutcomeStatus,
    Policy,
    ProbeOutcome,
    Rating,
    ScanResult,
    ScanScope,
    Severity,
)
from iotrate.rating import DECLARATION_PROBE, Context, rate, rate_result

SCHEME = load_scheme()
TODAY = date(2026, 3, 1)
LAB = Path(resources.files("iotrate").joinpath("lab")).resolve()  # type: ignore[arg-type]
PLUG_DECLARATION = LAB / "declarations" / "plug.yaml"
SCAN_CHECKS = [
    c.id for c in SCHEME.checks if c.source == "scan" and c.expected and "ip" in c.transports
]
FULL = [ProbeOutcome(probe="all", status=OutcomeStatus.RAN, checks=SCAN_CHECKS)]
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads(resources.files("iotrate").joinpath("schemas/scan-result.schema.json").read_text())
)
runner = CliRunner()
LAB_SCOPE = ScanScope(
    profile="lab", tcp_ports="all", tcp_port_count=65535, udp=True, policy=Policy.DEFAULT
)
# The mechanics below are tested under the full lab scope with fresh vulnerability data, the
# only context in which 2026.3 gives A; what a partial scan gets is tested on its own.
FULL_CONTEXT = Context(scope=LAB_SCOPE, vulndb_date=date(2026, 2, 1))


def finding(check: str, conf: Confidence = Confidence.CONFIRMED, **data: Any) -> Finding:
    return Finding(
        check=check,
        severity=Severity.HIGH,
        title=check,
        confidence=conf,
        evidence=[Evidence(summary=f"{check} observed", data=data)],
    )


def scan_result(*devices: Device) -> ScanResult:
    return ScanResult(
        scan_id="00000000-0000-4000-8000-000000000005",
        started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        devices=list(devices),
        scope=LAB_SCOPE,
        vulndb_date=date(2026, 2, 1),
    )


def validated(device: Device, rating: Rating) -> Rating:
    """Every rating a test makes must fit the published JSON schema of the scan result."""
    bare = Device(id=device.id, address=device.address, rating=rating)  # inputs need no re-check
    doc = json.loads(scan_result(bare).model_dump_json())
    VALIDATOR.validate(doc)
    return rating


def rated(
    findings: list[Finding],
    declaration: Declaration | None = None,
    outcomes: list[ProbeOutcome] | None = None,
    context: Context = FULL_CONTEXT,
    **device: Any,
) -> Rating:
    dev = Device(
        id=device.pop("id", "dev"),
        address="10.0.0.9",
        findings=findings,
        outcomes=FULL if outcomes is None else outcomes,
        **device,
    )
    if declaration is not None:
        context = Context(context.scope, context.vulndb_date, declaration.facts())
    return validated(dev, rate(dev, SCHEME, declaration, today=TODAY, context=context))


# What the probes are expected to report on each reference-lab device (iotrate/lab/devices.yaml).
LAB_FINDINGS: dict[str, list[Finding]] = {
    "tv": [
        finding("svc.adb.unauthenticated"),
        finding("svc.api.unauthenticated", writable=True, path="/AVTransport/control"),
        finding("update.cve", Confidence.PROBABLE, component="libupnp 1.8.4", cvss=7.5),
        finding("update.version-uncertain"),
    ],
    "fridge": [
        finding("cred.default-password", protocol="telnet", username="root", universal=True),
        finding("cred.default-password", protocol="http-basic", username="admin", universal=True),
        finding("svc.telnet", login_prompt=True),
        finding("svc.http.admin-cleartext", auth="basic"),
        finding("update.outdated", Confidence.PROBABLE, component="lighttpd", version="1.4.35"),
        finding("update.version-unknown"),
        finding("svc.mqtt.anonymous"),
        finding("svc.mqtt.cleartext"),
    ],
    "camera": [
        finding("cred.default-password", protocol="ssh", username="root", universal=True),
        finding("ssh.password-auth"),
        finding("svc.rtsp.unauthenticated", path="/Streaming/Channels/101"),
        finding("svc.http.admin-cleartext"),
        finding("svc.info-disclosure", fields=["server"]),
    ],
    "hub": [
        finding("tls.protocol.obsolete", protocols=["TLSv1.0", "TLSv1.1"], admin_interface=True),
        finding("tls.cipher.weak", ciphers=["DES-CBC3-SHA", "ADH-AES128-SHA"], anonymous=True),
        finding("tls.cert.expired", not_after="2019-03-01"),
        finding("tls.cert.weak-key", key_type="RSA", key_bits=1024),
        finding("tls.cert.self-signed"),
        finding("svc.snmp.readable", community="public"),
        finding("cred.default-password", protocol="snmp", username="public", universal=True),
        finding("cred.default-password", protocol="snmp", username="private", universal=True),
        finding("svc.snmp.writable", Confidence.PROBABLE, community="private"),
        finding("svc.http.admin-cleartext", auth="form"),
        finding("svc.info-disclosure", fields=["sysDescr"]),
    ],
    "speaker": [
        finding("svc.api.unauthenticated", path="/setup/eureka_info"),
        finding("svc.info-disclosure", fields=["build_version"]),
        finding("update.version-uncertain"),
    ],
    "plug": [finding("tls.cert.self-signed")],
    "router": [
        finding("cred.default-password", protocol="http-form", username="admin", universal=False),
        finding("svc.http.admin-cleartext", auth="form"),
        finding("update.version-unknown"),
    ],
}


def lab_devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = yaml.safe_load((LAB / "devices.yaml").read_text())["devices"]
    return devices


@pytest.mark.parametrize("lab", lab_devices(), ids=lambda d: str(d["name"]))
def test_reference_lab_gets_its_expected_grade(lab: dict[str, Any]) -> None:
    decl = load_declaration(LAB / lab["declaration"]) if lab.get("declaration") else None
    rating = rated(LAB_FINDINGS[lab["name"]], decl)
    assert rating.grade == lab["expected_grade"], rating.reasons


def test_universal_default_password_over_telnet_is_g() -> None:
    r = rated(
        [finding("svc.telnet"), finding("cred.default-password", protocol="telnet", universal=True)]
    )
    assert r.grade == "G"
    assert r.caps[0].cap == "universal-default-password"
    assert r.reasons[0].startswith("grade G")


def test_hardened_plug_is_a_with_its_declaration_and_at_best_b_without() -> None:
    plug = LAB_FINDINGS["plug"]
    with_decl = rated(plug, load_declaration(PLUG_DECLARATION))
    assert with_decl.grade == "A"
    assert with_decl.caps == []
    assert with_decl.support_until == date(2032, 12, 31)
    assert with_decl.declaration == str(PLUG_DECLARATION)
    assert {c.status for c in with_decl.categories} == {CategoryStatus.PASS}
    without = rated(plug)
    assert GRADES.index(without.grade or "A") >= GRADES.index("B")
    assert {c.cap for c in without.caps} >= {"support-period-unknown", "disclosure-policy-missing"}
    assert without.support_until is None
    updates = next(c for c in without.categories if c.id == "updates")
    assert updates.status is CategoryStatus.UNKNOWN  # not declared is unknown on the label


def test_weak_tls_hub_is_e_or_f() -> None:
    # the hub's TLS and SNMP-read findings alone; its default communities make it G
    tls = [f for f in LAB_FINDINGS["hub"] if f.check not in ("cred.default-password",
                                                              "svc.snmp.writable")]  # fmt: skip
    r = rated(tls)
    assert r.grade in ("E", "F")
    caps = {c.cap for c in r.caps}
    assert {"tls-obsolete-admin", "cert-expired", "cert-weak-key"} <= caps
    enc = next(c for c in r.categories if c.id == "encryption")
    assert enc.status is CategoryStatus.FAIL
    assert "tls.cert.self-signed" not in enc.checks_failed  # normal for IoT, not a fail
    assert any("count as 30" in x for x in r.reasons)  # one TLS stack, counted once


def test_self_signed_certificate_alone_costs_nothing() -> None:
    decl = load_declaration(PLUG_DECLARATION)
    assert rated([finding("tls.cert.self-signed")], decl).score == rated([], decl).score == 100


# --- coverage ----------------------------------------------------------------------------


def test_full_coverage_counts_every_expected_scan_check() -> None:
    cov = rated([]).coverage
    assert cov is not None
    assert (cov.fraction, cov.checks_run) == (1.0, len(SCAN_CHECKS))
    assert cov.checks_total == len(SCAN_CHECKS)
    assert cov.checks_unknown == []


def test_failed_probe_makes_its_checks_unknown_even_where_another_run_worked() -> None:
    failed = ProbeOutcome(
        probe="tls",
        status=OutcomeStatus.FAILED,
        port=8443,
        reason="timeout",
        checks=["tls.protocol.obsolete", "tls.cipher.weak"],
    )
    r = rated([], load_declaration(PLUG_DECLARATION), outcomes=[*FULL, failed])
    assert r.coverage is not None
    assert r.coverage.checks_unknown == ["tls.cipher.weak", "tls.protocol.obsolete"]
    assert r.coverage.checks_run == len(SCAN_CHECKS) - 2
    assert r.grade == "B"
    assert "coverage-incomplete" in {c.cap for c in r.caps}
    enc = next(c for c in r.categories if c.id == "encryption")
    assert enc.status is CategoryStatus.UNKNOWN


def test_not_applicable_leaves_the_count_and_never_mentioned_is_unknown() -> None:
    na = [c for c in SCAN_CHECKS if c.startswith("tls.")]
    ran = [c for c in SCAN_CHECKS if not c.startswith(("tls.", "ssh."))]
    outcomes = [
        ProbeOutcome(probe="tls", status=OutcomeStatus.NOT_APPLICABLE, checks=na),
        ProbeOutcome(probe="rest", status=OutcomeStatus.RAN, checks=ran),
        ProbeOutcome(probe="x", status=OutcomeStatus.RAN, checks=["not.in-scheme"]),
    ]
    cov = rated([], outcomes=outcomes).coverage
    assert cov is not None
    ssh = sorted(c for c in SCAN_CHECKS if c.startswith("ssh."))
    assert cov.checks_unknown == ssh
    assert cov.checks_total == len(SCAN_CHECKS) - len(na)
    assert cov.checks_run == len(ran)


def test_optional_check_counts_only_when_attempted() -> None:
    optional = next(c.id for c in SCHEME.checks if not c.expected)
    skipped = ProbeOutcome(probe="brute", status=OutcomeStatus.SKIPPED_BY_POLICY, checks=[optional])
    cov = rated([], outcomes=[*FULL, skipped]).coverage
    assert cov is not None and cov.fraction == 1.0
    ran = ProbeOutcome(probe="brute", status=OutcomeStatus.RAN, checks=[optional])
    cov = rated([], outcomes=[*FULL, ran]).coverage
    assert cov is not None and cov.checks_total == len(SCAN_CHECKS) + 1
    failed = ProbeOutcome(probe="brute", status=OutcomeStatus.FAILED, checks=[optional])
    cov = rated([], outcomes=[*FULL, failed]).coverage
    assert cov is not None and cov.checks_unknown == [optional]


def test_nothing_tested_is_never_a_good_grade() -> None:
    r = rated([], load_declaration(PLUG_DECLARATION), outcomes=[])
    assert r.coverage is not None and r.coverage.fraction == 0.0
    # 2026.3: nothing decisive ran, so no letter at all (2026.2 gave D through its caps).
    assert r.grade is None and r.status == "insufficient_evidence"
    assert r.reasons[0].startswith("insufficient evidence")
    assert {"coverage-low", "password-check-not-run"} <= {c.cap for c in r.caps}
    statuses = {c.id: c.status for c in r.categories}
    assert statuses["passwords"] is CategoryStatus.UNKNOWN


def test_findings_do_not_change_coverage() -> None:
    a = rated([], outcomes=[]).coverage
    b = rated([finding("svc.telnet"), finding("tls.cert.self-signed")], outcomes=[]).coverage
    assert a == b


# --- scoring details -----------------------------------------------------------------------


def test_a_check_counts_once_at_its_most_certain_finding() -> None:
    decl = load_declaration(PLUG_DECLARATION)
    weight = SCHEME.check("svc.ftp")
    assert weight is not None
    one = rated([finding("svc.ftp")], decl).score
    many = rated(
        [finding("svc.ftp"), finding("svc.ftp", Confidence.POSSIBLE), finding("svc.ftp")], decl
    ).score
    assert one == many == 100 - weight.weight


def test_possible_findings_count_less_and_trigger_no_cap() -> None:
    decl = load_declaration(PLUG_DECLARATION)
    r = rated([finding("svc.telnet", Confidence.POSSIBLE)], decl)
    assert "telnet" not in {c.cap for c in r.caps}
    assert r.score == round(100 - 25 * 0.25, 1)
    assert any(x.startswith("-6.25 svc.telnet (high, possible)") for x in r.reasons)
    services = next(c for c in r.categories if c.id == "services")
    assert services.status is CategoryStatus.UNKNOWN  # suspected, not shown: not a pass


def test_cap_conditions_read_finding_data() -> None:
    not_universal = rated([finding("cred.default-password", protocol="http", universal=False)])
    assert not_universal.grade == "F"
    truthy_is_not_true = rated([finding("cred.default-password", universal=1)])
    assert truthy_is_not_true.grade == "F"
    tiny_key = rated([finding("tls.cert.weak-key", key_bits=768)])
    assert "cert-key-below-1024" in {c.cap for c in tiny_key.caps}
    sslv2 = rated([finding("tls.protocol.obsolete", protocols=["sslv2", "TLSv1.0"])])
    assert "sslv2" in {c.cap for c in sslv2.caps}  # strings compare case-insensitively
    critical = rated([finding("update.cve", Confidence.PROBABLE, cvss=9.8)])
    assert {"critical-cve", "known-vulnerability"} <= {c.cap for c in critical.caps}


def test_unknown_check_ids_are_listed_logged_and_keep_a_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decl = load_declaration(PLUG_DECLARATION)
    with caplog.at_level(logging.WARNING, logger="iotrate.rating"):
        r = rated([Finding(check="vendor.mystery", severity=Severity.HIGH, title="?")], decl)
    assert r.grade == "B"
    assert r.score == 100
    assert [c.cap for c in r.caps] == ["unrated-finding"]
    assert any("not scored: vendor.mystery (high)" in x for x in r.reasons)
    assert "vendor.mystery" in caplog.text
    info = rated([Finding(check="vendor.note", severity=Severity.INFO, title="?")], decl)
    assert info.grade == "A"


def test_reasons_lead_with_the_grade_and_list_every_deduction() -> None:
    r = rated(LAB_FINDINGS["speaker"])
    assert r.reasons[0].startswith("grade C under scheme iotrate 2026.3")
    assert any(x.startswith("-12 svc.api.unauthenticated (medium") for x in r.reasons)
    assert any(x.startswith("cap C unauthenticated-api") for x in r.reasons)
    assert r.reasons[-1].startswith("no manufacturer declaration")
    assert (r.scheme_id, r.scheme_version) == ("iotrate", "2026.3")
    assert [c.id for c in r.categories] == [c.id for c in SCHEME.categories]


# --- declarations in the rating ------------------------------------------------------------


def _decl(**fields: Any) -> Declaration:
    base = load_declaration(PLUG_DECLARATION).model_dump()
    return Declaration.model_validate({**base, **fields})


def test_expired_support_period_counts_against_the_device() -> None:
    r = rated([], _decl(support_period_end=date(2025, 12, 31)))
    assert r.grade == "D"
    assert "support-ended" in {c.cap for c in r.caps}
    assert r.support_until == date(2025, 12, 31)
    updates = next(c for c in r.categories if c.id == "updates")
    assert updates.checks_failed == ["decl.support-period.expired"]


def test_support_period_ending_today_is_still_current_but_short() -> None:
    r = rated([], _decl(support_period_end=TODAY))
    assert r.grade == "B"  # not ended (no D), but less than two years left (2026.3)
    assert [c.cap for c in r.caps] == ["support-short"]


def test_two_years_of_support_left_allows_a_and_less_caps_at_b() -> None:
    assert rated([], _decl(support_period_end=date(2028, 3, 1))).grade == "A"
    r = rated([], _decl(support_period_end=date(2028, 2, 28)))
    assert r.grade == "B" and [c.cap for c in r.caps] == ["support-short"]


def test_declaration_without_support_period_cannot_earn_a() -> None:
    r = rated([], _decl(support_period_end=None))
    assert r.grade == "B"
    assert [c.cap for c in r.caps] == ["support-period-unknown"]


def test_declaration_without_disclosure_policy_is_capped() -> None:
    r = rated([], _decl(vulnerability_disclosure_policy=None))
    assert [c.cap for c in r.caps] == ["disclosure-policy-missing"]


def test_stale_declaration_findings_on_the_device_are_replaced() -> None:
    stale = Finding(
        check="decl.support-period.missing", severity=Severity.MEDIUM, title="old", probe="x"
    )
    assert rated([stale], load_declaration(PLUG_DECLARATION)).grade == "A"


# --- rate_result ---------------------------------------------------------------------------


def _lab_result() -> ScanResult:
    return scan_result(
        *(
            Device(id=name, address=f"10.0.0.{i}", findings=f, outcomes=FULL)
            for i, (name, f) in enumerate(sorted(LAB_FINDINGS.items()), start=10)
        )
    )


def test_rate_result_fills_every_device_and_is_idempotent() -> None:
    plug = load_declaration(PLUG_DECLARATION)
    once = rate_result(_lab_result(), SCHEME, {"plug": plug})
    VALIDATOR.validate(json.loads(once.model_dump_json()))
    grades = {d.id: d.rating.grade for d in once.devices if d.rating}
    assert grades == {
        "camera": "G",
        "fridge": "G",
        "hub": "G",
        "plug": "A",
        "router": "F",
        "speaker": "C",
        "tv": "G",
    }
    hub = next(d for d in once.devices if d.id == "hub")
    decl = sorted(f.check for f in hub.findings if f.probe == DECLARATION_PROBE)
    assert decl == [
        "decl.disclosure-policy.missing",
        "decl.security-contact.missing",
        "decl.support-period.missing",
        "decl.update-mechanism.missing",
    ]
    assert rate_result(once, SCHEME, {"plug": plug}) == once


def test_rate_result_judges_support_as_of_the_scan_day() -> None:
    decl = _decl(support_period_end=date(2026, 2, 1), declared_on=date(2025, 12, 1))
    result = scan_result(Device(id="d", address="10.0.0.2", outcomes=FULL))
    old = rate_result(
        result.model_copy(update={"started_at": datetime(2026, 1, 5, tzinfo=UTC)}),
        SCHEME,
        {"d": decl},
    )
    new = rate_result(result, SCHEME, {"d": decl})
    assert old.devices[0].rating and old.devices[0].rating.grade == "B"
    assert [c.cap for c in old.devices[0].rating.caps] == ["support-short"]  # not ended yet
    assert new.devices[0].rating and new.devices[0].rating.grade == "D"


# --- CLI -----------------------------------------------------------------------------------


def _write(tmp_path: Path, result: ScanResult) -> Path:
    path = tmp_path / "scan.json"
    path.write_text(result.model_dump_json(), encoding="utf-8")
    return path


def test_cli_rate_table_and_json(tmp_path: Path) -> None:
    src = _write(tmp_path, _lab_result())
    res = runner.invoke(app, ["rate", str(src)])
    assert res.exit_code == EXIT_OK, res.output
    assert "not a certification" in res.output
    out_file = tmp_path / "rated.json"
    res = runner.invoke(
        app,
        [
            "rate",
            str(src),
            "--json",
            "--declaration",
            str(PLUG_DECLARATION),
            "--device",
            "plug",
            "-o",
            str(out_file),
        ],
    )
    assert res.exit_code == EXIT_OK, res.output
    doc = json.loads(res.stdout)
    VALIDATOR.validate(doc)
    assert json.loads(out_file.read_text()) == doc
    grades = {d["id"]: d["rating"]["grade"] for d in doc["devices"]}
    assert grades["plug"] == "A"


def test_cli_rate_matches_declaration_by_vendor_and_model(tmp_path: Path) -> None:
    plug = Device(
        id="p",
        address="10.0.0.5",
        vendor="TP-LINK TECHNOLOGIES CO.,LTD.",
        model="Tapo P110",
        findings=LAB_FINDINGS["plug"],
        outcomes=FULL,
    )
    other = Device(id="o", address="10.0.0.6", vendor="LG", model="Fridge", outcomes=FULL)
    src = _write(tmp_path, scan_result(plug, other))
    res = runner.invoke(app, ["rate", str(src), "--json", "--declaration", str(PLUG_DECLARATION)])
    assert res.exit_code == EXIT_OK, res.output
    ratings = {d["id"]: d["rating"] for d in json.loads(res.stdout)["devices"]}
    assert ratings["p"]["grade"] == "A"
    assert ratings["o"]["declaration"] is None


def test_cli_rate_fail_under(tmp_path: Path) -> None:
    src = _write(tmp_path, _lab_result())
    res = runner.invoke(app, ["rate", str(src), "--fail-under", "F"])
    assert res.exit_code == EXIT_FAIL_UNDER
    assert "at or below F" in res.output
    plug = Device(id="plug", address="10.0.0.1", findings=LAB_FINDINGS["plug"], outcomes=FULL)
    only_plug = _write(tmp_path, scan_result(plug))
    res = runner.invoke(app, ["rate", str(only_plug), "--fail-under", "c"])
    assert res.exit_code == EXIT_OK, res.output


@pytest.mark.parametrize(
    "case",
    [
        "not-json",
        "not-a-result",
        "missing-file",
        "bad-grade",
        "bad-declaration",
        "no-match",
        "device-without-declaration",
        "unknown-device",
        "bad-date",
    ],
)
def test_cli_rate_usage_errors_exit_2(tmp_path: Path, case: str) -> None:
    src = _write(
        tmp_path,
        scan_result(
            Device(id="a", address="10.0.0.1", vendor="LG", model="X"),
            Device(id="b", address="10.0.0.2"),
        ),
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("manufacturer: X\nmodel: Y\nsupport_period_ends: 2030-01-01\n")
    args = {
        "not-json": ["rate", str(tmp_path / "x.json")],
        "not-a-result": ["rate", str(tmp_path / "x.json")],
        "missing-file": ["rate", str(tmp_path / "nope.json")],
        "bad-grade": ["rate", str(src), "--fail-under", "Z"],
        "bad-declaration": ["rate", str(src), "--declaration", str(bad)],
        "no-match": ["rate", str(src), "--declaration", str(PLUG_DECLARATION)],
        "device-without-declaration": ["rate", str(src), "--device", "a"],
        "unknown-device": [
            "rate",
            str(src),
            "--declaration",
            str(PLUG_DECLARATION),
            "--device",
            "zz",
        ],
        "bad-date": ["rate", str(src), "--as-of", "01/02/2026"],
    }[case]
    (tmp_path / "x.json").write_text("{" if case == "not-json" else '{"devices": 3}')
    res = runner.invoke(app, args)
    assert res.exit_code == EXIT_USAGE, res.output
    if case in ("bad-declaration", "no-match", "not-a-result"):
        assert "iotrate: error:" in res.output
    if case == "bad-declaration":
        assert "support_period_ends" in res.output


def test_a_security_contact_is_required_for_a() -> None:
    assert rated([], _decl()).grade == "A"
    r = rated([], _decl(security_contact=None))
    assert r.grade == "B"
    assert [c.cap for c in r.caps] == ["security-contact-missing"]


def test_a_forced_declaration_cannot_earn_a() -> None:
    forced = _decl().model_copy(update={"forced": True, "mismatch": ["model seen 'X'"]})
    r = rated([], forced)
    assert r.grade == "B" and [c.cap for c in r.caps] == ["declaration-forced"]
    assert r.declared is not None and r.declared.forced
