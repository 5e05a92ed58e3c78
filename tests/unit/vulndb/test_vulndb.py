"""The vulnerability dataset: version ordering, banner recognition, confidence of matches, and
the offline refresh from CVE JSON 5 records, NVD answers and the CISA KEV catalog."""

from __future__ import annotations

import ast
import csv
import json
import shutil
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.errors import UsageError
from iotrate.models import Confidence
from iotrate.vulndb import importer, lookup, versions

SHARED = Path("/work/shared/data/vulns")
TODAY = date(2026, 11, 25)


@pytest.fixture(scope="module")
def db() -> lookup.VulnDB:
    return lookup.load(lookup.packaged_dir())


def sighting(db: lookup.VulnDB, text: str) -> lookup.Sighting:
    tracked = [s for s in db.find(text, "test") if s.product]
    assert len(tracked) == 1, tracked
    return tracked[0]


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.0.1f", "1.0.1g"),  # OpenSSL letter releases
        ("1.0.1", "1.0.1a"),
        ("0.9.8z", "0.9.8za"),
        ("1.0.2k", "1.0.2zd"),
        ("9.3p1", "9.3p2"),  # OpenSSH portable
        ("9.6", "9.6p1"),
        ("2022.83", "2024.84"),  # dropbear YEAR.NN
        ("0.53", "2011.54"),
        ("1.0.0rc1", "1.0.0"),  # pre-releases before the release
        ("0.94.14rc20", "0.94.14rc21"),
        ("1.4.9", "1.4.35"),  # numeric, not string, order
        ("2.0.9", "2.0.10"),
    ],
)
def test_version_order(low: str, high: str) -> None:
    assert versions.compare_versions(low, high) == -1
    assert versions.compare_versions(high, low) == 1


def test_trailing_zeros_are_equal() -> None:
    assert versions.compare_versions("1.35", "1.35.0") == 0


# --------------------------------------------------------------------------- the shipped data


def test_packaged_dataset_is_consistent(db: lookup.VulnDB) -> None:
    ids = {r.cve_id for rows in db.cves.values() for r in rows}
    assert len(ids) == 95
    assert {"CVE-2014-0160", "CVE-2017-17562"} <= {i for i in ids if i in db.kev}
    assert db.meta["kev_catalog_version"] == "2025.08.25"
    assert len(db.kev) == 1404
    for cve_id in db.annotations:
        assert cve_id in ids, f"annotation for a CVE the dataset does not have: {cve_id}"
    for rows in db.cves.values():
        for r in rows:
            assert r.source, r.cve_id


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared vulnerability data not present")
def test_packaged_dataset_rebuilds_from_its_sources(tmp_path: Path) -> None:
    for name in ("components.yaml", "annotations.yaml"):
        shutil.copy(lookup.packaged_dir() / name, tmp_path / name)
    importer.update_dataset(
        [
            SHARED / "embedded_components.csv",
            SHARED / "cve",
            SHARED / "known_exploited_vulnerabilities.json",
        ],
        tmp_path,
    )
    for name in ("cves.csv", "kev.csv"):
        assert (tmp_path / name).read_text() == (lookup.packaged_dir() / name).read_text(), name


# --------------------------------------------------------------------------- recognition


@pytest.mark.parametrize(
    ("text", "product", "version", "patch"),
    [
        ("SSH-2.0-dropbear_2022.83\\n\\x00\\x00", "dropbear", "2022.83", None),
        ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\n", "openssh", "9.2p1", " Debian-2+deb12u3"),
        ("HTTP/1.0 401 Unauthorized | Server: lighttpd/1.4.35", "lighttpd", "1.4.35", None),
        (
            "SERVER: Linux/6.1, UPnP/1.0, Portable SDK for UPnP devices/1.8.4",
            "libupnp",
            "1.8.4",
            None,
        ),
        ("SERVER: Linux/2.6 UPnP/1.0 MiniUPnPd/1.9", "miniupnpd", "1.9", None),
        ("mosquitto version 2.0.11", "mosquitto", "2.0.11", None),
        ("Server: Apache/2.4.6 OpenSSL/1.0.2k-fips", "openssl", "1.0.2k", "-fips"),
        ("Server: GoAhead-Webs/3.6.4", "goahead", "3.6.4", None),
        ("Server: Boa/0.94.14rc21", "boa", "0.94.14rc21", None),
        ("BusyBox v1.24.1 (2017-01-01) built-in shell", "busybox", "1.24.1", None),
        ("dnsmasq-2.78", "dnsmasq", "2.78", None),
    ],
)
def test_banners_name_components(
    db: lookup.VulnDB, text: str, product: str, version: str, patch: str | None
) -> None:
    s = next(s for s in db.find(text, "test") if s.product == product)
    assert (s.version, s.patch) == (version, patch)


