"""The properties the rating must keep for any input, not just the cases someone thought of:
deterministic, monotone, caps hold, unknown is not pass. Generated findings mix every scheme
check, ids the scheme does not know, all confidences and the evidence fields caps read."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from importlib import resources

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iotrate.rating_schema.loader import load_scheme

from iotrate.declarations import Declaration
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
from iotrate.rating import VERSION_UNKNOWN_CHECK, Context, rate

SCHEME = load_scheme()
TODAY = date(2026, 3, 1)
SCAN_CHECKS = [c.id for c in SCHEME.checks if c.source == "scan" and "ip" in c.transports]
EXPECTED = [
    c.id for c in SCHEME.checks if c.source == "scan" and c.expected and "ip" in c.transports
]
FULL = ProbeOutcome(probe="all", status=OutcomeStatus.RAN, checks=EXPECTED)
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads(resources.files("iotrate").joinpath("schemas/scan-result.schema.json").read_text())
)
# Kept small so the suite stays fast; IOTRATE_PROPERTY_EXAMPLES=1000 for a deeper run.
PROPERTY = settings(
    max_examples=int(os.environ.get("IOTRATE_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

evidence_data = st.fixed_dictionaries(
    {},
    optional={
        "universal": st.booleans(),
        "shell": st.booleans(),
        "admin_interface": st.booleans(),
        "anonymous": st.booleans(),
        "null_cipher": st.booleans(),
        "key_bits": st.sampled_from([512, 1023, 1024, 2048]),
        "cvss": st.sampled_from([4.3, 8.9, 9.0, 10.0]),
        "protocols": st.lists(st.sampled_from(["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"])),
    },
)
findings_st = st.builds(
    Finding,
    check=st.sampled_from([c.id for c in SCHEME.checks] + ["vendor.unknown", "x.typo"]),
    severity=st.sampled_from(list(Severity)),
    title=st.just("t"),
    confidence=st.sampled_from(list(Confidence)),
    evidence=st.lists(
        st.builds(Evidence, summary=st.sampled_from(["a", "b"]), data=evidence_data), max_size=2
    ),
)
outcome_st = st.builds(
    ProbeOutcome,
    probe=st.sampled_from(["p1", "p2", "p3"]),
    status=st.sampled_from(list(OutcomeStatus)),
    checks=st.lists(st.sampled_from(SCAN_CHECKS), max_size=6),
)
outcomes_st = st.one_of(
    st.just([FULL]),
    st.lists(outcome_st, max_size=6),
    st.lists(outcome_st, max_size=3).map(lambda extra: [FULL, *extra]),
)
_plug = Declaration(
    manufacturer="TP-Link",
    model="Tapo P110",
    support_period_end=date(2032, 12, 31),
    vulnerability_disclosure_policy="https://example.invalid/vdp",
    security_contact="security@example.invalid",
    source="plug.yaml",
)
declarations_st = st.sampled_from(
    [
        None,
        _plug,
        _plug.model_copy(update={"support_period_end": date(2025, 1, 31)}),
        _plug.model_copy(update={"support_period_end": None}),
        _plug.model_copy(update={"vulnerability_disclosure_policy": None}),
        _plug.model_copy(update={"firmware": "1.3.1"}),  # a declared version (2026.3)
    ]
)


def rated(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None = None,
) -> Rating:
    device = Device(id="d", address="10.0.0.2", findings=findings, outcomes=outcomes)
    rating = rate(device, SCHEME, declaration, today=TODAY)
    # The output is validated through the full published schema; the generated inputs are
    # left out of the document because validating them again only costs time.
    result = ScanResult(
        scan_id="p",
        started_at=datetime(2026, 3, 1, tzinfo=UTC),
        devices=[Device(id="d", address="10.0.0.2", rating=rating)],
    )
    VALIDATOR.validate(json.loads(result.model_dump_json()))
    return rating


def rank(rating: Rating) -> int:
    """A letter's place; "insufficient evidence" (no letter) ranks below G, so that a property
    saying "never better" also holds when one side has no letter."""
    if rating.grade is None:
        assert rating.status == "insufficient_evidence", rating.reasons
        return len(GRADES)
    return GRADES.index(rating.grade)


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=8),
    outcomes=outcomes_st,
    declaration=declarations_st,
    data=st.data(),
)
def test_deterministic_whatever_the_order(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
    data: st.DataObject,
) -> None:
    first = rated(findings, outcomes, declaration)
    shuffled = data.draw(st.permutations(findings))
    reordered = data.draw(st.permutations(outcomes))
    assert rated(shuffled, reordered, declaration) == first


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=8),
    extra=findings_st,
    outcomes=outcomes_st,
    declaration=declarations_st,
)
def test_monotone_adding_a_finding_never_helps(
    findings: list[Finding],
    extra: Finding,
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
) -> None:
    before = rated(findings, outcomes, declaration)
    after = rated([*findings, extra], outcomes, declaration)
    if before.grade is not None:  # a finding never takes a letter away...
        assert rank(after) >= rank(before)  # ...nor improves it
    assert after.score is not None and before.score is not None
    assert after.score <= before.score
    assert {c.cap for c in before.caps} <= {c.cap for c in after.caps}


@PROPERTY
@given(findings=st.lists(findings_st, min_size=1, max_size=8), data=st.data())
def test_monotone_removing_a_finding_never_hurts(
    findings: list[Finding], data: st.DataObject
) -> None:
    kept = data.draw(st.lists(st.sampled_from(findings), unique_by=id, max_size=len(findings)))
    assert rank(rated(kept, [FULL], _plug)) <= rank(rated(findings, [FULL], _plug))


@PROPERTY
@given(findings=st.lists(findings_st, max_size=8), outcomes=outcomes_st, decl=declarations_st)
def test_caps_hold(
    findings: list[Finding], outcomes: list[ProbeOutcome], decl: Declaration | None
) -> None:
    r = rated(findings, outcomes, decl)
    assert r.score is not None
    band = next(b.grade for b in SCHEME.bands if r.score >= b.min_score)
    expected = max([band, *(c.grade for c in r.caps)], key=GRADES.index)
    assert r.grade in (expected, None)  # None: insufficient evidence, no letter at all
    for cap in r.caps:
        assert rank(r) >= GRADES.index(cap.grade)
    universal = Finding(
        check="cred.default-password",
        severity=Severity.CRITICAL,
        title="default password",
        evidence=[Evidence(summary="root/admin on telnet", data={"universal": True})],
    )
    assert rated([*findings, universal], outcomes, decl).grade == "G"


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=6),
    check=st.sampled_from(EXPECTED),
    status=st.sampled_from([OutcomeStatus.FAILED, OutcomeStatus.SKIPPED_BY_POLICY]),
)
def test_unknown_is_not_pass(findings: list[Finding], check: str, status: OutcomeStatus) -> None:
    complete = rated(findings, [FULL], _plug)
    attempt = ProbeOutcome(probe="p", status=status, reason="timed out", checks=[check])
    partial = rated(findings, [FULL, attempt], _plug)
    assert partial.coverage is not None and complete.coverage is not None
    # 2026.3: a device that showed no version has its update checks unevaluated already
    blind = any(f.check == VERSION_UNKNOWN_CHECK for f in findings)
    if check in complete.coverage.checks_unknown:
        assert blind and partial.coverage == complete.coverage
    else:
        assert partial.coverage.fraction < complete.coverage.fraction
    assert complete.coverage.fraction == 1.0 or blind
    assert check in partial.coverage.checks_unknown
    assert partial.grade != "A"
    assert rank(partial) >= rank(complete)
    row = next(c for c in partial.categories if c.id == SCHEME.check(check).category)  # type: ignore[union-attr]
    assert row.status.value in ("fail", "unknown")


@PROPERTY
@given(outcomes=st.lists(outcome_st, max_size=6))
def test_without_a_full_evaluation_nothing_earns_a(outcomes: list[ProbeOutcome]) -> None:
    r = rated([], outcomes, _plug)
    assert r.coverage is not None
    if r.grade == "A":
        assert r.coverage.fraction == 1.0
    if r.coverage.fraction < 0.5:
        assert rank(r) >= GRADES.index("D")


# --- issue 15: a grade claims only what was measured (scheme 2026.3) -----------------------

LAB_SCOPE = ScanScope(
    profile="lab", tcp_ports="all", tcp_port_count=65535, udp=True, policy=Policy.DEFAULT
)
contexts_st = st.sampled_from(
    [
        Context(scope=LAB_SCOPE, vulndb_date=TODAY),
        Context(scope=LAB_SCOPE.model_copy(update={"budget_cut": True}), vulndb_date=TODAY),
        Context(
            scope=LAB_SCOPE.model_copy(update={"profile": "home", "tcp_ports": "curated"}),
            vulndb_date=TODAY,
        ),
        Context(scope=LAB_SCOPE, vulndb_date=date(2025, 8, 25)),
        Context(),
    ]
)


def rated_in(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
    context: Context,
) -> Rating:
    device = Device(id="d", address="10.0.0.2", findings=findings, outcomes=outcomes)
    if declaration is not None:
        context = Context(context.scope, context.vulndb_date, declaration.facts())
    return rate(device, SCHEME, declaration, today=TODAY, context=context)


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=6),
    outcomes=outcomes_st,
    declaration=declarations_st,
    context=contexts_st,
    data=st.data(),
)
def test_removing_evidence_never_improves_a_letter_grade(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
    context: Context,
    data: st.DataObject,
) -> None:
    """Evidence is what ran: outcomes with status ``ran``, the scan's scope, dated
    vulnerability data. Taking any of it away can lower a grade or take its letter, never
    raise it."""
    before = rated_in(findings, outcomes, declaration, context)
    dropped = data.draw(
        st.lists(st.sampled_from(range(len(outcomes))), unique=True) if outcomes else st.just([])
    )
    fewer = [
        o for i, o in enumerate(outcomes) if not (i in dropped and o.status is OutcomeStatus.RAN)
    ]
    less = data.draw(
        st.sampled_from(
            [
                context,
                Context(None, context.vulndb_date),
                Context(context.scope, None),
                Context(),
            ]
        )
    )
    after = rated_in(findings, fewer, declaration, less)
    assert rank(after) >= rank(before), (before.reasons, after.reasons)


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=8),
    outcomes=outcomes_st,
    declaration=declarations_st,
    context=contexts_st,
)
def test_a_row_with_no_check_that_ran_is_never_passed(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
    context: Context,
) -> None:
    r = rated_in(findings, outcomes, declaration, context)
    ran = {cid for o in outcomes if o.status is OutcomeStatus.RAN for cid in o.checks}
    for row in r.categories:
        if row.status is CategoryStatus.PASS:
            members = {
                c.id
                for c in SCHEME.checks
                if c.category == row.id and c.source == "scan" and not c.marks_unknown
            }
            assert members & ran, row
        else:
            assert row.status is CategoryStatus.FAIL or row.reason, row


@PROPERTY
@given(
    findings=st.lists(findings_st, max_size=6),
    outcomes=st.lists(
        st.builds(
            ProbeOutcome,
            probe=st.sampled_from(["p1", "p2"]),
            status=st.sampled_from([OutcomeStatus.NOT_APPLICABLE, OutcomeStatus.FAILED]),
            checks=st.lists(st.sampled_from(SCAN_CHECKS), max_size=8),
        ),
        max_size=6,
    ),
    declaration=declarations_st,
    context=contexts_st,
)
def test_a_device_whose_probes_were_all_not_applicable_or_failed_is_never_a_or_b(
    findings: list[Finding],
    outcomes: list[ProbeOutcome],
    declaration: Declaration | None,
    context: Context,
) -> None:
    r = rated_in(findings, outcomes, declaration, context)
    assert r.grade not in ("A", "B"), r.reasons
    assert all(row.status is not CategoryStatus.PASS for row in r.categories)
