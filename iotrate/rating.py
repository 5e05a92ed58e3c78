"""The rating engine: findings, probe outcomes and a declaration in, an A-G rating out.

Everything that decides a grade (weights, caps, bands, categories, what a declaration counts
for) lives in the versioned scheme, ``rating_schema/iotrate-<version>.yaml``, loaded as a typed
:class:`~iotrate.rating_schema.model.Scheme` by ``iotrate.rating_schema.loader``; this module only
interprets it, so a lab can cite one file and a scheme change never hides in code. The rules
it applies are written up for labs in ``rating_schema/METHODOLOGY.md``.

``rate`` is pure: the same device, scheme, declaration and date give the same rating whatever
order the findings and outcomes come in, and nothing is read from the clock or the network.
Its properties (deterministic, monotone, caps hold, unknown is not pass) are tested in
``tests/unit/rating/test_rating_properties.py``.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from iotrate.declarations import Declaration
from iotrate.models import (
    GRADES,
    CapApplied,
    CategoryResult,
    CategoryStatus,
    Confidence,
    Coverage,
    DeclaredFacts,
    Device,
    EtsiCoverage,
    Evidence,
    Finding,
    Grade,
    OutcomeStatus,
    Policy,
    Rating,
    ScanResult,
    ScanScope,
    Severity,
)
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import (
    AnyCondition,
    Band,
    Check,
    Condition,
    CoverageCondition,
    EvidenceCondition,
    EvidenceFact,
    FindingCondition,
    Scheme,
    UnknownCondition,
    UnratedCondition,
)

log = logging.getLogger(__name__)

DECLARATION_PROBE = "declaration"
"""``Finding.probe`` of the findings the rater derives from a declaration (or its absence)."""
VERSION_UNKNOWN_CHECK = "update.version-unknown"
"""The check whose finding says no software or firmware version was seen (scheme 2026.3 reads
it for the ``version-unknown`` evidence fact and to leave the update checks unevaluated)."""

_CONFIDENCE_RANK = {Confidence.POSSIBLE: 0, Confidence.PROBABLE: 1, Confidence.CONFIRMED: 2}
_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


# --- Declarations ----------------------------------------------------------------------------


def _decl_finding(check: Check, summary: str, source: str | None) -> Finding:
    found: Finding = check.finding(
        [Evidence(summary=summary, data={"declaration": source} if source else {})],
        probe=DECLARATION_PROBE,
    )
    return found


def declaration_findings(
    scheme: Scheme, declaration: Declaration | None, *, today: date
) -> list[Finding]:
    """The findings a declaration (or the lack of one) stands for.

    What is not declared is treated as not there: a scan cannot find a support period, and a
    consumer cannot rely on one nobody has stated.
    """
    ids = scheme.declaration

    def make(check_id: str, summary: str) -> Finding:
        check = scheme.check(check_id)
        assert check is not None  # parse_scheme guarantees it
        return _decl_finding(check, summary, declaration.source if declaration else None)

    if declaration is None:
        none = "no manufacturer declaration was supplied"
        return [
            make(ids.support_period_missing, none),
            make(ids.disclosure_policy_missing, none),
            make(ids.security_contact_missing, none),
            make(ids.update_mechanism_missing, none),
        ]
    out = []
    end = declaration.support_period_end
    if end is None:
        out.append(make(ids.support_period_missing, "the declaration gives no support period"))
    elif end < today:
        out.append(make(ids.support_period_expired, f"security support ended on {end}"))
    if not declaration.vulnerability_disclosure_policy:
        out.append(
            make(ids.disclosure_policy_missing, "the declaration names no disclosure policy")
        )
    if not declaration.security_contact:
        out.append(make(ids.security_contact_missing, "the declaration names no contact"))
    policy = declaration.security_update_policy
    if policy is None or not policy.delivery:
        out.append(
            make(ids.update_mechanism_missing, "the declaration says nothing on update delivery")
        )
    return out


# --- Rating ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What the caps are evaluated against, built once per rating."""

    by_check: Mapping[str, Sequence[Finding]]
    unrated: Sequence[Finding]
    unknown: frozenset[str]
    coverage: float
    evidence: frozenset[EvidenceFact] = frozenset()


