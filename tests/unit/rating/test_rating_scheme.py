"""The scheme as data: complete, internally consistent, in step with its framework files and
its methodology, and refused with a clear message when it is broken."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from iotrate.rating_schema.loader import DEFAULT_SCHEME, SchemeError, load_scheme, parse_scheme

from iotrate.declarations import load_yaml
from iotrate.models import GRADES

SCHEME = load_scheme()
RAW: dict[str, Any] = load_yaml(DEFAULT_SCHEME, "rating scheme", SchemeError)
ROOT = DEFAULT_SCHEME.parent
METHODOLOGY = (ROOT / "METHODOLOGY.md").read_text()

# The ids probes emit; each must exist in the scheme with exactly this spelling.
SEED_IDS = """
cred.default-password auth.none.admin svc.telnet svc.ftp svc.ftp.anonymous
svc.adb.unauthenticated svc.snmp.readable svc.snmp.writable svc.upnp.igd-control
svc.upnp.portmapping-accepted svc.rtsp.unauthenticated svc.api.unauthenticated
svc.http.admin-cleartext svc.mqtt.anonymous svc.mqtt.cleartext svc.coap.open svc.modbus.open
svc.smb.v1 tls.protocol.obsolete tls.cipher.weak tls.cert.expired tls.cert.not-yet-valid
tls.cert.weak-key tls.cert.weak-signature tls.cert.self-signed tls.cert.shared
tls.vuln.heartbleed tls.vuln.robot tls.vuln.ccs-injection tls.vuln.renegotiation
tls.vuln.compression ssh.algorithms.weak ssh.password-auth ssh.hostkey.shared mqtt.sys-exposed
update.known-exploited update.cve update.outdated update.eol update.version-unknown
update.version-uncertain decl.support-period.missing decl.support-period.expired
decl.disclosure-policy.missing decl.update-mechanism.missing
""".split()


def etsi_provision_ids() -> list[str]:
    """ETSI EN 303 645 V2.1.1's 68 provisions, by clause and count."""
    counts = {
        "5.1": 5,
        "5.2": 3,
        "5.3": 16,
        "5.4": 4,
        "5.5": 8,
        "5.6": 9,
        "5.7": 2,
        "5.8": 3,
        "5.9": 3,
        "5.10": 1,
        "5.11": 4,
        "5.12": 3,
        "5.13": 1,
        "6": 5,
    }
    return [
        "4-1",
        *(f"{clause}-{n}" for clause, count in counts.items() for n in range(1, count + 1)),
    ]


def referenced_ids(node: Any) -> set[str]:
    """Every check id a condition mentions."""
    if isinstance(node, dict):
        out: set[str] = set()
        for key, value in node.items():
            if key in ("finding", "unknown"):
                out |= {value} if isinstance(value, str) else set(value)
            else:
                out |= referenced_ids(value)
        return out
    if isinstance(node, list):
        return set().union(*(referenced_ids(v) for v in node)) if node else set()
    return set()


def test_identity_and_seed_checks() -> None:
    assert (SCHEME.id, SCHEME.version) == ("iotrate", "2026.3")
    assert DEFAULT_SCHEME.name == f"{SCHEME.id}-{SCHEME.version}.yaml"
    ids = {c.id for c in SCHEME.checks}
    assert not set(SEED_IDS) - ids


def test_every_referenced_check_exists() -> None:
    ids = {c.id for c in SCHEME.checks}
    refs = referenced_ids([c["when"] for c in RAW["caps"]])
    refs |= {cid for p in SCHEME.provisions for cid in p.checks}
    refs |= set(RAW["declaration"].values())
    for fw in SCHEME.frameworks:
        refs |= {cid for r in fw.requirements for cid in r.checks}
    assert refs, "nothing referenced?"
    assert refs <= ids, sorted(refs - ids)


def test_every_check_maps_to_a_clause_and_agrees_with_the_framework_files() -> None:
    from_frameworks: dict[str, set[str]] = {}
    for fw in SCHEME.frameworks:
        for req in fw.requirements:
            for cid in req.checks:
                from_frameworks.setdefault(cid, set()).add(fw.clause(req))
    for check in SCHEME.checks:
        assert check.standards, check.id
        assert set(check.standards) == from_frameworks.get(check.id, set()), check.id
        assert any(s.startswith("ETSI EN 303 645 ") for s in check.standards), check.id


def test_one_framework_file_per_standard() -> None:
    names = {f.id for f in SCHEME.frameworks}
    assert names == {
        "etsi-en-303-645",
        "uk-psti",
        "owasp-iot-top10",
        "en-18031",
        "cra-annex-i",
        "nistir-8425",
    }
    assert {p.name for p in (ROOT / "frameworks").glob("*.yaml")} == {f"{n}.yaml" for n in names}
    for fw in SCHEME.frameworks:
        assert len({r.id for r in fw.requirements}) == len(fw.requirements), fw.id
        for req in fw.requirements:
            if req.status != "declared":
                assert req.checks, f"{fw.id} {req.id} is {req.status} without checks"
        assert any(r.status == "declared" for r in fw.requirements), f"{fw.id}: no manual items?"


