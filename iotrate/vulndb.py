"""The embedded-component vulnerability dataset: which software a banner names, which CVEs its
version has, and how sure that claim can be.

Version matching is where scanners lose their users' trust: a distribution that backports a fix
keeps the old upstream number, a CVE record may name a version that never existed, a flaw may
sit in a client program the device never runs. So the dataset keeps iotrate's judgement of each
record (``annotations.yaml``: scope, disputed, ambiguous bound, evidence that refutes it) apart
from the generated CVE table, and :meth:`VulnDB.assess` turns those into a confidence instead
of a yes/no: a banner with a patch level is "version uncertain", never a CVE claim; a flaw in a
client tool is "possible"; only a plain upstream version inside an unambiguous range of a
network-reachable flaw is "probable". Nothing is ever "confirmed" from a version alone.

The data lives in ``iotrate/data/vulns/`` (``IOTRATE_VULN_DIR`` overrides it) and is refreshed
offline by :func:`update_dataset` (``iotrate db update``) from CVE JSON 5 records, NVD API 2.0
answers, the CISA KEV catalog and tables in the ``embedded_components.csv`` layout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.models import Confidence

ENV_DIR = "IOTRATE_VULN_DIR"
CVE_FIELDS = (
    "cve_id",
    "product",
    "version_start_including",
    "version_end_excluding",
    "version_end_including",
    "cvss",
    "cvss_version",
    "cwe",
    "summary",
    "affected_text",
    "source",
)
KEV_FIELDS = ("cve_id", "vendor_project", "product", "date_added", "ransomware")
SCOPES = ("remote", "client", "local", "config")

# Pre-release words sort before the release they lead to; any other letters (OpenSSL's 1.0.1g,
# OpenSSH's 9.3p2) sort after it.
_PRE = {"dev": 0, "alpha": 1, "beta": 2, "pre": 3, "rc": 4}
_NO_START = {"", "0", "*", "-", "n/a", "unspecified", "unknown"}


class VulnDataError(RuntimeFailure):
    """The dataset files are missing or malformed."""


# --------------------------------------------------------------------------- versions


def version_key(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int, str], ...]]:
    """A sort key that orders dotted, YEAR.NN, letter-suffixed and rc versions correctly.

    The leading dotted numbers are the release (trailing zeros dropped, so 1.35 equals 1.35.0);
    what follows sorts before the release when it is a pre-release word (1.0.0rc1 < 1.0.0) and
    after it otherwise (OpenSSL's 1.0.1g > 1.0.1, OpenSSH's 9.3p2 > 9.3).
    """
    text = version.strip().lower()
    m = re.match(r"\d+(?:\.\d+)*", text)
    release = [int(x) for x in m.group(0).split(".")] if m else []
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    rest = re.findall(r"\d+|[a-z]+", text[m.end() if m else 0 :])
    if not rest:
        return tuple(release), ((1, 0, ""),)
    first, tail = rest[0], rest[1:]
    if first.isdigit():
        head = (2, int(first), "")
    elif first in _PRE:
        head = (0, _PRE[first], "")
    else:
        head = (2, 0, first)
    items = [head] + [(1, int(t), "") if t.isdigit() else (0, 0, t) for t in tail]
    return tuple(release), tuple(items)


def compare_versions(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class EolLine:
    branch: str  # a version prefix such as "1.0.2", or "all"
    date: date
    source: str

    def covers(self, version: str) -> bool:
        if self.branch == "all":
            return True
        return (
            version == self.branch
            or version.startswith(self.branch + ".")
            or bool(re.match(re.escape(self.branch) + r"[a-z]", version))
        )


@dataclass(frozen=True)
class Component:
    id: str
    name: str
    cve_names: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    patch_always_uncertain: bool = False
    version_shape: re.Pattern[str] | None = None
    latest: str | None = None
    latest_source: str | None = None
    eol: tuple[EolLine, ...] = ()
    tracked: bool = True


@dataclass(frozen=True)
class CveRange:
    """One affected version range of one CVE for one component (a CVE may have several)."""

    cve_id: str
    product: str
    start_including: str | None
    end_excluding: str | None
    end_including: str | None
    cvss: float | None
    cvss_version: str | None
    cwe: str | None
    summary: str
    affected_text: str
    source: str

    @property
    def bounded(self) -> bool:
        return bool(self.start_including or self.end_excluding or self.end_including)

    def covers(self, version: str) -> bool:
        """True when ``version`` is inside the range; a range with no bound covers nothing,
        because "affected, versions unknown" cannot support a claim about one device."""
        if not self.bounded:
            return False
        if self.start_including and compare_versions(version, self.start_including) < 0:
            return False
        if self.end_excluding and compare_versions(version, self.end_excluding) >= 0:
            return False
        return not (self.end_including and compare_versions(version, self.end_including) > 0)

    def bounds(self) -> list[str]:
        return [b for b in (self.start_including, self.end_excluding, self.end_including) if b]

    def describe(self) -> str:
        parts = []
        if self.start_including:
            parts.append(f">= {self.start_including}")
        if self.end_excluding:
            parts.append(f"< {self.end_excluding}")
        if self.end_including:
            parts.append(f"<= {self.end_including}")
        return ", ".join(parts) or "no version bound"


@dataclass(frozen=True)
class Annotation:
    scope: str = "remote"
    disputed: bool = False
    ambiguous: bool = False
    refuted_by: tuple[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class KevEntry:
    cve_id: str
    vendor_project: str
    product: str
    date_added: str
    ransomware: str


@dataclass(frozen=True)
class Sighting:
    """A piece of software a banner or description named, with where it was seen."""

    product: str | None  # component id; None for software iotrate does not track
    name: str
    version: str | None
    patch: str | None
    raw: str
    source: str
    port: int | None = None

    @property
    def label(self) -> str:
        text = f"{self.name} {self.version}" if self.version else self.name
        return f"{text} ({self.patch.strip()})" if self.patch else text


@dataclass(frozen=True)
class CveMatch:
    cve: CveRange
    annotation: Annotation
    kev: KevEntry | None
    confidence: Confidence
    why: str  # what made the confidence what it is
    refuted: str | None = None  # set when measured evidence rules the flaw out


@dataclass(frozen=True)
class Assessment:
    """Everything the dataset can say about one sighting."""

    sighting: Sighting
    component: Component | None
    uncertain: str | None = None  # why the version cannot be matched as upstream
    matches: tuple[CveMatch, ...] = ()  # would-be matches when ``uncertain`` is set
    outdated_latest: str | None = None
    eol: EolLine | None = None

    @property
    def live(self) -> tuple[CveMatch, ...]:
        """Matches not refuted by a measurement."""
        return tuple(m for m in self.matches if m.refuted is None)


@dataclass
class VulnDB:
    components: dict[str, Component]
    cves: dict[str, list[CveRange]]  # by product
    annotations: dict[str, Annotation]
    kev: dict[str, KevEntry]
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- recognising software in text

    def find(self, text: str, source: str, port: int | None = None) -> list[Sighting]:
        """Every tracked component a piece of text names, plus generic ``name/version`` tokens
        from server banners (so that a disclosed but untracked version still counts as known)."""
        found: list[Sighting] = []
        spans: list[tuple[int, int]] = []
        for comp in self.components.values():
            for pattern in comp.patterns:
                for m in pattern.finditer(text):
                    groups = m.groupdict()
                    found.append(
                        Sighting(
                            product=comp.id,
                            name=comp.name,
                            version=groups.get("version"),
                            patch=groups.get("patch") or None,
                            raw=m.group(0).strip(),
                            source=source,
                            port=port,
                        )
                    )
                    spans.append(m.span())
        for m in _GENERIC.finditer(text):
            if m.group("name").lower() in _NOT_SOFTWARE:
                continue
            if any(a < m.end() and m.start() < b for a, b in spans):
                continue
            found.append(
                Sighting(
                    product=None,
                    name=m.group("name"),
                    version=m.group("version"),
                    patch=None,
                    raw=m.group(0),
                    source=source,
                    port=port,
                )
            )
        return found

    # ---- judging one sighting

    def assess(
        self,
        sighting: Sighting,
        today: date,
        measured: Mapping[str, Any] | None = None,
    ) -> Assessment:
        """Match one sighting. ``measured`` holds evidence data from probes on the same device
        or port (e.g. ``strict_kex``, ``heartbleed``) that can rule a CVE out."""
        comp = self.components.get(sighting.product or "")
        if comp is None or not comp.tracked or not sighting.version:
            return Assessment(sighting, comp)
        version = sighting.version
        uncertain = None
        if sighting.patch and (comp.patch_always_uncertain or _DISTRO.search(sighting.patch)):
            uncertain = (
                f"the banner carries a patch level ({sighting.patch.strip()}); the vendor may "
                f"have backported fixes without changing {version}"
            )
        elif sighting.patch:
            uncertain = f"the version carries a suffix ({sighting.patch.strip()})"
        measured = measured or {}
        matches = []
        for rng in self.cves.get(comp.id, []):
            if not rng.covers(version):
                continue
            ann = self.annotations.get(rng.cve_id, Annotation())
            confidence, why = Confidence.PROBABLE, "upstream version inside the affected range"
            # A zero-padded component ("2.07") or a bound of the wrong shape is a typo in the
            # record more often than a real release; comparing it would be a guess.
            shape_ok = all(
                (comp.version_shape is None or comp.version_shape.match(b))
                and not re.search(r"(?:^|\.)0\d", b)
                for b in rng.bounds()
            )
            if ann.disputed:
                confidence, why = Confidence.POSSIBLE, "the record is disputed"
            elif ann.ambiguous or not shape_ok:
                confidence, why = Confidence.POSSIBLE, "the record's version bound is ambiguous"
            elif ann.scope != "remote":
                confidence, why = Confidence.POSSIBLE, f"{ann.scope} scope: {ann.note}"
            refuted = None
            if ann.refuted_by is not None:
                key, value = ann.refuted_by
                if key in measured and measured[key] == value:
                    refuted = f"measured {key}={json.dumps(value)}: {ann.note}"
            matches.append(CveMatch(rng, ann, self.kev.get(rng.cve_id), confidence, why, refuted))
        matches.sort(key=lambda m: m.cve.cve_id)
        # One CVE can have several branch rows; keep the first that covers the version.
        unique: dict[str, CveMatch] = {}
        for m in matches:
            unique.setdefault(m.cve.cve_id, m)
        outdated = None
        if comp.latest and compare_versions(version, comp.latest) < 0:
            outdated = comp.latest
        eol = next((e for e in comp.eol if e.covers(version) and e.date <= today), None)
        return Assessment(
            sighting,
            comp,
            uncertain=uncertain,
            matches=tuple(unique.values()),
            outdated_latest=outdated,
            eol=eol,
        )


_GENERIC = re.compile(r"\b(?P<name>[A-Za-z][\w.+-]{1,40})/(?P<version>\d+(?:\.\d+)+[\w.-]*)")
_NOT_SOFTWARE = frozenset(
    {"http", "https", "rtsp", "upnp", "dlnadoc", "sip", "dlna", "ssdp", "soap", "smp"}
)
# Markers distributions and vendors add when they patch without changing the upstream number.
_DISTRO = re.compile(
    r"debian|ubuntu|raspbian|deb\d+u\d+|\+deb|\bel\d|\.el\d|fips|fc\d+|suse|rhel|redhat|centos|"
    r"alpine|-r\d+|freebsd|netbsd|openbsd|openwrt|yocto|\d+ubuntu|~bpo|\+b\d",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- loading


def data_dir() -> Path:
    """Where the dataset is read from: ``$IOTRATE_VULN_DIR`` or the packaged copy."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    return packaged_dir()


