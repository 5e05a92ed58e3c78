"""The offline refresh of the vulnerability dataset (``iotrate db update``): CVE JSON 5
records, NVD API 2.0 answers, the CISA KEV catalog and tables in the ``embedded_components.csv``
layout merged into the files :mod:`iotrate.vulndb.lookup` reads. Nothing is fetched from the
network.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotrate.errors import UsageError

from .lookup import (
    CVE_FIELDS,
    KEV_FIELDS,
    CveRange,
    VulnDB,
    clear_cache,
    data_dir,
    load,
    packaged_dir,
)
from .versions import version_key

_NO_START = {"", "0", "*", "-", "n/a", "unspecified", "unknown"}


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
    clear_cache()
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
