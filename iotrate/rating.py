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
    Device,
    Evidence,
    Finding,
    Grade,
    OutcomeStatus,
    Rating,
    ScanResult,
    Severity,
)
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import (
    AnyCondition,
    Band,
    Check,
    Condition,
    CoverageCondition,
    FindingCondition,
    Scheme,
    UnknownCondition,
    UnratedCondition,
)

log = logging.getLogger(__name__)

DECLARATION_PROBE = "declaration"
"""``Finding.probe`` of the findings the rater derives from a declaration (or its absence)."""

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


def _coverage(device: Device, scheme: Scheme) -> tuple[Coverage, frozenset[str]]:
    """How many of the scheme's scan checks this device's probe outcomes evaluated.

    Conservative by design (unknown is not pass): one failed or skipped attempt at a check
    makes it unknown even if another port's attempt ran, and an expected check no outcome
    mentions is unknown too. ``not_applicable`` takes a check out of the count, as does a
    policy skip of an optional (``expected: false``) check. Findings play no part: a finding
    without an outcome is a probe bug, and letting it raise coverage would let an extra
    finding raise a grade.
    """
    statuses: dict[str, set[OutcomeStatus]] = {}
    for outcome in device.outcomes:
        for cid in outcome.checks:
            statuses.setdefault(cid, set()).add(outcome.status)
    evaluated: list[str] = []
    unknown: list[str] = []
    for check in scheme.checks:
        if check.source != "scan" or not check.applies_to(device):
            continue
        seen = statuses.get(check.id, set())
        skipped = OutcomeStatus.SKIPPED_BY_POLICY in seen
        if OutcomeStatus.FAILED in seen or (skipped and check.expected):
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
    return cov, frozenset(unknown)


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
) -> Rating:
    """Rate one device against ``scheme``, as of ``today`` (for the support period).

    Findings of the scheme's declaration checks already on the device are replaced by what
    ``declaration`` says, so rating a rated result again gives the same answer. A finding whose
    check the scheme does not define is not scored; it is logged, listed in the reasons and, if
    at least low severity, keeps the device out of A (the ``unrated-finding`` cap).
    """
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

    coverage, unknown = _coverage(device, scheme)
    facts = _Facts(by_check, unrated, unknown, coverage.fraction)

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

    return Rating(
        grade=grade,
        score=score,
        caps=caps,
        reasons=reasons,
        scheme_id=scheme.id,
        scheme_version=scheme.version,
        coverage=coverage,
        categories=_categories(scheme, by_check, unknown, device),
        support_until=declaration.support_period_end if declaration else None,
        declaration=declaration.source if declaration else None,
    )


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
) -> list[CategoryResult]:
    """A label row fails on a finding that counts against the device (above info, at least
    probable, not a ``marks_unknown`` check); it passes only when every one of its scan checks
    was evaluated and nothing in it is uncertain; otherwise it is unknown. A row none of whose
    scan checks applies to the device (passwords of a Bluetooth tag) is unknown, not passed."""
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
        if failed:
            status = CategoryStatus.FAIL
        elif found or untested or any(c.id in unknown for c in members):
            status = CategoryStatus.UNKNOWN
        else:
            status = CategoryStatus.PASS
        rows.append(CategoryResult(id=cat.id, title=cat.title, status=status, checks_failed=failed))
    return rows


def rate_result(
    result: ScanResult,
    scheme: Scheme | None = None,
    declarations: Mapping[str, Declaration] | None = None,
    *,
    today: date | None = None,
) -> ScanResult:
    """A copy of ``result`` with every device rated.

    ``declarations`` maps device ids to their declaration. ``today`` defaults to the day the
    scan started, not the day of rating, so re-rating an old result reproduces its grade. The
    declaration findings are written into each device's findings too (replacing any from an
    earlier rating), so reports can explain them like any other finding.
    """
    scheme = scheme or load_scheme()
    day = today or result.started_at.date()
    decls = declarations or {}
    decl_checks = {c.id for c in scheme.checks if c.source == "declaration"}
    devices = []
    for device in result.devices:
        decl = decls.get(device.id)
        rating = rate(device, scheme, decl, today=day)
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