def load(directory: Path | None = None) -> VulnDB:
    """Load and validate the dataset; cached per directory."""
    return _load(str(directory or data_dir()))


@cache
def _load(directory: str) -> VulnDB:
    base = Path(directory)
    try:
        comps_raw = yaml.safe_load((base / "components.yaml").read_text(encoding="utf-8"))
        ann_raw = yaml.safe_load((base / "annotations.yaml").read_text(encoding="utf-8"))
        cve_rows = _read_csv(base / "cves.csv", CVE_FIELDS)
        kev_rows = _read_csv(base / "kev.csv", KEV_FIELDS)
        meta_path = base / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise VulnDataError(f"vulnerability dataset in {base}: {exc}") from exc
    components = _parse_components(comps_raw, base)
    annotations = _parse_annotations(ann_raw, base)
    cves: dict[str, list[CveRange]] = {}
    for row in cve_rows:
        rng = _range_from_row(row)
        if rng.product not in components:
            raise VulnDataError(f"{base / 'cves.csv'}: {rng.cve_id}: unknown product {rng.product}")
        cves.setdefault(rng.product, []).append(rng)
    kev = {
        r["cve_id"]: KevEntry(
            r["cve_id"], r["vendor_project"], r["product"], r["date_added"], r["ransomware"]
        )
        for r in kev_rows
    }
    return VulnDB(components, cves, annotations, kev, meta)