def _canonical(findings: Iterable[Finding]) -> list[Finding]:
    """Order findings by content so nothing downstream depends on the order probes finished."""
    return sorted(findings, key=lambda f: f.model_dump_json())


def _eq(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.casefold() == actual.casefold()
    return bool(expected == actual)


def _value_matches(matcher: Any, actual: Any) -> bool:
    if isinstance(matcher, dict):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return all(_COMPARE[op](actual, bound) for op, bound in matcher.items())
    if isinstance(matcher, list):
        return any(_value_matches(m, actual) for m in matcher)
    if isinstance(actual, list):
        return any(_eq(matcher, a) for a in actual)
    return _eq(matcher, actual)


def _data_matches(data: tuple[tuple[str, Any], ...], finding: Finding) -> bool:
    if not data:
        return True
    return any(
        all(key in ev.data and _value_matches(m, ev.data[key]) for key, m in data)
        for ev in finding.evidence
    )


_EVIDENCE_TEXT: dict[EvidenceFact, str] = {
    "version-unknown": "no firmware version seen or declared",
    "partial-scope": "not a full lab-profile scan",
    "vulndb-stale": "vulnerability data too old or undated",
    "support-short": "declared support ends within two years",
    "declaration-forced": "declaration not matched to the device",
}


def _witness(cond: Condition, facts: _Facts) -> str | None:
    """Why ``cond`` holds (a short, deterministic account), or None if it does not.

    Every condition is monotone in the findings: more findings can only make more of them
    hold. That is what makes the grade monotone, so the grammar has no negation.
    """
    if isinstance(cond, FindingCondition):
        floor = _CONFIDENCE_RANK[cond.min_confidence]
        for cid in cond.checks:
            for f in facts.by_check.get(cid, ()):
                if _CONFIDENCE_RANK[f.confidence] >= floor and _data_matches(cond.data, f):
                    summary = next((e.summary for e in f.evidence if e.summary), f.title)
                    return f"{cid}: {summary}"
        return None
    if isinstance(cond, UnknownCondition):
        missing = [c for c in cond.checks if c in facts.unknown]
        return f"not evaluated: {', '.join(missing)}" if missing else None
    if isinstance(cond, EvidenceCondition):
        return _EVIDENCE_TEXT[cond.fact] if cond.fact in facts.evidence else None
    if isinstance(cond, CoverageCondition):
        return f"coverage {facts.coverage:.0%}" if facts.coverage < cond.below else None
    if isinstance(cond, UnratedCondition):
        floor = _SEVERITY_RANK[cond.min_severity]
        hits = sorted({f.check for f in facts.unrated if _SEVERITY_RANK[f.severity] >= floor})
        return f"unrated: {', '.join(hits)}" if hits else None
    witnesses = [_witness(p, facts) for p in cond.parts]
    if isinstance(cond, AnyCondition):
        return next((w for w in witnesses if w is not None), None)
    if all(w is not None for w in witnesses):
        return "; ".join(w for w in witnesses if w is not None)
    return None


def _statuses(device: Device) -> dict[str, set[OutcomeStatus]]:
    statuses: dict[str, set[OutcomeStatus]] = {}
    for outcome in device.outcomes:
        for cid in outcome.checks:
            statuses.setdefault(cid, set()).add(outcome.status)
    return statuses


def version_seen(device: Device) -> bool:
    """Whether a probe saw the device's software version: the update probe ran and did not
    have to say "no version disclosed". A probe that never ran saw nothing."""
    ran = OutcomeStatus.RAN in _statuses(device).get(VERSION_UNKNOWN_CHECK, set())
    return ran and not any(f.check == VERSION_UNKNOWN_CHECK for f in device.findings)


def _coverage(
    device: Device, scheme: Scheme, *, version_known: bool = True
) -> tuple[Coverage, frozenset[str], frozenset[str]]:
    """How many of the scheme's scan checks this device's probe outcomes evaluated, and which.

    Conservative by design (unknown is not pass): one failed or skipped attempt at a check
    makes it unknown even if another port's attempt ran, and an expected check no outcome
    mentions is unknown too. ``not_applicable`` takes a check out of the count, as does a
    policy skip of an optional (``expected: false``) check. Findings play no part: a finding
    without an outcome is a probe bug, and letting it raise coverage would let an extra
    finding raise a grade. Without a known version (``version_known`` false, scheme 2026.3)
    the update checks are not evaluated whatever the update probe reported: "no known
    vulnerability in an unknown version" is no evidence.
    """
    statuses = _statuses(device)
    version_category = _category(scheme, VERSION_UNKNOWN_CHECK)
    evaluated: list[str] = []
    unknown: list[str] = []
    for check in scheme.checks:
        if check.source != "scan" or not check.applies_to(device):
            continue
        seen = statuses.get(check.id, set())
        skipped = OutcomeStatus.SKIPPED_BY_POLICY in seen
        blind = not version_known and check.category == version_category and not check.marks_unknown
        if OutcomeStatus.FAILED in seen or (skipped and check.expected):
            unknown.append(check.id)
        elif blind and (check.expected or OutcomeStatus.RAN in seen):
            unknown.append(check.id)
        elif OutcomeStatus.RAN in seen:
            evaluated.append(check.id)
        elif not seen and check.expected:
            unknown.append(check.id)
    total = len(evaluated) + len(unknown)
    fraction = round(len(evaluated) / total, 4) if total else 0.0
    cov = Coverage(
        fraction=fraction,
        checks_run=len(evaluated),
        checks_total=total,
        checks_unknown=sorted(unknown),
    )
    return cov, frozenset(unknown), frozenset(evaluated)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Context:
    """What a rating is based on besides the device: the scan's scope, the vulnerability
    data's date and how the declaration was bound (scheme 2026.3). The defaults are the
    conservative reading of a result that did not record them: unknown scope is not full
    scope, and undated vulnerability data is not fresh."""

    scope: ScanScope | None = None
    vulndb_date: date | None = None
    declared: DeclaredFacts | None = None


def _full_scope(scope: ScanScope | None) -> bool:
    return scope is not None and scope.profile == "lab" and not scope.budget_cut


def _evidence_facts(
    scheme: Scheme,
    device: Device,
    declaration: Declaration | None,
    context: Context,
    today: date,
    version_known: bool,
) -> frozenset[EvidenceFact]:
    rules = scheme.evidence
    if rules is None:
        return frozenset()
    facts: set[EvidenceFact] = set()
    versioned = scheme.check(VERSION_UNKNOWN_CHECK)
    if not version_known and versioned is not None and versioned.applies_to(device):
        facts.add("version-unknown")
    if not _full_scope(context.scope):
        facts.add("partial-scope")
    db = context.vulndb_date
    if db is None or (today - db).days > rules.vulndb_max_age_days:
        facts.add("vulndb-stale")
    end = declaration.support_period_end if declaration else None
    if end is not None and (end - today).days < rules.support_min_left_days:
        facts.add("support-short")
    bound = context.declared
    if declaration is not None and bound is not None and (bound.forced or bound.mismatch):
        facts.add("declaration-forced")
    return frozenset(facts)


def _left_out(
    scheme: Scheme, scope: ScanScope | None, unknown: frozenset[str], version_known: bool
) -> list[str]:
    """What this scan did not test, in words a reader of the label understands."""
    out = []
    if scope is None:
        out.append("scope not recorded (result written before schema 1.2)")
    else:
        if scope.budget_cut:
            out.append(f"the time budget ({_fmt(scope.budget_s or 0)} s) cut probes short")
        if scope.policy is Policy.SAFE:
            out.append("--safe: no default passwords were tried")
        if scope.tcp_ports != "all":
            out.append(f"only {scope.tcp_port_count} TCP ports ({scope.tcp_ports}) were scanned")
        if not scope.udp:
            out.append("UDP services were not probed")
    if not version_known:
        out.append("no firmware version seen: known vulnerabilities not checked")
    rows: dict[str, list[str]] = {}
    for cid in sorted(unknown):
        cat = _category(scheme, cid)
        if cat is not None:
            rows.setdefault(cat, []).append(cid)
    for cat in scheme.categories:
        if cat.id in rows:
            out.append(f"{cat.title}: not evaluated: {', '.join(rows[cat.id])}")
    return out


def _etsi(
    scheme: Scheme, evaluated: frozenset[str], declaration: Declaration | None
) -> EtsiCoverage:
    """Each ETSI EN 303 645 provision as this rating assessed it: tested or partly tested
    only if a check mapped to it ran, declared if the declaration answered it."""
    counts = {"tested": 0, "partly": 0, "declared": 0, "not_assessed": 0}
    for p in scheme.provisions:
        if p.status in ("tested", "partly") and evaluated.intersection(p.checks):
            counts[p.status] += 1
        elif p.status == "declared" and p.checks and declaration is not None:
            counts["declared"] += 1
        else:
            counts["not_assessed"] += 1
    return EtsiCoverage(**counts)


def _worst(grades: Iterable[Grade]) -> Grade:
    return max(grades, key=GRADES.index)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def rate(
    device: Device,
    scheme: Scheme,
    declaration: Declaration | None = None,
    *,
    today: date,
    context: Context | None = None,
) -> Rating:
    """Rate one device against ``scheme``, as of ``today`` (for the support period).

    Findings of the scheme's declaration checks already on the device are replaced by what
    ``declaration`` says, so rating a rated result again gives the same answer. A finding whose
    check the scheme does not define is not scored; it is logged, listed in the reasons and, if
    at least low severity, keeps the device out of A (the ``unrated-finding`` cap). Under a
    scheme with ``evidence`` rules (2026.3 on), ``context`` says what the scan covered and a
    device on which nothing decisive was tested gets no letter (``insufficient_evidence``).
    """
    ctx = context or Context()
    decl_checks = {c.id for c in scheme.checks if c.source == "declaration"}
    findings = _canonical(
        [f for f in device.findings if f.check not in decl_checks]
        + declaration_findings(scheme, declaration, today=today)
    )
    by_check: dict[str, list[Finding]] = {}
    unrated: list[Finding] = []
    for f in findings:
        if scheme.check(f.check) is None:
            unrated.append(f)
        else:
            by_check.setdefault(f.check, []).append(f)
    for cid in sorted({f.check for f in unrated}):
        log.warning(
            "device %s: check %r is not in scheme %s; not scored", device.id, cid, scheme.cite
        )

    strict = scheme.evidence is not None
    version_known = not strict or version_seen(device) or bool(declaration and declaration.firmware)
    coverage, unknown, evaluated = _coverage(device, scheme, version_known=version_known)
    evidence = _evidence_facts(scheme, device, declaration, ctx, today, version_known)
    facts = _Facts(by_check, unrated, unknown, coverage.fraction, evidence)

    # Score: one penalty per check (its most certain finding), bounded per category.
    penalties: dict[str, float] = {}
    for cid in sorted(by_check):
        check = scheme.check(cid)
        assert check is not None
        factor = max(check.confidence.factor(f.confidence) for f in by_check[cid])
        penalties[cid] = check.weight * factor
    lost = 0.0
    clipped: list[str] = []
    for cat in scheme.categories:
        raw = sum(p for cid, p in sorted(penalties.items()) if _category(scheme, cid) == cat.id)
        if raw > cat.max_penalty:
            clipped.append(
                f"{cat.title}: {_fmt(raw)} points of findings count as {_fmt(cat.max_penalty)}"
            )
        lost += min(raw, cat.max_penalty)
    score = round(max(scheme.score_floor, scheme.score_start - lost), 1)
    band = next(b for b in scheme.bands if score >= b.min_score)

    caps: list[CapApplied] = []
    for cap in scheme.caps:
        why = _witness(cap.when, facts)
        if why is not None:
            caps.append(CapApplied(cap=cap.id, grade=cap.grade, reason=f"{cap.reason} ({why})"))
    caps.sort(key=lambda c: (-GRADES.index(c.grade), c.cap))
    grade = _worst([band.grade, *(c.grade for c in caps)])

    # Checks that ran but could only judge nothing (update checks on a version that was only
    # declared) count for coverage, never as evidence: they cannot make a row pass or lift
    # the evidence floor, or a silent device with a declaration would earn A.
    hollow = _hollow(scheme, evaluated, version_seen(device))
    decisive = frozenset(c for c in evaluated if not _marks_unknown(scheme, c) and c not in hollow)
    rows = _categories(scheme, by_check, unknown, device, decisive if strict else None)
    if hollow and strict:
        rows = [
            r.model_copy(update={"reason": "firmware version only declared, not seen"})
            if r.reason
            and any(_category(scheme, c) == r.id for c in hollow)
            and r.status is CategoryStatus.UNKNOWN
            and not r.reason.startswith("could not")
            else r
            for r in rows
        ]
    reasons = _reasons(scheme, band, score, grade, caps, penalties, by_check, unrated)
    reasons += clipped
    reasons.append(
        f"coverage: {coverage.checks_run} of {coverage.checks_total} applicable checks evaluated"
        + (f"; not evaluated: {', '.join(coverage.checks_unknown)}" if unknown else "")
    )
    if declaration is not None:
        until = declaration.support_period_end
        reasons.append(
            f"declaration {declaration.source}: {declaration.manufacturer} {declaration.model}"
            + (f", security support until {until}" if until else ", no support period")
        )
    else:
        reasons.append("no manufacturer declaration: support period and disclosure policy unknown")

    base = Rating(
        grade=grade,
        score=score,
        caps=caps,
        reasons=reasons,
        scheme_id=scheme.id,
        scheme_version=scheme.version,
        coverage=coverage,
        categories=rows,
        support_until=declaration.support_period_end if declaration else None,
        declaration=declaration.source if declaration else None,
    )
    if not strict:
        return base
    return _with_evidence(
        base, scheme, rows, decisive, declaration, ctx, today, version_known, unknown
    )


def _with_evidence(
    base: Rating,
    scheme: Scheme,
    rows: Sequence[CategoryResult],
    decisive: frozenset[str],
    declaration: Declaration | None,
    ctx: Context,
    today: date,
    version_known: bool,
    unknown: frozenset[str],
) -> Rating:
    """Scheme 2026.3's additions: the evidence floor, the upper bound, topic and ETSI
    coverage, the vulnerability data's date and the label's validity."""
    rules = scheme.evidence
    assert rules is not None and base.coverage is not None and base.grade is not None
    scan_failed = any(r.checks_failed and _scan_failure(scheme, r) for r in rows)
    tested_rows = sum(
        1 for c in scheme.categories if any(_category(scheme, cid) == c.id for cid in decisive)
    )
    insufficient = not decisive and not scan_failed
    left_out = _left_out(scheme, ctx.scope, unknown, version_known)
    grade: Grade | None = None if insufficient else base.grade
    reasons = list(base.reasons)
    if insufficient:
        reasons.insert(
            0,
            "insufficient evidence: no check that could pass or fail ran on this device, so it "
            f"gets no letter (the findings alone would give {base.grade})",
        )
    elif left_out and base.grade != "G":
        reasons.insert(1, f"at best {base.grade}: left out: {'; '.join(left_out)}")
    valid = _add_months(today, rules.valid_for_months)
    end = declaration.support_period_end if declaration else None
    coverage = base.coverage.model_copy(
        update={
            "rows_tested": tested_rows,
            "rows_total": len(rows),
            "etsi": _etsi(scheme, decisive, declaration),
        }
    )
    return base.model_copy(
        update={
            "grade": grade,
            "status": "insufficient_evidence" if insufficient else "rated",
            "at_best": bool(left_out) and grade not in (None, "G"),
            "left_out": left_out,
            "reasons": reasons,
            "coverage": coverage,
            "vulndb_date": ctx.vulndb_date,
            "valid_until": min(valid, end) if end is not None else valid,
            "declared": ctx.declared if declaration is not None else None,
        }
    )


def _hollow(scheme: Scheme, evaluated: frozenset[str], seen: bool) -> frozenset[str]:
    """The version-dependent checks that 'ran' without a version seen."""
    if seen:
        return frozenset()
    category = _category(scheme, VERSION_UNKNOWN_CHECK)
    return frozenset(
        c for c in evaluated if _category(scheme, c) == category and not _marks_unknown(scheme, c)
    )


def _marks_unknown(scheme: Scheme, check_id: str) -> bool:
    check = scheme.check(check_id)
    return check is not None and check.marks_unknown


def _scan_failure(scheme: Scheme, row: CategoryResult) -> bool:
    """A row failed on something the scan saw (not only on what a declaration lacks)."""
    if row.status is not CategoryStatus.FAIL:
        return False
    for cid in row.checks_failed:
        check = scheme.check(cid)
        if check is not None and check.source == "scan":
            return True
    return False


def _category(scheme: Scheme, check_id: str) -> str | None:
    check = scheme.check(check_id)
    return check.category if check else None


def _reasons(
    scheme: Scheme,
    band: Band,
    score: float,
    grade: Grade,
    caps: Sequence[CapApplied],
    penalties: Mapping[str, float],
    by_check: Mapping[str, Sequence[Finding]],
    unrated: Sequence[Finding],
) -> list[str]:
    """The explanation trail, most decisive first: what set the grade, then every cap, then
    every deduction largest first, then what could not be judged."""
    head = f"grade {grade} under scheme {scheme.cite}: score {_fmt(score)} is in band {band.grade}"
    binding = [c.cap for c in caps if c.grade == grade and grade != band.grade]
    out = [head + (f", capped at {grade} by {', '.join(binding)}" if binding else "")]
    out += [f"cap {c.grade} {c.cap}: {c.reason}" for c in caps]
    for cid in sorted(penalties, key=lambda c: (-penalties[c], c)):
        check = scheme.check(cid)
        assert check is not None
        confs = sorted({f.confidence.value for f in by_check[cid]})
        n = len(by_check[cid])
        extra = f", {n} findings" if n > 1 else ""
        points = f"-{_fmt(penalties[cid])}" if penalties[cid] else "noted"
        out.append(
            f"{points} {cid} ({check.severity.value}, {'/'.join(confs)}{extra}): {check.title}"
        )
    for cid in sorted({f.check for f in unrated}):
        sev = max((f.severity for f in unrated if f.check == cid), key=_SEVERITY_RANK.__getitem__)
        out.append(f"not scored: {cid} ({sev.value}) is not a check of scheme {scheme.cite}")
    return out


def _categories(
    scheme: Scheme,
    by_check: Mapping[str, Sequence[Finding]],
    unknown: frozenset[str],
    device: Device,
    ran: frozenset[str] | None = None,
) -> list[CategoryResult]:
    """A label row fails on a finding that counts against the device (above info, at least
    probable, not a ``marks_unknown`` check); it passes only when every one of its scan checks
    was evaluated and nothing in it is uncertain; otherwise it is unknown, with the reason. A
    row none of whose scan checks applies to the device (passwords of a Bluetooth tag) is
    unknown, not passed. With ``ran`` (scheme 2026.3: the decisive checks that ran) a row also
    needs one of its checks to have run: a row whose checks were all not applicable was not
    tested, and "passed" would claim what nobody measured."""
    rows = []
    sure = _CONFIDENCE_RANK[Confidence.PROBABLE]
    for cat in scheme.categories:
        members = [c for c in scheme.checks if c.category == cat.id and c.applies_to(device)]
        untested = not any(c.source == "scan" for c in members)
        found = [c for c in members if c.id in by_check and c.severity is not Severity.INFO]
        failed = sorted(
            c.id
            for c in found
            if not c.marks_unknown
            and any(_CONFIDENCE_RANK[f.confidence] >= sure for f in by_check[c.id])
        )
        missing = sorted(c.id for c in members if c.id in unknown)
        none_ran = ran is not None and not any(c.id in ran for c in members)
        reason: str | None = None
        if failed:
            status = CategoryStatus.FAIL
        elif untested:
            status, reason = CategoryStatus.UNKNOWN, "no scan check applies to this device"
        elif missing:
            status, reason = CategoryStatus.UNKNOWN, f"could not be evaluated: {', '.join(missing)}"
        elif found:
            status, reason = CategoryStatus.UNKNOWN, "uncertain findings"
        elif none_ran:
            status, reason = CategoryStatus.UNKNOWN, "nothing it tests was found on the device"
        else:
            status = CategoryStatus.PASS
        rows.append(
            CategoryResult(
                id=cat.id, title=cat.title, status=status, checks_failed=failed, reason=reason
            )
        )
    return rows


def rate_result(
    result: ScanResult,
    scheme: Scheme | None = None,
    declarations: Mapping[str, Declaration] | None = None,
    *,
    today: date | None = None,
) -> ScanResult:
    """A copy of ``result`` with every device rated.

    ``declarations`` maps device ids to their declaration. A device without one here keeps
    the declaration embedded in its earlier rating (2026.3 on), so re-rating never needs the
    file again and never silently drops it. ``today`` defaults to the day the scan started,
    not the day of rating, so re-rating an old result reproduces its grade. The declaration
    findings are written into each device's findings too (replacing any from an earlier
    rating), so reports can explain them like any other finding.
    """
    from iotrate.declarations import check_declaration_age, embedded_declaration

    scheme = scheme or load_scheme()
    day = today or result.started_at.date()
    decls = declarations or {}
    decl_checks = {c.id for c in scheme.checks if c.source == "declaration"}
    devices = []
    for device in result.devices:
        decl = decls.get(device.id)
        if decl is None and device.rating is not None and device.rating.declared is not None:
            decl = embedded_declaration(device.rating.declared)
        if decl is not None and scheme.evidence is not None:
            check_declaration_age(
                decl, result.started_at.date(), scheme.evidence.declaration_max_age_days
            )
        context = Context(
            scope=result.scope,
            vulndb_date=result.vulndb_date,
            declared=decl.facts() if decl is not None else None,
        )
        rating = rate(device, scheme, decl, today=day, context=context)
        findings = [f for f in device.findings if f.check not in decl_checks]
        findings += declaration_findings(scheme, decl, today=day)
        devices.append(device.model_copy(update={"findings": findings, "rating": rating}))
    return result.model_copy(update={"devices": devices})


def device_rater(scan_id: str, started: datetime) -> Callable[[Device], Device]:
    """Rates one device on its own, as it is stored or published mid-scan: an interrupted scan
    still has grades, and the scan's final rating (after cross-device correlation) replaces
    them. Without a loadable scheme, or when rating fails, the device goes on unrated rather
    than costing the scan its result."""
    from iotrate.errors import IotrateError

    try:
        scheme: Scheme | None = load_scheme()
    except IotrateError:
        scheme = None

    def rate(device: Device) -> Device:
        if scheme is None:
            return device
        try:
            one = ScanResult(scan_id=scan_id, started_at=started, devices=[device])
            return rate_result(one, scheme).devices[0]
        except IotrateError:
            return device

    return rate
