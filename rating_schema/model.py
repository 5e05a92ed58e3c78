"""The rating scheme as typed, frozen values: what a loaded ``iotrate-<version>.yaml`` says.

A :class:`Scheme` is also the check catalogue: a probe reports only a check id and its
evidence, and :meth:`Scheme.finding` stamps the title, severity, remediation and standard
clauses the scheme keeps for that id, so a check is described in one place (the YAML) and a
finding can never disagree with the rating about how bad it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from iotrate.models import Confidence, Device, Evidence, Finding, Grade, Severity, Transport


class UnknownCheck(KeyError):
    """A probe reported a check id the scheme does not define: a programming error (a test
    keeps every probe's declared checks inside the current scheme)."""


@dataclass(frozen=True)
class Band:
    grade: Grade
    min_score: float


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    question: str | None
    max_penalty: float


@dataclass(frozen=True)
class ConfidenceWeights:
    confirmed: float
    probable: float
    possible: float

    def factor(self, confidence: Confidence) -> float:
        return cast(float, getattr(self, confidence.value))


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    explanation: str
    remediation: str
    severity: Severity
    weight: float
    category: str
    source: Literal["scan", "declaration"]
    expected: bool
    marks_unknown: bool
    confidence: ConfidenceWeights
    evidence_data: Mapping[str, str]
    standards: tuple[str, ...]
    transports: tuple[str, ...] = ("ip",)

    def applies_to(self, device: Device) -> bool:
        """Declaration checks apply to every device; a scan check to its transports only."""
        return self.source == "declaration" or device.transport in self.transports

    def finding(
        self,
        evidence: list[Evidence],
        *,
        confidence: Confidence = Confidence.CONFIRMED,
        probe: str | None = None,
        port: int | None = None,
    ) -> Finding:
        """A finding of this check carrying the scheme's texts and standard clauses."""
        return Finding(
            check=self.id,
            severity=self.severity,
            title=self.title,
            evidence=evidence,
            remediation=self.remediation,
            standards=list(self.standards),
            confidence=confidence,
            probe=probe,
            port=port,
        )


@dataclass(frozen=True)
class FindingCondition:
    checks: tuple[str, ...]
    data: tuple[tuple[str, Any], ...]
    min_confidence: Confidence


@dataclass(frozen=True)
class UnknownCondition:
    checks: tuple[str, ...]


@dataclass(frozen=True)
class CoverageCondition:
    below: float


@dataclass(frozen=True)
class UnratedCondition:
    min_severity: Severity


EvidenceFact = Literal[
    "version-unknown", "partial-scope", "vulndb-stale", "support-short", "declaration-forced"
]


@dataclass(frozen=True)
class EvidenceCondition:
    """A fact about what the rating is based on rather than about a finding (2026.3 on):
    the firmware version is unknown, the scan was not the full lab scope, the vulnerability
    data is stale, the declared support ends soon, the declaration was forced onto the device.
    None depends on findings, so the grade stays monotone in them."""

    fact: EvidenceFact


@dataclass(frozen=True)
class AnyCondition:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AllCondition:
    parts: tuple[Condition, ...]


Condition = (
    FindingCondition
    | UnknownCondition
    | CoverageCondition
    | UnratedCondition
    | EvidenceCondition
    | AnyCondition
    | AllCondition
)


def finding_checks(cond: Condition) -> Iterator[str]:
    """The check ids whose findings can make ``cond`` hold (not those it only asks about as
    unknown)."""
    if isinstance(cond, FindingCondition):
        yield from cond.checks
    elif isinstance(cond, AnyCondition | AllCondition):
        for part in cond.parts:
            yield from finding_checks(part)


@dataclass(frozen=True)
class Cap:
    id: str
    grade: Grade
    when: Condition
    reason: str


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    status: Literal["tested", "partly", "declared"]
    checks: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class Framework:
    id: str
    title: str
    version: str
    cite_as: str
    source: str
    requirements: tuple[Requirement, ...]

    def clause(self, requirement: Requirement) -> str:
        return f"{self.cite_as} {requirement.id}"


@dataclass(frozen=True)
class Provision:
    id: str
    status: Literal["tested", "partly", "declared"]
    checks: tuple[str, ...]


@dataclass(frozen=True)
class DeclarationChecks:
    support_period_missing: str
    support_period_expired: str
    disclosure_policy_missing: str
    security_contact_missing: str
    update_mechanism_missing: str


@dataclass(frozen=True)
class EvidenceRules:
    """Scheme 2026.3's evidence parameters (METHODOLOGY.md, "Evidence"); ``None`` on a scheme
    without them, which the rater then applies as 2026.2 did."""

    vulndb_max_age_days: int
    support_min_left_days: int
    declaration_max_age_days: int
    valid_for_months: int


@dataclass(frozen=True)
class Scheme:
    id: str
    version: str
    title: str
    path: Path
    score_start: float
    score_floor: float
    bands: tuple[Band, ...]
    categories: tuple[Category, ...]
    checks: tuple[Check, ...]
    caps: tuple[Cap, ...]
    frameworks: tuple[Framework, ...]
    provisions: tuple[Provision, ...]
    declaration: DeclarationChecks
    evidence: EvidenceRules | None = None
    _by_id: Mapping[str, Check] = field(repr=False, compare=False, default_factory=dict)

    def check(self, check_id: str) -> Check | None:
        return self._by_id.get(check_id)

    def finding(
        self,
        check_id: str,
        summary: str,
        port: int | None,
        data: Mapping[str, Any],
        *,
        probe: str | None = None,
        transport: Transport | None = Transport.TCP,
        confidence: Confidence = Confidence.CONFIRMED,
    ) -> Finding:
        """A finding of ``check_id`` with one piece of evidence; everything the scheme says
        about the check (title, severity, remediation, standards) comes from the scheme."""
        check = self._by_id.get(check_id)
        if check is None:
            raise UnknownCheck(f"check {check_id!r} is not in scheme {self.cite}")
        return check.finding(
            [
                Evidence(
                    summary=summary,
                    port=port,
                    transport=transport if port is not None else None,
                    data=dict(data),
                )
            ],
            confidence=confidence,
            probe=probe,
            port=port,
        )

    @property
    def cite(self) -> str:
        return f"{self.id} {self.version}"