def _read_csv(path: Path, fields: Sequence[str]) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or list(reader.fieldnames) != list(fields):
            raise VulnDataError(f"{path}: expected columns {', '.join(fields)}")
        return list(reader)


def _parse_components(raw: Any, base: Path) -> dict[str, Component]:
    if not isinstance(raw, dict) or not isinstance(raw.get("components"), list):
        raise VulnDataError(f"{base / 'components.yaml'}: no `components` list")
    out: dict[str, Component] = {}
    for item in raw["components"]:
        try:
            cid = str(item["id"])
            latest = item.get("latest") or {}
            eol = tuple(
                EolLine(str(e["branch"]), _as_date(e["date"]), str(e["source"]))
                for e in item.get("eol", [])
            )
            shape = item.get("version_shape")
            out[cid] = Component(
                id=cid,
                name=str(item["name"]),
                cve_names=tuple(str(n).lower() for n in item.get("cve_names", [])),
                patterns=tuple(re.compile(p, re.IGNORECASE) for p in item.get("patterns", [])),
                patch_always_uncertain=bool(item.get("patch_always_uncertain", False)),
                version_shape=re.compile(shape) if shape else None,
                latest=str(latest["version"]) if latest.get("version") else None,
                latest_source=str(latest.get("source")) if latest.get("source") else None,
                eol=eol,
                tracked=bool(item.get("tracked", True)),
            )
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise VulnDataError(f"{base / 'components.yaml'}: {item!r}: {exc}") from exc
    return out


