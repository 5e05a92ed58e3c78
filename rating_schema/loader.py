"""Reading a scheme file into a :class:`~iotrate.rating_schema.model.Scheme`, refusing anything
the rating engine could misread.

The standard clauses of each check, and the ETSI EN 303 645 provisions table, are derived from
the scheme's framework files (``frameworks/*.yaml``): that is where a mapping is written, once.
The published schemes 2026.1 and 2026.2 also carry those lists inline (``standards`` per check,
``provisions``); published files are never edited, so the loader keeps reading them, but only
to verify them against what the framework files say. A later scheme version leaves them out.

A scheme of version V lists its framework files as ``frameworks/<file>``; each resolves to
``frameworks/V/<file>`` when that file exists, else to ``frameworks/<file>``. So the unversioned
files always map the newest scheme, and starting a new version means copying the current
mapping into ``frameworks/<current version>/`` (frozen) without touching the published YAML
that lists it (frameworks/README.md has the procedure).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from iotrate.declarations import load_yaml, raise_schema_errors, schema_errors
from iotrate.errors import UsageError
from iotrate.models import GRADES, Confidence, Grade, Severity

from . import SCHEME_DIR
from .model import (
    AllCondition,
    AnyCondition,
    Band,
    Cap,
    Category,
    Check,
    Condition,
    ConfidenceWeights,
    CoverageCondition,
    DeclarationChecks,
    EvidenceCondition,
    EvidenceRules,
    FindingCondition,
    Framework,
    Provision,
    Requirement,
    Scheme,
    UnknownCondition,
    UnratedCondition,
)

DEFAULT_SCHEME = SCHEME_DIR / "iotrate-2026.3.yaml"
"""The current scheme; earlier versions stay loadable by path (``load_scheme(SCHEME_DIR /
"iotrate-2026.2.yaml")``, ``iotrate rate --scheme FILE``) or by version
(:func:`scheme_for_version`), so an old rating can be reproduced and reported in its own
words."""
SCHEME_SCHEMA = SCHEME_DIR / "scheme.schema.json"
FRAMEWORK_SCHEMA = SCHEME_DIR / "framework.schema.json"
PROVISIONS_FRAMEWORK = "etsi-en-303-645"
"""The framework whose requirements are the scheme's ``provisions`` table."""


class SchemeError(UsageError):
    """The rating scheme (or one of its framework files) is malformed or inconsistent."""


def _condition(raw: Mapping[str, Any], known: set[str], where: str) -> Condition:
    def ids(value: Any) -> tuple[str, ...]:
        out = (value,) if isinstance(value, str) else tuple(value)
        for cid in out:
            if cid not in known:
                raise SchemeError(f"{where}: unknown check id {cid!r}")
        return out

    if "finding" in raw:
        return FindingCondition(
            checks=ids(raw["finding"]),
            data=tuple(sorted(raw.get("data", {}).items())),
            min_confidence=Confidence(raw.get("min_confidence", "probable")),
        )
    if "unknown" in raw:
        return UnknownCondition(ids(raw["unknown"]))
    if "coverage_below" in raw:
        return CoverageCondition(float(raw["coverage_below"]))
    if "evidence" in raw:
        return EvidenceCondition(raw["evidence"])
    if "unrated_finding" in raw:
        return UnratedCondition(Severity(raw["unrated_finding"].get("min_severity", "info")))
    key = "any" if "any" in raw else "all"
    parts = tuple(_condition(p, known, where) for p in raw[key])
    return AnyCondition(parts) if key == "any" else AllCondition(parts)


def _weights(raw: Mapping[str, Any]) -> ConfidenceWeights:
    return ConfidenceWeights(
        float(raw["confirmed"]), float(raw["probable"]), float(raw["possible"])
    )


def _load_framework(path: Path) -> Framework:
    doc = load_yaml(path, "framework", SchemeError)
    raise_schema_errors(schema_errors(FRAMEWORK_SCHEMA, doc), "framework", str(path), SchemeError)
    return Framework(
        id=doc["framework"],
        title=doc["title"],
        version=str(doc["version"]),
        cite_as=doc["cite_as"],
        source=doc["source"],
        requirements=tuple(
            Requirement(r["id"], r["title"], r["status"], tuple(r["checks"]), r.get("note"))
            for r in doc["requirements"]
        ),
    )


