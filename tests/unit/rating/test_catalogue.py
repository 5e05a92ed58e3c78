"""The scheme is the only check catalogue: every check a probe declares is in the current
scheme, and a finding carries the scheme's title, severity, remediation and clauses."""

from __future__ import annotations

import pytest
from iotrate.probes import registry
from iotrate.probes.base import make_finding
from iotrate.rating_schema.loader import load_scheme, scheme_for_version
from iotrate.rating_schema.model import UnknownCheck

from iotrate.models import Severity

SCHEME = load_scheme()


def test_every_probe_check_is_a_scan_check_of_the_current_scheme() -> None:
    reg = registry(include_plugins=False)
    assert reg.errors == ()
    assert len(reg.probes) > 20
    for probe in reg.probes:
        assert probe.checks, probe.id
        for cid in probe.checks:
            check = SCHEME.check(cid)
            assert check is not None, f"{probe.id}: {cid} is not in {SCHEME.cite}"
            assert check.source == "scan", f"{probe.id}: {cid}"


def test_a_finding_takes_its_texts_from_the_scheme() -> None:
    f = make_finding("svc.telnet", "telnet on port 23", 23, {"login_prompt": True}, probe="p")
    check = SCHEME.check("svc.telnet")
    assert check is not None
    assert (f.title, f.severity, f.remediation) == (check.title, Severity.HIGH, check.remediation)
    assert f.standards == list(check.standards)
    assert "ETSI EN 303 645 5.1-3" in f.standards
    assert f.port == 23 and f.evidence[0].port == 23 and f.probe == "p"


def test_evidence_may_sit_on_another_port() -> None:
    f = make_finding("svc.upnp.igd-control", "x", 1900, {}, evidence_port=49152)
    assert f.port == 1900 and f.evidence[0].port == 49152


def test_an_unknown_check_is_a_programming_error() -> None:
    with pytest.raises(UnknownCheck):
        make_finding("svc.nope", "x", 1, {})


def test_every_scan_check_maps_to_a_clause() -> None:
    for check in SCHEME.checks:
        assert check.standards, check.id


def test_scheme_for_version() -> None:
    assert scheme_for_version(None) is SCHEME
    assert scheme_for_version("2026.1").version == "2026.1"
    assert scheme_for_version("1999.1") is SCHEME
    assert scheme_for_version("2026.1", "other") is SCHEME