def _parse_annotations(raw: Any, base: Path) -> dict[str, Annotation]:
    out: dict[str, Annotation] = {}
    items = (raw or {}).get("cves") or {}
    for cve_id, item in items.items():
        scope = str(item.get("scope", "remote"))
        if scope not in SCOPES:
            raise VulnDataError(f"{base / 'annotations.yaml'}: {cve_id}: bad scope {scope}")
        ref = item.get("refuted_by")
        out[str(cve_id)] = Annotation(
            scope=scope,
            disputed=bool(item.get("disputed", False)),
            ambiguous=bool(item.get("ambiguous", False)),
            refuted_by=(str(ref["key"]), ref["value"]) if ref else None,
            note=str(item.get("note", "")),
        )
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _range_from_row(row: Mapping[str, str]) -> CveRange:
    cvss = row.get("cvss") or ""
    return CveRange(
        cve_id=row["cve_id"],
        product=row["product"],
        start_including=row["version_start_including"] or None,
        end_excluding=row["version_end_excluding"] or None,
        end_including=row["version_end_including"] or None,
        cvss=float(cvss) if cvss else None,
        cvss_version=row.get("cvss_version") or None,
        cwe=row.get("cwe") or None,
        summary=row.get("summary", ""),
        affected_text=row.get("affected_text", ""),
        source=row.get("source", ""),
    )


# --------------------------------------------------------------------------- refresh