def test_untracked_software_still_counts_as_a_disclosed_version(db: lookup.VulnDB) -> None:
    found = db.find("HTTP/1.0 200 OK | Server: AirTunes/377.40.00 UPnP/1.0 HTTP/1.1", "t")
    assert [(s.product, s.name, s.version) for s in found] == [(None, "AirTunes", "377.40.00")]


# --------------------------------------------------------------------------- judgement


def test_distribution_patch_level_is_uncertain_not_a_cve(db: lookup.VulnDB) -> None:
    a = db.assess(sighting(db, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"), TODAY)
    assert a.uncertain is not None and "Debian-2+deb12u3" in a.uncertain
    # the would-be matches are kept only to explain what an unpatched build would have
    assert "CVE-2024-6387" in {m.cve.cve_id for m in a.matches}


def test_bare_upstream_version_is_probable(db: lookup.VulnDB) -> None:
    a = db.assess(sighting(db, "SSH-2.0-OpenSSH_9.2p1"), TODAY)
    assert a.uncertain is None
    regre = next(m for m in a.matches if m.cve.cve_id == "CVE-2024-6387")
    assert regre.confidence is Confidence.PROBABLE and regre.cve.cvss == 8.1
    agent = next(m for m in a.matches if m.cve.cve_id == "CVE-2023-38408")
    assert agent.confidence is Confidence.POSSIBLE  # ssh-agent: a client tool


def test_measured_strict_kex_rules_out_terrapin(db: lookup.VulnDB) -> None:
    s = sighting(db, "SSH-2.0-dropbear_2022.83")
    before = {m.cve.cve_id: m for m in db.assess(s, TODAY).live}
    assert before["CVE-2023-48795"].confidence is Confidence.PROBABLE
    after = db.assess(s, TODAY, {"strict_kex": True})
    assert "CVE-2023-48795" not in {m.cve.cve_id for m in after.live}
    ruled = next(m for m in after.matches if m.cve.cve_id == "CVE-2023-48795")
    assert ruled.refuted is not None and "strict_kex" in ruled.refuted
    assert after.outdated_latest == "2025.88"


def test_known_exploited_and_eol(db: lookup.VulnDB) -> None:
    a = db.assess(sighting(db, "Server: nginx OpenSSL/1.0.1f"), TODAY)
    hb = next(m for m in a.matches if m.cve.cve_id == "CVE-2014-0160")
    assert hb.kev is not None and hb.kev.date_added
    assert a.eol is not None and a.eol.branch == "1.0.1"
    refuted = db.assess(sighting(db, "OpenSSL/1.0.1f"), TODAY, {"heartbleed": False})
    assert "CVE-2014-0160" not in {m.cve.cve_id for m in refuted.live}
    goahead = db.assess(sighting(db, "GoAhead-Webs/3.6.4"), TODAY)
    assert [m.cve.cve_id for m in goahead.matches if m.kev] == ["CVE-2017-17562"]


def test_ambiguous_and_disputed_records_are_only_possible(db: lookup.VulnDB) -> None:
    mq = {m.cve.cve_id: m for m in db.assess(sighting(db, "mosquitto version 2.0.5"), TODAY).live}
    assert mq["CVE-2021-34432"].confidence is Confidence.POSSIBLE  # "2.07 and earlier"
    assert mq["CVE-2023-0809"].confidence is Confidence.PROBABLE
    boa = db.assess(sighting(db, "Boa/0.94.14rc21"), TODAY)
    assert boa.matches[0].confidence is Confidence.POSSIBLE
    assert boa.eol is not None and boa.eol.branch == "all"


def test_ranges_without_bounds_never_match(db: lookup.VulnDB) -> None:
    wget = next(r for r in db.cves["busybox"] if r.cve_id == "CVE-2018-1000517")
    assert not wget.bounded and not wget.covers("1.0.0")


def test_current_version_is_clean(db: lookup.VulnDB) -> None:
    a = db.assess(sighting(db, "SSH-2.0-dropbear_2025.88"), TODAY)
    assert (a.matches, a.outdated_latest, a.eol, a.uncertain) == ((), None, None, None)


# --------------------------------------------------------------------------- refresh


def _record(cve_id: str, cna: dict[str, Any], state: str = "PUBLISHED") -> dict[str, Any]:
    return {
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": {"cveId": cve_id, "state": state, "dateUpdated": "2025-01-02T00:00:00"},
        "containers": {"cna": cna},
    }


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    target = tmp_path / "vulns"
    assert importer.seed_directory(target)
    assert not importer.seed_directory(target)
    return target


def _rows(directory: Path, cve_id: str) -> list[dict[str, str]]:
    with (directory / "cves.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["cve_id"] == cve_id]


def test_refresh_structured_and_prose_records(workdir: Path, tmp_path: Path) -> None:
    structured = _record(
        "CVE-2099-0001",
        {
            "descriptions": [{"lang": "en", "value": "Dropbear does a thing. More text."}],
            "affected": [
                {
                    "vendor": "Dropbear SSH Project",
                    "product": "Dropbear SSH",
                    "defaultStatus": "unaffected",
                    "versions": [
                        {"version": "2020.79", "lessThan": "2024.85", "status": "affected"}
                    ],
                }
            ],
            "metrics": [{"cvssV3_1": {"baseScore": 9.1}}],
            "problemTypes": [{"descriptions": [{"cweId": "CWE-787"}]}],
        },
    )
    prose = _record(
        "CVE-2099-0002",
        {
            "descriptions": [{"lang": "en", "value": "In lighttpd 1.4.50 through 1.4.60, bad."}],
            "affected": [
                {
                    "vendor": "n/a",
                    "product": "n/a",
                    "versions": [{"version": "n/a", "status": "affected"}],
                }
            ],
        },
    )
    untracked = _record(
        "CVE-2099-0003",
        {
            "descriptions": [{"lang": "en", "value": "Foo server before 2.0 crashes."}],
            "affected": [],
        },
    )
    report = importer.update_dataset(
        [_write(tmp_path / "a.json", structured), _write(tmp_path / "b.json", prose),
         _write(tmp_path / "c.json", untracked)],
        workdir,
    )  # fmt: skip
    assert report.added == ["CVE-2099-0001", "CVE-2099-0002"]
    assert report.skipped == ["CVE-2099-0003: no tracked component with a version range"]
    (row,) = _rows(workdir, "CVE-2099-0001")
    assert (row["product"], row["version_start_including"], row["version_end_excluding"]) == (
        "dropbear",
        "2020.79",
        "2024.85",
    )
    assert (row["cvss"], row["cwe"]) == ("9.1", "CWE-787")
    (row2,) = _rows(workdir, "CVE-2099-0002")
    assert (row2["version_start_including"], row2["version_end_including"]) == ("1.4.50", "1.4.60")
    fresh = lookup.load(workdir)
    s = next(s for s in fresh.find("dropbear_2022.83", "t") if s.product)
    assert "CVE-2099-0001" in {m.cve.cve_id for m in fresh.assess(s, TODAY).matches}

    # a rejected record takes the CVE out again
    rejected = _record("CVE-2099-0001", {}, state="REJECTED")
    report = importer.update_dataset([_write(tmp_path / "r.json", rejected)], workdir)
    assert report.removed == ["CVE-2099-0001"] and _rows(workdir, "CVE-2099-0001") == []


def test_prose_record_keeps_curated_branch_rows(workdir: Path, tmp_path: Path) -> None:
    before = _rows(workdir, "CVE-2014-0224")
    assert len(before) == 3
    prose = _record(
        "CVE-2014-0224",
        {
            "descriptions": [{"lang": "en", "value": "OpenSSL before 0.9.8za does not restrict."}],
            "affected": [
                {
                    "vendor": "n/a",
                    "product": "n/a",
                    "versions": [{"version": "n/a", "status": "affected"}],
                }
            ],
            "metrics": [{"cvssV3_1": {"baseScore": 7.4}}],
        },
    )
    importer.update_dataset([_write(tmp_path / "x.json", prose)], workdir)
    after = _rows(workdir, "CVE-2014-0224")
    assert [r["version_end_excluding"] for r in after] == [
        r["version_end_excluding"] for r in before
    ]
    assert {r["cvss"] for r in after} == {"7.4"}


def test_refresh_nvd_and_kev(workdir: Path, tmp_path: Path) -> None:
    cpe = "cpe:2.3:a:thekelleys:dnsmasq:*:*:*:*:*:*:*:*"
    nvd = {
        "format": "NVD_CVE",
        "vulnerabilities": [
            {
                "cve": {
                    "id": "CVE-2099-0100",
                    "lastModified": "2025-03-01T00:00:00",
                    "descriptions": [{"lang": "en", "value": "dnsmasq overflow."}],
                    "metrics": {"cvssMetricV31": [{"cvssData": {"baseScore": 8.8}}]},
                    "configurations": [
                        {
                            "nodes": [
                                {
                                    "cpeMatch": [
                                        {
                                            "vulnerable": True,
                                            "criteria": cpe,
                                            "versionEndExcluding": "2.91",
                                        }
                                    ]
                                }
                            ]
                        }
                    ],
                }
            }
        ],
    }
    kev = {
        "title": "KEV",
        "catalogVersion": "2099.01.01",
        "count": 1,
        "vulnerabilities": [
            {"cveID": "CVE-2099-0100", "vendorProject": "Thekelleys", "product": "dnsmasq",
             "dateAdded": "2099-01-01", "knownRansomwareCampaignUse": "Unknown"}
        ],
    }  # fmt: skip
    report = importer.update_dataset(
        [_write(tmp_path / "nvd.json", nvd), _write(tmp_path / "kev.json", kev)], workdir
    )
    assert report.added == ["CVE-2099-0100"] and report.kev_entries == 1
    fresh = lookup.load(workdir)
    assert fresh.meta["kev_catalog_version"] == "2099.01.01"
    s = next(s for s in fresh.find("dnsmasq-2.90", "t") if s.product)
    hit = next(m for m in fresh.assess(s, TODAY).matches if m.cve.cve_id == "CVE-2099-0100")
    assert hit.kev is not None and hit.cve.cvss == 8.8
    assert "CVE-2014-0160" not in fresh.kev  # the KEV table is replaced whole


def test_refresh_rejects_unknown_files(workdir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        importer.update_dataset([_write(tmp_path / "x.json", {"hello": 1})], workdir)
    with pytest.raises(UsageError):
        importer.update_dataset([tmp_path / "missing.json"], workdir)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared vulnerability data not present")
def test_refresh_from_the_shared_records_parses_prose_ranges(tmp_path: Path) -> None:
    for name in ("components.yaml", "annotations.yaml"):
        shutil.copy(lookup.packaged_dir() / name, tmp_path / name)
    report = importer.update_dataset(
        [SHARED / "cve", SHARED / "known_exploited_vulnerabilities.json"], tmp_path
    )
    assert len(report.added) == 18 and report.skipped == []
    assert report.kev_entries == 1404
    expect = {
        "CVE-2016-7406": ("", "2016.74", ""),  # "Dropbear SSH before 2016.74"
        "CVE-2022-22707": ("1.4.46", "", "1.4.63"),  # "lighttpd 1.4.46 through 1.4.63"
        "CVE-2023-28366": ("1.3.2", "2.0.16", ""),  # "1.3.2 through 2.x before 2.0.16"
        "CVE-2021-42342": ("4.0", "5.1.5", ""),  # "GoAhead 4.x and 5.x before 5.1.5"
        "CVE-2025-47203": ("", "2025.88", ""),  # structured + CPE
    }
    for cve_id, bounds in expect.items():
        (row,) = _rows(tmp_path, cve_id)
        got = (
            row["version_start_including"],
            row["version_end_excluding"],
            row["version_end_including"],
        )
        assert got == bounds, cve_id


def test_cli_db_update_and_info(tmp_path: Path) -> None:
    record = _record(
        "CVE-2099-0200",
        {
            "affected": [
                {
                    "product": "mosquitto",
                    "versions": [{"version": "0", "lessThan": "2.0.99", "status": "affected"}],
                }
            ]
        },
    )
    runner = CliRunner()
    target = tmp_path / "db"
    result = runner.invoke(
        app, ["db", "update", "--data-dir", str(target), str(_write(tmp_path / "r.json", record))]
    )
    assert result.exit_code == 0, result.output
    assert "seeded" in result.output and "1 CVEs added" in result.output
    info = runner.invoke(app, ["db", "info", "--data-dir", str(target)])
    assert info.exit_code == 0 and "mosquitto: 12 CVEs" in info.output
    bad = runner.invoke(
        app, ["db", "update", "--data-dir", str(target), str(tmp_path / "none.json")]
    )
    assert bad.exit_code == 2


def _siblings(module: ModuleType) -> set[str]:
    """The modules of its own package that ``module`` imports, anywhere in its body."""
    assert module.__file__ is not None
    package = module.__name__.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            name = f"{package}.{node.module}" if node.level else (node.module or "")
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {n.removeprefix(package + ".") for n in found if n.startswith(package + ".")}


def test_the_lookup_never_depends_on_the_importer() -> None:
    assert _siblings(versions) == set()
    assert _siblings(lookup) == {"versions"}
    assert _siblings(importer) == {"lookup", "versions"}
