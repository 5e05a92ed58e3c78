"""The embedded-component vulnerability dataset as iotrate reads it: which software a banner
names, which CVEs its version has, and how sure that claim can be.

Version matching is where scanners lose their users' trust: a distribution that backports a fix
keeps the old upstream number, a CVE record may name a version that never existed, a flaw may
sit in a client program the device never runs. So the dataset keeps iotrate's judgement of each
record (``annotations.yaml``: scope, disputed, ambiguous bound, evidence that refutes it) apart
from the generated CVE table, and :meth:`VulnDB.assess` turns those into a confidence instead
of a yes/no: a banner with a patch level is "version uncertain", never a CVE claim; a flaw in a
client tool is "possible"; only a plain upstream version inside an unambiguous range of a
network-reachable flaw is "probable". Nothing is ever "confirmed" from a version alone.

The data lives in ``iotrate/data/vulns/`` (``IOTRATE_VULN_DIR`` overrides it); refreshing it is
:mod:`iotrate.vulndb.importer`'s job, which builds on this module and never the reverse.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from iotrate.errors import RuntimeFailure
from iotrate.models import Confidence
from iotrate.yamlfiles import load_error, load_file

from .versions import compare_versions

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


class VulnDataError(RuntimeFailure):
    """The dataset files are missing or malformed."""


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

    @property
    def dataset_date(self) -> date | None:
        """How current the dataset is: the older of its last import and its KEV catalogue
        version, because an import run today over a year-old KEV snapshot still knows nothing
        exploited since. ``None`` when the metadata names neither (a hand-made dataset)."""
        dates = []
        for key in ("updated", "kev_catalog_version"):
            text = str(self.meta.get(key) or "").replace(".", "-")
            try:
                dates.append(date.fromisoformat(text))
            except ValueError:
                continue
        return min(dates) if dates else None

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


def packaged_dir() -> Path:
    """The copy of the dataset that ships inside the package."""
    return Path(str(resources.files("iotrate").joinpath("data/vulns")))


def load(directory: Path | None = None) -> VulnDB:
    """Load and validate the dataset; cached per directory."""
    return _load(str(directory or data_dir()))


@cache
def _load(directory: str) -> VulnDB:
    base = Path(directory)
    try:
        # $IOTRATE_VULN_DIR may name any folder: its YAML is read like every user file.
        comps_raw = load_file(base / "components.yaml")
        ann_raw = load_file(base / "annotations.yaml")
        cve_rows = _read_csv(base / "cves.csv", CVE_FIELDS)
        kev_rows = _read_csv(base / "kev.csv", KEV_FIELDS)
        meta_path = base / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    except yaml.YAMLError as exc:
        raise VulnDataError(f"vulnerability dataset in {base}: {load_error(exc)}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def clear_cache() -> None:
    """Forget every loaded dataset, after the files under it were rewritten."""
    _load.cache_clear()