@dataclass
class UpdateReport:
    """What ``iotrate db update`` changed, for its one-screen summary."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "CVE-x: why"
    kev_entries: int | None = None
    kev_version: str | None = None
    files: int = 0


def packaged_dir() -> Path:
    return Path(str(resources.files("iotrate").joinpath("data/vulns")))


def seed_directory(directory: Path) -> bool:
    """Copy the shipped dataset into an empty ``directory`` so a refresh there starts from it;
    False when it already holds a dataset."""
    if (directory / "components.yaml").exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("components.yaml", "annotations.yaml", "cves.csv", "kev.csv", "meta.json"):
        src = packaged_dir() / name
        if src.exists():
            _write_text(directory / name, src.read_text(encoding="utf-8"))
    return True


def update_dataset(paths: Iterable[Path], directory: Path | None = None) -> UpdateReport:
    """Merge CVE records, NVD answers, a KEV catalog and component tables into the dataset.

    Each input is recognised by its content, not its name. A CVE record with structured
    affected versions replaces that CVE's rows; one whose versions are only in prose keeps rows
    already curated (refreshing CVSS and CWE) and is parsed from its description only for a CVE
    the dataset does not have yet; a rejected record removes the CVE. A KEV catalog replaces
    the KEV table whole. Nothing is fetched from the network.
    """
    target = directory or data_dir()
    db = load(target)
    rows: dict[str, list[dict[str, str]]] = {}
    for product_rows in db.cves.values():
        for rng in product_rows:
            rows.setdefault(rng.cve_id, []).append(_row_from_range(rng))
    kev_rows: list[dict[str, str]] | None = None
    report = UpdateReport()
    inputs: list[dict[str, str]] = []
    for path in _expand(paths):
        report.files += 1
        raw = path.read_bytes()
        inputs.append({"file": path.name, "sha256": hashlib.sha256(raw).hexdigest()})
        if path.suffix.lower() == ".csv":
            _merge_component_table(raw.decode("utf-8"), path, db, rows, report)
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not JSON or CSV: {exc}") from exc
        if isinstance(doc, dict) and "catalogVersion" in doc and "vulnerabilities" in doc:
            kev_rows = _kev_rows(doc, path)
            report.kev_entries = len(kev_rows)
            report.kev_version = str(doc.get("catalogVersion"))
        elif isinstance(doc, dict) and doc.get("dataType") == "CVE_RECORD":
            _merge_record(_from_cve5(doc), path, db, rows, report)
        elif isinstance(doc, dict) and isinstance(doc.get("vulnerabilities"), list):
            for item in doc["vulnerabilities"]:
                if isinstance(item, dict) and isinstance(item.get("cve"), dict):
                    _merge_record(_from_nvd(item["cve"]), path, db, rows, report)
        elif isinstance(doc, list) and all(
            isinstance(d, dict) and d.get("dataType") == "CVE_RECORD" for d in doc
        ):
            for d in doc:
                _merge_record(_from_cve5(d), path, db, rows, report)
        else:
            raise UsageError(
                f"{path}: not a CVE JSON 5 record, an NVD API 2.0 answer or a CISA KEV catalog"
            )
    flat = [r for cve in sorted(rows) for r in rows[cve]]
    flat.sort(key=lambda r: (r["cve_id"], r["product"], version_key(r["version_end_excluding"])))
    _write_csv(target / "cves.csv", CVE_FIELDS, flat)
    meta = dict(db.meta)
    if kev_rows is not None:
        _write_csv(target / "kev.csv", KEV_FIELDS, kev_rows)
        meta["kev_catalog_version"] = report.kev_version
    meta["updated"] = datetime.now(UTC).date().isoformat()
    meta["cve_count"] = len(rows)
    meta["last_inputs"] = inputs
    _write_text(target / "meta.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")
    _load.cache_clear()
    return report


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in (".json", ".csv")))
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out


@dataclass
class _Record:
    """The parts of a CVE record the dataset keeps, whichever format it came in."""

    cve_id: str
    rejected: bool
    description: str
    ranges: list[tuple[str, str | None, str | None, str | None]]  # product, start, <, <=
    cvss: float | None
    cvss_version: str | None
    cwe: str | None
    source: str


def _row_from_range(rng: CveRange) -> dict[str, str]:
    return {
        "cve_id": rng.cve_id,
        "product": rng.product,
        "version_start_including": rng.start_including or "",
        "version_end_excluding": rng.end_excluding or "",
        "version_end_including": rng.end_including or "",
        "cvss": "" if rng.cvss is None else f"{rng.cvss:g}",
        "cvss_version": rng.cvss_version or "",
        "cwe": rng.cwe or "",
        "summary": rng.summary,
        "affected_text": rng.affected_text,
        "source": rng.source,
    }


def _merge_record(
    rec: _Record,
    path: Path,
    db: VulnDB,
    rows: dict[str, list[dict[str, str]]],
    report: UpdateReport,
) -> None:
    if rec.rejected:
        if rows.pop(rec.cve_id, None) is not None:
            report.removed.append(rec.cve_id)
        return
    ranges = [r for r in (_map_range(db, r) for r in rec.ranges) if r is not None]
    existing = rows.get(rec.cve_id)
    if not ranges and existing:
        for row in existing:
            if rec.cvss is not None:
                row["cvss"], row["cvss_version"] = f"{rec.cvss:g}", rec.cvss_version or ""
            row["cwe"] = rec.cwe or row["cwe"]
        report.updated.append(rec.cve_id)
        return
    if not ranges:
        ranges = [(prod, a, lt, le) for prod, a, lt, le in _ranges_from_text(db, rec.description)]
    if not ranges:
        report.skipped.append(f"{rec.cve_id}: no tracked component with a version range")
        return
    summary = existing[0]["summary"] if existing else _first_sentence(rec.description)
    new_rows = [
        {
            "cve_id": rec.cve_id,
            "product": prod,
            "version_start_including": start or "",
            "version_end_excluding": lt or "",
            "version_end_including": le or "",
            "cvss": "" if rec.cvss is None else f"{rec.cvss:g}",
            "cvss_version": rec.cvss_version or "",
            "cwe": rec.cwe or "",
            "summary": summary,
            "affected_text": _affected_text(start, lt, le),
            "source": rec.source or path.name,
        }
        for prod, start, lt, le in sorted(set(ranges), key=lambda r: (r[0], str(r)))
    ]
    if existing is None:
        report.added.append(rec.cve_id)
    else:
        report.updated.append(rec.cve_id)
    rows[rec.cve_id] = new_rows


def _map_range(
    db: VulnDB, rng: tuple[str, str | None, str | None, str | None]
) -> tuple[str, str | None, str | None, str | None] | None:
    name, start, lt, le = rng
    product = _product_for(db, name)
    if product is None or not (start or lt or le):
        return None
    return (product, start, lt, le)


def _product_for(db: VulnDB, name: str) -> str | None:
    key = name.strip().lower()
    for comp in db.components.values():
        if key == comp.id or key in comp.cve_names:
            return comp.id
    return None


def _affected_text(start: str | None, lt: str | None, le: str | None) -> str:
    parts = [f"from {start}" if start else "", f"before {lt}" if lt else ""]
    parts.append(f"through {le}" if le else "")
    return " ".join(p for p in parts if p)


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=\.)\s", text.strip(), maxsplit=1)[0]
    return sentence[:160]


def _start(value: Any) -> str | None:
    text = str(value or "").strip()
    return None if text.lower() in _NO_START else text


def _from_cve5(doc: Mapping[str, Any]) -> _Record:
    meta = doc.get("cveMetadata") or {}
    cve_id = str(meta.get("cveId", ""))
    if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve_id):
        raise UsageError(f"CVE record without a valid cveId: {cve_id!r}")
    containers = doc.get("containers") or {}
    cna = containers.get("cna") or {}
    adps = containers.get("adp") or []
    desc = next(
        (
            str(d.get("value", ""))
            for d in cna.get("descriptions", [])
            if str(d.get("lang", "")).startswith("en")
        ),
        "",
    )
    ranges: list[tuple[str, str | None, str | None, str | None]] = []
    for aff in cna.get("affected", []):
        names = [
            str(aff.get("product") or ""),
            str(aff.get("packageName") or ""),
            f"{aff.get('vendor', '')} {aff.get('product', '')}",
            f"{aff.get('vendor', '')}:{aff.get('product', '')}",
        ]
        for ver in aff.get("versions", []):
            if ver.get("status") != "affected" or ver.get("versionType") == "git":
                continue
            start = _start(ver.get("version"))
            lt, le = ver.get("lessThan"), ver.get("lessThanOrEqual")
            if not lt and not le and start:
                le = start  # a single affected version
            for name in names:
                ranges.append((name, start, str(lt) if lt else None, str(le) if le else None))
    for app in cna.get("cpeApplicability", []):
        for node in app.get("nodes", []):
            for match in node.get("cpeMatch", []):
                ranges.extend(_cpe_range(match))
    cvss, cvss_version = None, None
    for container in (cna, *adps):
        cvss, cvss_version = _best_cvss(container.get("metrics", []), cvss, cvss_version)
    cwe = None
    for container in (cna, *adps):
        for pt in container.get("problemTypes", []):
            for d in pt.get("descriptions", []):
                if d.get("cweId") and cwe is None:
                    cwe = str(d["cweId"])
    source = f"cvelistV5 {cve_id} (record {doc.get('dataVersion', '?')}"
    updated = meta.get("dateUpdated")
    source += f", updated {str(updated)[:10]})" if updated else ")"
    return _Record(
        cve_id=cve_id,
        rejected=str(meta.get("state", "")).upper() == "REJECTED",
        description=desc,
        ranges=ranges,
        cvss=cvss,
        cvss_version=cvss_version,
        cwe=cwe,
        source=source,
    )


def _best_cvss(
    metrics: Iterable[Mapping[str, Any]], cvss: float | None, version: str | None
) -> tuple[float | None, str | None]:
    """The first v3.x score (CNA before ADP), else a v4.0 score; v2 is too coarse to use."""
    rank = {"3.1": 0, "3.0": 1, "4.0": 2}
    for m in metrics:
        for key, ver in (("cvssV3_1", "3.1"), ("cvssV3_0", "3.0"), ("cvssV4_0", "4.0")):
            obj = m.get(key)
            if isinstance(obj, dict) and "baseScore" in obj:
                if version is None or rank[ver] < rank[version]:
                    cvss, version = float(obj["baseScore"]), ver
    return cvss, version


def _cpe_range(match: Mapping[str, Any]) -> list[tuple[str, str | None, str | None, str | None]]:
    if not match.get("vulnerable", True):
        return []
    parts = str(match.get("criteria", "")).split(":")
    if len(parts) < 6 or parts[2] not in ("a", "o"):
        return []
    name = f"{parts[3]}:{parts[4]}".replace("\\", "")
    version = parts[5]
    start = match.get("versionStartIncluding")
    lt = match.get("versionEndExcluding")
    le = match.get("versionEndIncluding")
    if version not in ("*", "-", "") and not (start or lt or le):
        start = le = version
    out = [(name, _start(start), lt, le), (parts[4], _start(start), lt, le)]
    return [(n, s, str(a) if a else None, str(b) if b else None) for n, s, a, b in out]


def _from_nvd(cve: Mapping[str, Any]) -> _Record:
    cve_id = str(cve.get("id", ""))
    if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve_id):
        raise UsageError(f"NVD item without a valid id: {cve_id!r}")
    desc = next(
        (str(d.get("value", "")) for d in cve.get("descriptions", []) if d.get("lang") == "en"),
        "",
    )
    ranges: list[tuple[str, str | None, str | None, str | None]] = []
    for conf in cve.get("configurations", []):
        for node in conf.get("nodes", []):
            for match in node.get("cpeMatch", []):
                ranges.extend(_cpe_range(match))
    cvss, version = None, None
    metrics = cve.get("metrics") or {}
    for key, ver in (("cvssMetricV31", "3.1"), ("cvssMetricV30", "3.0"), ("cvssMetricV40", "4.0")):
        for m in metrics.get(key, []):
            data = m.get("cvssData") or {}
            if "baseScore" in data and cvss is None:
                cvss, version = float(data["baseScore"]), ver
    cwe = None
    for w in cve.get("weaknesses", []):
        for d in w.get("description", []):
            if str(d.get("value", "")).startswith("CWE-") and cwe is None:
                cwe = str(d["value"])
    return _Record(
        cve_id=cve_id,
        rejected=str(cve.get("vulnStatus", "")).lower() == "rejected",
        description=desc,
        ranges=ranges,
        cvss=cvss,
        cvss_version=version,
        cwe=cwe,
        source=f"NVD {cve_id} (modified {str(cve.get('lastModified', '?'))[:10]})",
    )


_V = r"\d+(?:\.\d+)+(?:[a-z]{1,2}\d*)?"
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "1.3.2 through 2.x before 2.0.16"
    (re.compile(rf"(?P<a>{_V}) through \d+\.x before (?:version )?(?P<lt>{_V})"), "a-lt"),
    # "4.x and 5.x before 5.1.5"
    (re.compile(rf"(?P<a>\d+)\.x and \d+\.x before (?:version )?(?P<lt>{_V})"), "ax-lt"),
    # "1.4.46 through 1.4.63", "version 1.0 to 1.5.5 (inclusive)"
    (re.compile(rf"(?P<a>{_V}) (?:through|to) (?:version )?(?P<le>{_V})"), "a-le"),
    # "before 2016.74"; "0.9.8za, 1.0.0 before 1.0.0m, and 1.0.1 before 1.0.1h"
    (re.compile(rf"(?:(?P<a>{_V}) )?before (?:version )?(?P<lt>{_V})"), "lt"),
    # "through 2018.76", "up to 1.4.15"
    (re.compile(rf"(?:through|up to(?: and including)?) (?:version )?(?P<le>{_V})"), "le"),
    # "2.07 and earlier"
    (re.compile(rf"(?P<le>{_V}) and (?:earlier|prior|below|older)"), "le"),
)


def _ranges_from_text(
    db: VulnDB, description: str
) -> list[tuple[str, str | None, str | None, str | None]]:
    """Version ranges stated in prose right after a tracked component's name.

    Only the clause that follows the name is read (up to the sentence end), and only the fixed
    phrasings above; anything else is left out rather than guessed.
    """
    text = " ".join(description.split())
    low = text.lower()
    for comp in db.components.values():
        names = sorted({comp.id.replace("_", " "), comp.id, *comp.cve_names}, key=len, reverse=True)
        for name in names:
            if ":" in name:
                continue
            for hit in re.finditer(rf"\b{re.escape(name)}\b", low):
                window = low[hit.end() : hit.end() + 160]
                window = re.split(r"\.(?:\s|$)|;", window, maxsplit=1)[0]
                ranges = _apply_rules(window)
                if ranges:
                    return [(comp.id, a, lt, le) for a, lt, le in ranges]
    return []


def _apply_rules(window: str) -> list[tuple[str | None, str | None, str | None]]:
    for pattern, kind in _TEXT_RULES:
        hits = list(pattern.finditer(window))
        if not hits:
            continue
        out: list[tuple[str | None, str | None, str | None]] = []
        for m in hits if kind == "lt" else hits[:1]:
            g = m.groupdict()
            if kind == "ax-lt":
                out.append((f"{g['a']}.0", g["lt"], None))
            elif kind == "a-lt":
                out.append((g["a"], g["lt"], None))
            elif kind == "a-le":
                out.append((g["a"], None, g["le"]))
            elif kind == "lt":
                out.append((g.get("a"), g["lt"], None))
            else:
                out.append((None, None, g["le"]))
        return out
    return []


def _merge_component_table(
    text: str,
    path: Path,
    db: VulnDB,
    rows: dict[str, list[dict[str, str]]],
    report: UpdateReport,
) -> None:
    """A table in the ``embedded_components.csv`` layout: one row per CVE and branch, with
    ``affected_from``/``fixed_in`` and the stated range in ``affected_text``."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"cve_id", "product", "affected_from", "fixed_in", "affected_text", "cvss3", "kev"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise UsageError(f"{path}: CSV is not in the embedded_components.csv layout")
    grouped: dict[str, list[dict[str, str]]] = {}
    for raw in reader:
        product = _product_for(db, raw["product"])
        if product is None:
            report.skipped.append(f"{raw['cve_id']}: product {raw['product']} is not tracked")
            continue
        start = _start(raw["affected_from"])
        lt = raw["fixed_in"].strip() or None
        le = None
        if lt is None:
            le = _le_from_text(raw["affected_text"])
            text = raw["affected_text"].lower()
            if le is None and start and start.lower() in text and _names_one_version(text):
                le = start  # the record names exactly one version
        grouped.setdefault(raw["cve_id"], []).append(
            {
                "cve_id": raw["cve_id"],
                "product": product,
                "version_start_including": start or "",
                "version_end_excluding": lt or "",
                "version_end_including": le or "",
                "cvss": raw["cvss3"].strip(),
                "cvss_version": "3.x" if raw["cvss3"].strip() else "",
                "cwe": raw.get("cwe", "").strip(),
                "summary": raw.get("summary", "").strip(),
                "affected_text": raw["affected_text"].strip(),
                "source": f"{path.name} (from the cvelistV5 record)",
            }
        )
    for cve_id, new in grouped.items():
        (report.updated if cve_id in rows else report.added).append(cve_id)
        rows[cve_id] = new


def _le_from_text(text: str) -> str | None:
    low = text.lower()
    m = re.search(rf"(?:through|<=) (?P<v>{_V})", low) or re.search(
        rf"(?P<v>{_V}) and (?:earlier|prior)", low
    )
    return m.group("v") if m else None


def _names_one_version(text: str) -> bool:
    return len(re.findall(_V, text.lower())) == 1


def _kev_rows(doc: Mapping[str, Any], path: Path) -> list[dict[str, str]]:
    out = []
    for item in doc.get("vulnerabilities", []):
        cve_id = str(item.get("cveID", ""))
        if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve_id):
            raise UsageError(f"{path}: KEV entry without a valid cveID: {cve_id!r}")
        out.append(
            {
                "cve_id": cve_id,
                "vendor_project": str(item.get("vendorProject", "")),
                "product": str(item.get("product", "")),
                "date_added": str(item.get("dateAdded", "")),
                "ransomware": str(item.get("knownRansomwareCampaignUse", "")),
            }
        )
    out.sort(key=lambda r: r["cve_id"])
    return out


def _write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in fields})
    _write_text(path, buf.getvalue())


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
