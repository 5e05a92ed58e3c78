"""The HTML report: one self-contained file a consumer can open and a lab can archive.

Self-contained means no network fetch at all: CSS is inline and each label is an SVG data URI.
Labels go in as ``<img>`` rather than inline SVG so that even a flaw in the label's escaping
could not run script in the page, and a Content-Security-Policy forbids script altogether.
Device strings reach the page only through Jinja2 with autoescaping on.

The page is built from a plain view model (:func:`view`) so the wording can be tested without
parsing HTML: the summary speaks in plain words first, the evidence comes after.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2
from iotrate.rating_schema.loader import scheme_for_version

from iotrate import __version__
from iotrate.errors import IotrateError
from iotrate.history import scan_scope_line
from iotrate.models import (
    GRADES,
    CategoryStatus,
    Device,
    Finding,
    OutcomeStatus,
    Rating,
    ScanResult,
)
from iotrate.naming import device_names, display_name, main_reason
from iotrate.signing import result_digest

from .label import (
    GRADE_COLOURS,
    Row,
    device_label,
    label_data,
    scheme_text,
    tested_on,
)
from .scope import scope_summary
from .textfit import clean

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
GRADE_MEANING: dict[str, tuple[str, str]] = {
    "A": ("Very good", "Hardened, current and supported. Nothing to do."),
    "B": ("Good", "Only minor points; fix them when convenient."),
    "C": ("Fair", "A few weaknesses worth fixing."),
    "D": ("Weak", "Fix the points below soon."),
    "E": ("Poor", "Serious weaknesses: fix them or keep it off your main network."),
    "F": ("Very poor", "Easy to attack: act now."),
    "G": ("Dangerous", "Fails a check that on its own makes a device unsafe: act now."),
}
TEXT_ON = {g: ("#000000" if g in "CDE" else "#FFFFFF") for g in GRADES}
STATUS_TEXT = {
    CategoryStatus.PASS: "passed",
    CategoryStatus.FAIL: "failed",
    CategoryStatus.UNKNOWN: "not tested",
}
OUTCOME_TEXT = {
    OutcomeStatus.FAILED: "could not run",
    OutcomeStatus.NOT_APPLICABLE: "not applicable",
    OutcomeStatus.SKIPPED_BY_POLICY: "skipped by policy",
}


@dataclass(frozen=True)
class CheckText:
    """Plain-language text the rating scheme keeps for a check id."""

    title: str = ""
    explanation: str = ""
    remediation: str = ""
    standards: tuple[str, ...] = ()


@lru_cache(maxsize=8)
def _scheme_texts(version: str | None, scheme_id: str | None) -> Mapping[str, CheckText]:
    try:
        scheme = scheme_for_version(version, scheme_id)
    except IotrateError:  # a broken install still renders, with the findings' own texts
        return {}
    return {
        c.id: CheckText(c.title, c.explanation, c.remediation, tuple(c.standards))
        for c in scheme.checks
    }


def device_texts(
    device: Device, extra: Mapping[str, CheckText] | None = None
) -> Mapping[str, CheckText]:
    """The texts a device's findings are explained with: those of the scheme version that rated
    it (the current scheme for an unrated device, and for a check that version lacks), then
    ``extra`` for checks no shipped scheme knows (a plugin's). Whichever command renders a
    result, the same result gets the same words."""
    r = device.rating
    rated = _scheme_texts(r.scheme_version, r.scheme_id) if r and r.scheme_version else {}
    return {**(extra or {}), **_scheme_texts(None, None), **rated}


def load_check_texts() -> dict[str, CheckText]:
    """The current scheme's texts, keyed by check id.

    The report no longer needs them passed in (:func:`device_texts` picks each device's
    scheme version); kept so existing callers still work.
    """
    return dict(_scheme_texts(None, None))


# --- view model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceView:
    summary: str
    where: str
    data: list[tuple[str, str]]


@dataclass(frozen=True)
class FindingView:
    check: str
    severity: str
    title: str
    confidence: str
    explanation: str
    remediation: str
    standards: list[str]
    evidence: list[EvidenceView]


@dataclass(frozen=True)
class DeviceView:
    anchor: str
    name: str
    vendor: str
    model: str
    firmware: str
    category: str
    address: str
    mac: str
    transport: str
    grade: str | None
    grade_word: str
    grade_advice: str
    score: str
    top_reason: str
    plain: str
    action: str
    support: str
    support_long: str
    support_alert: bool
    declaration: str
    coverage_pct: int | None
    coverage_text: str
    caps: list[tuple[str, str]]
    categories: list[tuple[str, str, str]]
    findings: list[FindingView]
    services: list[dict[str, str]]
    not_tested: list[tuple[str, str, str]]
    label_uri: str
    label_alt: str


@dataclass(frozen=True)
class ReportView:
    title: str
    date: str
    scan_id: str
    targets: str
    devices: list[DeviceView]
    headline: str
    sentences: list[str]
    actions: list[tuple[str, str, str | None, str]]
    distribution: list[tuple[str, int]]
    unrated: int
    schemes: str
    scope: str
    digest: str
    tool: str
    started: str
    finished: str
    errors: list[str] = field(default_factory=list)


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = clean(text, limit=limit + 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(port: int | None, transport: str | None) -> str:
    if port is None:
        return transport or ""
    return f"port {port}/{transport}" if transport else f"port {port}"


def _finding_view(f: Finding, texts: Mapping[str, CheckText]) -> FindingView:
    t = texts.get(f.check, CheckText())
    standards = t.standards or tuple(f.standards)
    evidence = [
        EvidenceView(
            summary=_short(e.summary),
            where=_where(e.port, e.transport.value if e.transport else None),
            data=[(_short(k, 80), _short(v)) for k, v in sorted(e.data.items())],
        )
        for e in f.evidence
    ]
    return FindingView(
        check=_short(f.check, 80),
        severity=f.severity.value,
        title=_short(f.title or t.title, 200),
        confidence=f.confidence.value,
        explanation=_short(t.explanation, 1200),
        remediation=_short(t.remediation or f.remediation or "", 1200),
        standards=[_short(s, 80) for s in standards],
        evidence=evidence,
    )


def _plain(device: Device, name: str) -> str:
    """One sentence a non-expert can act on."""
    r = device.rating
    if r is not None and r.status == "insufficient_evidence":
        return (
            f"{name} gets no grade: the scan could not test anything on it that could pass or "
            "fail (no service answered, no version was visible). That is not a sign it is "
            "secure; scan it again with the lab profile or while it is in use."
        )
    if r is None or r.grade is None:
        return f"{name} has not been rated yet: the scan found it but did not grade it."
    word, advice = GRADE_MEANING[r.grade]
    because = ""
    if reason := main_reason(device):
        because = f" The main reason: {_short(reason, 300).rstrip('.')}."
    bound = ""
    if r.at_best:
        left = "; ".join(_short(x, 200) for x in r.left_out[:4])
        bound = f" This is an upper bound (at best {r.grade}): left out: {left}."
    return f"{name} is rated {r.grade} ({word.lower()}). {advice}{because}{bound}"


def _coverage_text(r: Rating | None, budget: float | None) -> str:
    """Coverage in topics and ETSI provisions when the scheme counts them, the vulnerability
    data's age, and how long the grade holds."""
    cov = r.coverage if r else None
    if r is None or cov is None:
        return "not measured"
    cut = f" — scan stopped at {budget:g} s budget" if budget else ""
    if not cov.rows_total:
        return f"{cov.checks_run} of {cov.checks_total} checks could be tested{cut}"
    parts = [
        f"{cov.rows_tested or 0} of {cov.rows_total} topics tested "
        f"({cov.checks_run} of {cov.checks_total} checks){cut}"
    ]
    if cov.etsi is not None:
        e = cov.etsi
        parts.append(
            f"ETSI EN 303 645: {e.tested} provisions tested, {e.partly} partly tested, "
            f"{e.declared} declared, {e.not_assessed} not assessed"
        )
    if any(c.cap == "vulndb-stale" for c in r.caps):
        dated = r.vulndb_date.isoformat() if r.vulndb_date else "of unknown date"
        parts.append(
            f"vulnerability data {dated} is more than 90 days old: run `iotrate db update` "
            "and scan again"
        )
    if r.valid_until:
        parts.append(f"grade valid until {r.valid_until.isoformat()} (scheme {r.scheme_version})")
    return "; ".join(parts)


def _grade_word(r: Rating | None) -> str:
    if r is not None and r.status == "insufficient_evidence":
        return "Not enough seen to rate"
    if r is None or r.grade is None:
        return "Not rated"
    word = GRADE_MEANING[r.grade][0]
    return f"At best {word.lower()}" if r.at_best else word


def _rows(r: Rating | None, rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """Each label row as (title, CSS class, words): passed, failed or not tested (why)."""
    why = {c.id: c.reason for c in r.categories} if r else {}
    out = []
    for row in rows:
        text = STATUS_TEXT[row.status]
        if row.status is CategoryStatus.UNKNOWN and why.get(row.id):
            text += f" ({_short(why[row.id], 160)})"
        css = {CategoryStatus.PASS: "passed", CategoryStatus.FAIL: "failed"}.get(
            row.status, "unknown"
        )
        out.append((row.title, css, text))
    return out


def _action(device: Device, texts: Mapping[str, CheckText]) -> str:
    ranked = sorted(device.findings, key=lambda f: SEVERITY_ORDER.index(f.severity.value))
    for f in ranked:
        fix = texts.get(f.check, CheckText()).remediation or f.remediation
        if fix:
            return _short(fix, 300)
    return _short(main_reason(device), 300) or "See the details below."


def _device_view(
    i: int,
    device: Device,
    result: ScanResult,
    digest: str,
    report_url: str | None,
    texts: Mapping[str, CheckText],
) -> DeviceView:
    vendor, model = device_names(device)
    r = device.rating
    grade = r.grade if r else None
    data = label_data(device, result, digest=digest, report_url=report_url)
    svg = device_label(device, result, digest=digest, report_url=report_url)
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    if data.support_state == "unknown":
        support = "unknown"
        support_long = "unknown: the maker has not declared how long it gets security updates"
    elif data.support_state == "ended":
        support = support_long = f"ended {data.support_until} (declared)"
    else:
        support = support_long = f"until {data.support_until} (declared)"
    if data.forced:
        support_long += "; the declaration was forced onto this device although it did not match"
    cov = r.coverage if r else None
    findings = sorted(
        device.findings, key=lambda f: (SEVERITY_ORDER.index(f.severity.value), f.check)
    )
    name = display_name(device)
    return DeviceView(
        anchor=f"device-{i + 1}",
        name=name,
        vendor=vendor,
        model=model,
        firmware=data.firmware,
        category=clean(device.category) or "unknown",
        address=clean(device.address),
        mac=clean(device.mac) or "unknown",
        transport="Bluetooth" if device.transport == "bluetooth" else "Network",
        grade=grade,
        grade_word=_grade_word(r),
        grade_advice=GRADE_MEANING[grade][1] if grade else "",
        score=f"{r.score:g}" if r and r.score is not None else "",
        top_reason=_short(main_reason(device), 300),
        plain=_plain(device, name),
        action=_action(device, texts),
        support=support,
        support_long=support_long,
        support_alert=data.support_state != "until",
        declaration=_short(r.declaration, 200) if r and r.declaration else "",
        coverage_pct=round(cov.fraction * 100) if cov else None,
        coverage_text=_coverage_text(r, data.budget),
        caps=[(c.grade, _short(c.reason, 300)) for c in (r.caps if r else [])],
        categories=_rows(r, data.rows),
        findings=[_finding_view(f, texts) for f in findings],
        services=[
            {
                "port": f"{s.port}/{s.transport.value}",
                "protocol": clean(s.protocol) or "?",
                "tls": "yes" if s.tls else ("no" if s.tls is False else "?"),
                "banner": _short(s.banner or "", 300),
            }
            for s in device.services
        ],
        not_tested=[
            (_short(o.probe, 80), OUTCOME_TEXT[o.status], _short(o.reason or "", 300))
            for o in device.outcomes
            if o.status != OutcomeStatus.RAN
        ],
        label_uri=uri,
        label_alt=clean(f"Security label of {name}"),
    )


def _summary(devices: list[DeviceView]) -> tuple[str, list[str]]:
    n = len(devices)
    if n == 0:
        return "No devices were found to rate.", [
            "Check that the scanner was on the right network and that devices were switched on."
        ]
    urgent = [d for d in devices if d.grade in ("E", "F", "G")]
    middle = [d for d in devices if d.grade in ("C", "D")]
    fine = [d for d in devices if d.grade in ("A", "B")]
    unrated = [d for d in devices if d.grade is None]
    noun = "device" if n == 1 else "devices"
    headline = f"We checked {n} connected {noun} on your network."
    parts = []
    if urgent:
        parts.append(f"{len(urgent)} {'needs' if len(urgent) == 1 else 'need'} attention now")
    if middle:
        parts.append(f"{len(middle)} could be safer")
    if fine:
        parts.append(f"{len(fine)} {'is' if len(fine) == 1 else 'are'} in good shape")
    if unrated:
        parts.append(f"{len(unrated)} could not be rated")
    sentences = []
    if parts:
        text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        sentences.append(text[0].upper() + text[1:] + ".")
    unknown_support = [d for d in devices if d.support_alert]
    if unknown_support:
        k = len(unknown_support)
        sentences.append(
            f"{k} {'device has' if k == 1 else 'devices have'} no known security-update period "
            "or it has ended: ask the maker how long updates will come, and prefer devices "
            "that promise years of updates."
        )
    sentences.append(
        "Each grade is an automated check of what can be seen from the network, against a "
        "published scheme. It is not a certification."
    )
    return headline, sentences


def view(
    result: ScanResult,
    *,
    digest: str | None = None,
    report_url: str | None = None,
    texts: Mapping[str, CheckText] | None = None,
) -> ReportView:
    """The report's view model. Each device's findings are explained in the words of the scheme
    version that rated it (:func:`device_texts`); ``texts`` only adds words for checks no
    shipped scheme defines."""
    digest = digest or result_digest(result)

    def severity(d: Device) -> int:
        g = d.rating.grade if d.rating else None
        return -GRADES.index(g) if g else 1

    ordered = sorted(result.devices, key=lambda d: (severity(d), d.address))
    devices = [
        _device_view(i, d, result, digest, report_url, device_texts(d, texts))
        for i, d in enumerate(ordered)
    ]
    headline, sentences = _summary(devices)
    # What the scan covered, so no grade reads as more than it is (scheme 2026.3).
    sentences.append(f"Scan scope: {clean(scan_scope_line(result))}.")
    if result.vulndb_date is not None:
        sentences.append(f"Vulnerability data of {result.vulndb_date.isoformat()}.")
    actions = [
        (d.anchor, d.name, d.grade, d.action)
        for d in devices
        if d.grade in ("D", "E", "F", "G")
        or any(status == "failed" for _, status, _words in d.categories)
    ]
    counts: dict[str, int] = {g: 0 for g in GRADES}
    for d in devices:
        if d.grade:
            counts[d.grade] += 1
    schemes = sorted({scheme_text(d.rating) for d in result.devices if d.rating})
    when = tested_on(result).isoformat()
    return ReportView(
        title=f"Security report of {len(devices)} connected device"
        + ("" if len(devices) == 1 else "s"),
        date=when,
        scan_id=clean(result.scan_id),
        targets=", ".join(clean(t.spec) for t in result.targets) or "not recorded",
        devices=devices,
        headline=headline,
        sentences=sentences,
        actions=actions,
        distribution=list(counts.items()),
        unrated=sum(1 for d in devices if d.grade is None),
        schemes=", ".join(s for s in schemes if s) or "no rating scheme applied yet",
        scope=scope_summary(result.scope),
        digest=digest,
        tool=f"iotrate {__version__}",
        started=result.started_at.isoformat(timespec="seconds"),
        finished=result.finished_at.isoformat(timespec="seconds") if result.finished_at else "",
        errors=[_short(e, 300) for e in result.errors[:50]],
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("iotrate.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(colours=GRADE_COLOURS, text_on=TEXT_ON, grades=GRADES)
    return env


def render(
    result: ScanResult,
    *,
    digest: str | None = None,
    report_url: str | None = None,
    texts: Mapping[str, CheckText] | None = None,
) -> str:
    v = view(result, digest=digest, report_url=report_url, texts=texts)
    return _environment().get_template("report.html.j2").render(r=v)