def framework_path(scheme_path: Path, version: str, entry: str) -> Path:
    """Where a scheme's ``frameworks`` entry is read from: the copy frozen for this version
    (``frameworks/<version>/<file>``) if there is one, else the entry as written.

    Freezing a mapping is then a copy, never an edit of the published scheme that lists it; an
    entry that already names a versioned folder (2026.1's) has no such copy and stays as is.
    """
    written = scheme_path.parent / entry
    frozen = written.parent / version / written.name
    return frozen if frozen.is_file() else written


def _frameworks(doc: Any, path: Path, known: set[str]) -> tuple[Framework, ...]:
    version = str(doc["version"])
    frameworks = tuple(_load_framework(framework_path(path, version, f)) for f in doc["frameworks"])
    for fw in frameworks:
        for req in fw.requirements:
            for cid in req.checks:
                if cid not in known:
                    raise SchemeError(f"framework {fw.id} {req.id}: unknown check id {cid!r}")
    return frameworks


def derived_standards(frameworks: Sequence[Framework]) -> dict[str, tuple[str, ...]]:
    """Per check id, the clauses that name it, in framework then requirement order."""
    out: dict[str, list[str]] = {}
    for fw in frameworks:
        for req in fw.requirements:
            for cid in req.checks:
                out.setdefault(cid, []).append(fw.clause(req))
    return {cid: tuple(clauses) for cid, clauses in out.items()}


def _categories(doc: Any) -> tuple[Category, ...]:
    return tuple(
        Category(c["id"], c["title"], c.get("question"), float(c["max_penalty"]))
        for c in doc["categories"]
    )


def _checks(
    doc: Any, where: str, categories: Sequence[Category], frameworks: Sequence[Framework]
) -> tuple[Check, ...]:
    """The checks, each with its clauses from the framework files; an inline ``standards``
    list (published schemes) must name the same clauses."""
    default_weights = _weights(doc["confidence_weights"])
    category_ids = {c.id for c in categories}
    clauses = {fw.clause(r) for fw in frameworks for r in fw.requirements}
    standards = derived_standards(frameworks)
    checks: list[Check] = []
    for c in doc["checks"]:
        if c["category"] not in category_ids:
            raise SchemeError(f"{where}: check {c['id']}: unknown category {c['category']!r}")
        derived = standards.get(c["id"], ())
        if "standards" in c:
            stray = [s for s in c["standards"] if s not in clauses]
            if stray:
                raise SchemeError(
                    f"{where}: check {c['id']}: standards not in any framework file: {stray}"
                )
            if set(c["standards"]) != set(derived):
                raise SchemeError(
                    f"{where}: check {c['id']}: inline standards {c['standards']} differ from "
                    f"the framework files' {list(derived)}"
                )
        checks.append(
            Check(
                id=c["id"],
                title=c["title"],
                explanation=c["explanation"],
                remediation=c["remediation"],
                severity=Severity(c["severity"]),
                weight=float(c["weight"]),
                category=c["category"],
                source=c.get("source", "scan"),
                expected=bool(c.get("expected", True)),
                marks_unknown=bool(c.get("marks_unknown", False)),
                confidence=_weights(c["confidence"]) if "confidence" in c else default_weights,
                evidence_data=dict(c.get("evidence_data", {})),
                standards=derived,
                transports=tuple(c.get("transports", ("ip",))),
            )
        )
    ids = [c.id for c in checks]
    if len(set(ids)) != len(ids):
        dupes = sorted({cid for cid in ids if ids.count(cid) > 1})
        raise SchemeError(f"{where}: duplicate check ids: {', '.join(dupes)}")
    return tuple(checks)


def _bands(doc: Any, where: str) -> tuple[Band, ...]:
    bands = tuple(Band(cast(Grade, b["grade"]), float(b["min_score"])) for b in doc["bands"])
    if tuple(b.grade for b in bands) != GRADES:
        raise SchemeError(f"{where}: bands must list A to G in order")
    if any(a.min_score <= b.min_score for a, b in itertools.pairwise(bands)):
        raise SchemeError(f"{where}: band thresholds must fall from A to G")
    if bands[-1].min_score > float(doc["score"]["floor"]):
        raise SchemeError(f"{where}: the G band must reach down to the score floor")
    return bands


def _caps(doc: Any, where: str, known: set[str]) -> tuple[Cap, ...]:
    caps = tuple(
        Cap(
            c["id"],
            cast(Grade, c["grade"]),
            _condition(c["when"], known, f"{where}: cap {c['id']}"),
            c["reason"],
        )
        for c in doc["caps"]
    )
    if len({c.id for c in caps}) != len(caps):
        raise SchemeError(f"{where}: duplicate cap ids")
    return caps