def test_all_68_etsi_provisions_with_the_framework_file_identical() -> None:
    assert [p.id for p in SCHEME.provisions] == etsi_provision_ids()
    etsi = next(f for f in SCHEME.frameworks if f.id == "etsi-en-303-645")
    assert [(r.id, r.status, r.checks) for r in etsi.requirements] == [
        (p.id, p.status, p.checks) for p in SCHEME.provisions
    ]
    tally = {s: sum(p.status == s for p in SCHEME.provisions) for s in ("tested", "partly")}
    assert tally["tested"] >= 8 and tally["partly"] >= 8
    psti = {p.id: p for p in SCHEME.provisions if p.id in ("5.1-1", "5.2-1", "5.3-13")}
    assert psti["5.1-1"].status == "tested"
    assert "decl.support-period.missing" in psti["5.3-13"].checks


def test_bands_categories_and_weights() -> None:
    assert tuple(b.grade for b in SCHEME.bands) == GRADES
    assert [c.id for c in SCHEME.categories] == [
        "passwords",
        "encryption",
        "updates",
        "services",
        "privacy",
    ]
    for cat in SCHEME.categories:
        assert any(c.category == cat.id for c in SCHEME.checks), cat.id
    self_signed = SCHEME.check("tls.cert.self-signed")
    assert self_signed and (self_signed.severity.value, self_signed.weight) == ("info", 0)
    for check in SCHEME.checks:
        assert (check.weight == 0) == (check.severity.value == "info"), check.id
        if check.id.startswith("decl."):
            assert check.source == "declaration", check.id


def test_methodology_explains_every_cap_and_band() -> None:
    assert f"{SCHEME.id} {SCHEME.version}" in METHODOLOGY or SCHEME.version in METHODOLOGY
    for cap in SCHEME.caps:
        assert f"`{cap.id}`" in METHODOLOGY, cap.id
    for band in SCHEME.bands:
        assert re.search(rf"\|\s*{band.grade}\s*\|\s*{band.min_score:g}\b", METHODOLOGY), band


def test_framework_files_are_packaged() -> None:
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["iotrate.rating_schema"]
    assert "frameworks/*.yaml" in globs and "*.json" in globs and "*.yaml" in globs


def test_load_scheme_is_cached_and_accepts_a_path() -> None:
    assert load_scheme() is SCHEME
    assert load_scheme(str(DEFAULT_SCHEME)) is SCHEME


# --- broken schemes are refused clearly -----------------------------------------------------


def broken(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RAW)
    edit(doc)
    return doc


def _check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["id"] == cid)
    return found


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: _check(d, "svc.ftp").update(severity="severe"), "checks/"),
        (lambda d: _check(d, "svc.ftp").pop("remediation"), "'remediation' is a required"),
        (lambda d: _check(d, "svc.ftp").update(category="other"), "unknown category 'other'"),
        (lambda d: _check(d, "svc.ftp").update(standards=["ETSI EN 303 645 9.9-9"]), "9.9-9"),
        (lambda d: d["checks"].append(dict(_check(d, "svc.ftp"))), "duplicate check ids: svc.ftp"),
        (
            lambda d: d["caps"][0]["when"].update(finding="cred.typo"),
            "unknown check id 'cred.typo'",
        ),
        (lambda d: d["caps"][0].update(grade="H"), "caps/0/grade"),
        (lambda d: d["caps"][0].update(when={"coverage_below": 2}), "caps/0/when"),
        (lambda d: d["caps"].append(dict(d["caps"][0])), "duplicate cap ids"),
        (lambda d: d["bands"].reverse(), "bands must list A to G"),
        (lambda d: d["bands"][1].update(min_score=99), "must fall"),
        (lambda d: d.update(evidence={"vulndb_max_age_days": 0}), "evidence"),
        (lambda d: d["caps"][0].update(when={"evidence": "vibes"}), "caps/0/when"),
        (lambda d: d["declaration"].update(support_period_missing="svc.ftp"), "not a declaration"),
        (lambda d: d.update(weights={}), "Additional properties"),
    ],
)
def test_broken_scheme_is_refused(edit: Any, message: str) -> None:
    with pytest.raises(SchemeError) as exc:
        parse_scheme(broken(edit), DEFAULT_SCHEME)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["provisions"][1].update(checks=["nope.nope"]), "provision 5.1-1"),
        (lambda d: d["provisions"][1].update(checks=[]), "names no check"),
    ],
)
def test_broken_inline_provisions_of_a_published_scheme_are_refused(
    edit: Any, message: str
) -> None:
    """2026.2 is the last scheme with an inline provisions table; the loader still checks it."""
    path = ROOT / "iotrate-2026.2.yaml"
    doc = copy.deepcopy(load_yaml(path, "rating scheme", SchemeError))
    edit(doc)
    with pytest.raises(SchemeError) as exc:
        parse_scheme(doc, path)
    assert message in str(exc.value)


def test_broken_scheme_files(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("scheme: iotrate\nscheme: other\n")
    with pytest.raises(SchemeError, match="duplicate key 'scheme'"):
        load_scheme(dup)
    with pytest.raises(SchemeError, match="cannot read"):
        load_scheme(tmp_path / "absent.yaml")
    fw = tmp_path / "frameworks"
    fw.mkdir()
    for src in (ROOT / "frameworks").glob("*.yaml"):
        (fw / src.name).write_text(src.read_text())
    (fw / "uk-psti.yaml").write_text("framework: uk-psti\n")
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(DEFAULT_SCHEME.read_text())
    with pytest.raises(SchemeError, match=r"framework .*uk-psti.yaml is invalid"):
        load_scheme(scheme)
