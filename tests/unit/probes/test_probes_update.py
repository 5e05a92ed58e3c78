"""Update status: banners and evidence -> components -> CVEs, with the false-positive guards
(distribution patch levels, client-only flaws, measurements that rule a CVE out), KEV, end of
life and "version unknown" (the lab TV's libupnp from its SSDP answer:
tests/lab/test_probes_update_lab.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from iotrate.probes import update
from iotrate.probes.base import Policy, ProbeContext, ProbeFailed

from iotrate import vulndb
from iotrate.models import Device, Evidence, Finding, Service, Severity, Transport

SCHEME = Path(__file__).resolve().parents[3] / "rating_schema" / "iotrate-2026.1.yaml"


def device(*banners: tuple[int, str], findings: list[Finding] | None = None, **kw: Any) -> Device:
    services = [
        Service(port=port, transport=Transport.UDP if port in (1900, 161) else Transport.TCP,
                banner=banner)
        for port, banner in banners
    ]  # fmt: skip
    return Device(id="dev", address="10.0.0.9", services=services, findings=findings or [], **kw)


def evidence_finding(check: str, port: int, data: dict[str, Any], probe: str) -> Finding:
    return Finding(
        check=check,
        severity=Severity.INFO,
        title=check,
        evidence=[Evidence(summary=check, port=port, data=data)],
        probe=probe,
        port=port,
    )


def judge(dev: Device) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in update.UpdateProbe.correlate([dev]).get(dev.id, []):
        out.setdefault(f.check, []).append(f)
    return out


def test_old_libupnp_from_the_ssdp_server_header() -> None:
    ssdp = "HTTP/1.1 200 OK | SERVER: Linux/4.9, UPnP/1.0, Portable SDK for UPnP devices/1.8.4"
    found = judge(device((1900, ssdp), (49494, ssdp)))
    (cve,) = found["update.cve"]
    data = cve.evidence[0].data
    assert data["cve"] == ["CVE-2020-13848"] and data["component"].endswith(" 1.8.4")
    assert cve.confidence.value == "probable" and cve.severity is Severity.HIGH
    assert len(data["sources"]) == 2
    assert "update.version-unknown" not in found


def test_debian_patch_level_is_version_uncertain_not_a_cve() -> None:
    found = judge(device((22, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")))
    assert set(found) == {"update.version-uncertain"}
    data = found["update.version-uncertain"][0].evidence[0].data
    assert data["patch_level"] == "Debian-2+deb12u3"
    assert "CVE-2024-6387" in data["upstream_cves"]
    assert found["update.version-uncertain"][0].severity is Severity.INFO


def test_bare_upstream_openssh_is_a_probable_cve() -> None:
    found = judge(device((22, "SSH-2.0-OpenSSH_9.2p1")))
    probable = next(f for f in found["update.cve"] if f.confidence.value == "probable")
    assert "CVE-2024-6387" in probable.evidence[0].data["cve"]
    assert probable.evidence[0].data["cvss"] == 8.1
    possible = next(f for f in found["update.cve"] if f.confidence.value == "possible")
    assert possible.evidence[0].data["cve"] == ["CVE-2023-38408"]  # ssh-agent, a client


def test_strict_kex_measured_on_the_port_rules_out_terrapin() -> None:
    summary = evidence_finding("ssh.summary", 22, {"strict_kex": True}, "ssh.algorithms")
    found = judge(device((22, "SSH-2.0-dropbear_2022.83"), findings=[summary]))
    assert "update.cve" in found  # dbclient's CVE, only possible
    assert all(f.confidence.value == "possible" for f in found["update.cve"])
    outdated = found["update.outdated"][0].evidence[0].data
    assert [c["id"] for c in outdated["ruled_out"]] == ["CVE-2023-48795"]
    # Without the measurement the same banner is a probable Terrapin match.
    bare = judge(device((22, "SSH-2.0-dropbear_2022.83")))
    probable = [f for f in bare["update.cve"] if f.confidence.value == "probable"]
    assert probable[0].evidence[0].data["cve"] == ["CVE-2023-48795"]
    assert "update.outdated" not in bare  # a probable CVE says more than "outdated"


def test_known_exploited_and_end_of_life() -> None:
    found = judge(device((443, "HTTP/1.0 200 OK | Server: Apache/2.2 OpenSSL/1.0.1f")))
    kev = found["update.known-exploited"][0]
    assert kev.evidence[0].data["cve"] == ["CVE-2014-0160"]
    assert kev.evidence[0].data["cves"][0]["kev_date_added"]
    assert kev.severity is Severity.CRITICAL and kev.confidence.value == "probable"
    eol = found["update.eol"][0].evidence[0].data
    assert (eol["branch"], eol["eol_date"]) == ("1.0.1", "2017-01-01")


def test_tls_probe_measurement_rules_out_heartbleed_on_that_port() -> None:
    tls_summary = evidence_finding(
        "tls.summary", 443, {"heartbleed": False, "ccs_injection": False}, "tls"
    )
    found = judge(device((443, "Server: Apache/2.2 OpenSSL/1.0.1f"), findings=[tls_summary]))
    assert "update.known-exploited" not in found
    ruled = {c["id"] for f in found["update.cve"] for c in f.evidence[0].data["ruled_out"]}
    assert ruled == {"CVE-2014-0160", "CVE-2014-0224"}


def test_goahead_kev() -> None:
    found = judge(device((80, "HTTP/1.0 200 OK | Server: GoAhead-Webs/3.6.4")))
    assert found["update.known-exploited"][0].evidence[0].data["cve"] == ["CVE-2017-17562"]


def test_version_from_probe_evidence_counts() -> None:
    mqtt_summary = evidence_finding(
        "mqtt.sys-exposed", 1883, {"broker_version": "mosquitto version 2.0.11"}, "mqtt"
    )
    found = judge(device((1883, ""), findings=[mqtt_summary]))
    ids = {c for f in found["update.cve"] for c in f.evidence[0].data["cve"]}
    assert "CVE-2023-0809" in ids
    critical = next(f for f in found["update.cve"] if f.confidence.value == "probable")
    assert critical.evidence[0].data["cvss"] == 10.0 and critical.port == 1883


def test_version_unknown_only_when_nothing_disclosed_one() -> None:
    found = judge(device((443, "HTTP/1.0 200 OK"), (80, "HTTP/1.0 200 OK | Server: GoAhead-Webs")))
    (unknown,) = found["update.version-unknown"]
    assert unknown.evidence[0].data["components_without_version"] == ["Embedthis GoAhead"]
    assert unknown.severity is Severity.INFO  # hiding versions is not a fault in itself
    assert judge(device((443, "HTTP/1.0 200 OK"), firmware="1.3.1 Build 240621")) == {}
    topics = evidence_finding("mqtt.summary", 1883, {"version_topics": {"f/fw": "04.02"}}, "mqtt")
    assert judge(device((1883, ""), findings=[topics])) == {}
    airplay = device((7000, "HTTP/1.0 200 OK | Server: AirTunes/377.40.00"))
    assert judge(airplay) == {}  # a version was disclosed, of software the dataset does not track


def test_correlate_adds_nothing_twice() -> None:
    dev = device((80, "Server: lighttpd/1.4.35"))
    first = update.UpdateProbe.correlate([dev])[dev.id]
    assert {f.check for f in first} == {"update.cve", "update.outdated"}
    again = dev.model_copy(update={"findings": first})
    assert update.UpdateProbe.correlate([again]) == {}


def test_run_checks_the_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dev = device((22, "SSH-2.0-dropbear_2022.83"))
    ctx = ProbeContext(address=dev.address, device=dev, service=None, policy=Policy.SAFE, timeout=5)
    assert asyncio.run(update.UpdateProbe().run(ctx)) == []
    assert update.UpdateProbe().applies(dev, None)
    assert not update.UpdateProbe().applies(dev, dev.services[0])
    monkeypatch.setenv(vulndb.ENV_DIR, str(tmp_path))
    with pytest.raises(ProbeFailed):
        asyncio.run(update.UpdateProbe().run(ctx))


def test_checks_are_in_the_rating_scheme() -> None:
    scheme = {c["id"]: c for c in yaml.safe_load(SCHEME.read_text())["checks"]}
    assert set(update.UpdateProbe.checks) == {c for c in scheme if c.startswith("update.")}