def _declaration(doc: Any, where: str, by_id: Mapping[str, Check]) -> DeclarationChecks:
    decl = DeclarationChecks(**doc["declaration"])
    for key, cid in vars(decl).items():
        check = by_id.get(cid)
        if check is None or check.source != "declaration":
            raise SchemeError(f"{where}: declaration.{key}: {cid!r} is not a declaration check")
    return decl


def _valid_provisions(
    provisions: Sequence[Provision], where: str, known: set[str]
) -> tuple[Provision, ...]:
    for p in provisions:
        for cid in p.checks:
            if cid not in known:
                raise SchemeError(f"{where}: provision {p.id}: unknown check id {cid!r}")
        if p.status != "declared" and not p.checks:
            raise SchemeError(f"{where}: provision {p.id} is {p.status} but names no check")
    return tuple(provisions)


def _provisions(
    doc: Any, where: str, known: set[str], frameworks: Sequence[Framework]
) -> tuple[Provision, ...]:
    """ETSI EN 303 645's provisions, from its framework file; a published scheme's inline
    ``provisions`` table must be the same list."""
    etsi = next((fw for fw in frameworks if fw.id == PROVISIONS_FRAMEWORK), None)
    derived = _valid_provisions(
        [Provision(r.id, r.status, r.checks) for r in etsi.requirements] if etsi else [],
        f"framework {PROVISIONS_FRAMEWORK}",
        known,
    )
    if "provisions" not in doc:
        return derived
    inline = _valid_provisions(
        [Provision(p["id"], p["status"], tuple(p["checks"])) for p in doc["provisions"]],
        where,
        known,
    )
    if inline != derived:
        diff = next(
            (a.id for a, b in itertools.zip_longest(inline, derived) if a != b and a), "(end)"
        )
        raise SchemeError(
            f"{where}: provision {diff}: the inline provisions table differs from "
            f"frameworks/{PROVISIONS_FRAMEWORK}.yaml"
        )
    return inline


def parse_scheme(doc: Any, path: Path) -> Scheme:
    """Build a scheme from plain data.

    The JSON Schema checks the shape; this checks what a schema cannot: that every referenced
    check exists, bands run A to G with falling thresholds, each check's clauses come from a
    framework file the scheme ships, and inline copies of the mapping agree with those files.
    """
    raise_schema_errors(schema_errors(SCHEME_SCHEMA, doc), "rating scheme", str(path), SchemeError)
    where = f"rating scheme {path}"
    known = {c["id"] for c in doc["checks"]}
    categories = _categories(doc)
    frameworks = _frameworks(doc, path, known)
    checks = _checks(doc, where, categories, frameworks)
    by_id = {c.id: c for c in checks}
    bands = _bands(doc, where)
    caps = _caps(doc, where, known)
    decl = _declaration(doc, where, by_id)
    return Scheme(
        id=doc["scheme"],
        version=doc["version"],
        title=doc["title"],
        path=path,
        score_start=float(doc["score"]["start"]),
        score_floor=float(doc["score"]["floor"]),
        bands=bands,
        categories=categories,
        checks=checks,
        caps=caps,
        frameworks=frameworks,
        provisions=_provisions(doc, where, known, frameworks),
        declaration=decl,
        evidence=EvidenceRules(**doc["evidence"]) if "evidence" in doc else None,
        _by_id=by_id,
    )


@lru_cache(maxsize=8)
def _load_scheme(path: Path) -> Scheme:
    return parse_scheme(load_yaml(path, "rating scheme", SchemeError), path)


def load_scheme(path: Path | str | None = None) -> Scheme:
    """The scheme at ``path`` (default: the current one shipped with iotrate), validated once
    per process: rating a large scan must not re-read and re-validate it per device."""
    return _load_scheme(Path(path).resolve() if path is not None else DEFAULT_SCHEME)


def scheme_for_version(version: str | None, scheme_id: str | None = "iotrate") -> Scheme:
    """The shipped scheme of ``version`` (what rated a device), or the current scheme when the
    device is unrated or the version is not shipped with this iotrate."""
    current = load_scheme()
    if not version or (scheme_id and scheme_id != current.id):
        return current
    path = SCHEME_DIR / f"{current.id}-{version}.yaml"
    if version == current.version or not path.is_file():
        return current
    return load_scheme(path)
