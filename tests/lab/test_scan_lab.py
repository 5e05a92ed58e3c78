"""End to end on the reference lab: the scan from the scanner namespace finds every device
with exactly the ports its real daemons listen on; refusals hold inside an empty namespace."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE
from support.hosts import lo_tx_packets

from iotrate.models import ScanResult

pytestmark = pytest.mark.lab


def lab_scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IOTRATE, "lab", "exec", "--", IOTRATE, "scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def scanned(lab: dict[str, Any]) -> ScanResult:
    res = lab_scan(lab["subnet"], "--json")
    assert res.returncode == 0, res.stderr
    return ScanResult.model_validate_json(res.stdout)


def test_every_lab_device_found_with_its_ports(lab: dict[str, Any], scanned: ScanResult) -> None:
    found = {d.address: d for d in scanned.devices}
    scanner = lab["scanner"]["address"]
    assert set(found) - {scanner} == {d["address"] for d in lab["devices"]}
    for dev in lab["devices"]:
        got = found[dev["address"]]
        expect = {(p["port"], p["transport"]) for p in dev["ports"]}
        seen = {(s.port, s.transport.value) for s in got.services}
        # Every TCP port a daemon opens is found; UDP is found where iotrate has a hello for it.
        tcp_expect = {e for e in expect if e[1] == "tcp"}
        assert tcp_expect <= seen, (dev["name"], tcp_expect - seen)
        assert seen <= expect, (dev["name"], "phantom ports", seen - expect)
        assert got.mac == dev["mac"].lower()


def test_banners_and_tls_come_from_the_real_daemons(
    lab: dict[str, Any], scanned: ScanResult
) -> None:
    by_name = {d["name"]: d["address"] for d in lab["devices"]}
    found = {d.address: d for d in scanned.devices}

    def svc(name: str, port: int, transport: str = "tcp") -> Any:
        return next(
            s
            for s in found[by_name[name]].services
            if s.port == port and s.transport.value == transport
        )

    assert svc("camera", 22).banner == "SSH-2.0-dropbear_2022.83"
    assert svc("camera", 21).protocol == "ftp" and svc("camera", 21).banner.startswith("220 ")
    assert svc("camera", 22).protocol == "ssh"
    assert svc("fridge", 23).protocol == "telnet"
    assert svc("fridge", 80).protocol == "http" and "401" in svc("fridge", 80).banner
    assert svc("hub", 443).tls is True
    assert svc("plug", 443).tls is True and svc("plug", 443).protocol == "https"
    assert svc("camera", 554).protocol == "rtsp"
    assert svc("hub", 161, "udp").protocol == "snmp"


def test_table_output(lab: dict[str, Any]) -> None:
    res = lab_scan(lab["subnet"])
    assert res.returncode == 0, res.stderr
    for dev in lab["devices"]:
        assert dev["address"] in res.stdout


def test_outside_address_is_unreachable_from_the_scanner(lab: dict[str, Any]) -> None:
    """A mistaken private target outside the lab fails inside the namespace, sends nothing out."""
    res = lab_scan("192.0.2.1", "--json")
    assert res.returncode == 0
    assert ScanResult.model_validate_json(res.stdout).devices == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["8.8.8.0/24"], "public"),
        (["10.0.0.0/8"], "more than 1024"),
        ([], "no default route"),
    ],
)
def test_refusals_inside_an_empty_namespace(
    empty_netns: str, args: list[str], message: str
) -> None:
    before = lo_tx_packets(empty_netns)
    res = subprocess.run(
        ["ip", "netns", "exec", empty_netns, IOTRATE, "scan", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert lo_tx_packets(empty_netns) == before


def test_lab_grades_hold(lab: dict[str, Any], scanned: ScanResult) -> None:
    """The device table's expected grades, from a real scan of the real daemons."""
    found = {d.address: d for d in scanned.devices}
    for dev in lab["devices"]:
        rating = found[dev["address"]].rating
        assert rating is not None and rating.grade is not None, dev["name"]
        if dev["name"] == "plug":
            # Without its manufacturer declaration the plug cannot earn A, nor fall below B.
            assert rating.grade == "B", rating.reasons
        else:
            assert rating.grade == dev["expected_grade"], (dev["name"], rating.reasons)


def test_plug_earns_a_with_its_declaration(
    lab: dict[str, Any], scanned: ScanResult, tmp_path: Path
) -> None:
    plug = next(d for d in lab["devices"] if d["name"] == "plug")
    src = tmp_path / "scan.json"
    src.write_text(scanned.model_dump_json())
    decl = Path(__file__).resolve().parents[2] / "iotrate/lab/declarations/plug.yaml"
    res = subprocess.run(
        [
            IOTRATE,
            "rate",
            str(src),
            "--declaration",
            str(decl),
            "--device",
            plug["address"],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    rated = ScanResult.model_validate_json(res.stdout)
    grades = {d.address: d.rating.grade for d in rated.devices if d.rating}
    assert grades[plug["address"]] == "A"


def test_planted_weaknesses_found_with_evidence(lab: dict[str, Any], scanned: ScanResult) -> None:
    by_name = {d["name"]: d["address"] for d in lab["devices"]}
    found = {d.address: d for d in scanned.devices}

    def checks(name: str) -> set[str]:
        return {f.check for f in found[by_name[name]].findings}

    assert {"cred.default-password", "svc.telnet", "svc.mqtt.anonymous"} <= checks("fridge")
    assert {"cred.default-password", "svc.rtsp.unauthenticated"} <= checks("camera")
    assert {"svc.ftp", "svc.ftp.anonymous"} <= checks("camera")
    assert {"tls.protocol.obsolete", "tls.cert.expired", "tls.cert.weak-key"} <= checks("hub")
    assert {"svc.snmp.readable", "cred.default-password"} <= checks("hub")
    assert {"svc.adb.unauthenticated", "update.cve"} <= checks("tv")
    plug = found[by_name["plug"]]
    assert all(f.severity.value == "info" for f in plug.findings if not f.check.startswith("decl."))
    for d in scanned.devices:
        for f in d.findings:
            assert f.evidence or f.check.startswith("decl."), (d.address, f.check)
    # Passwords never appear in the result, only a redacted hint.
    for d in scanned.devices:
        for f in d.findings:
            if f.check == "cred.default-password":
                for e in f.evidence:
                    assert str(e.data["password"]).endswith("***"), e.data
                    assert len(str(e.data["password"])) <= 4


def test_identification_in_the_scan(lab: dict[str, Any], scanned: ScanResult) -> None:
    by_name = {d["name"]: d for d in lab["devices"]}
    found = {d.address: d for d in scanned.devices}
    speaker = found[by_name["speaker"]["address"]]
    assert speaker.category == "speaker" and speaker.vendor == "Google"
    assert "mdns" in speaker.sources and speaker.identity and speaker.identity.evidence
    assert found[by_name["tv"]["address"]].category == "tv"
    assert found[by_name["camera"]["address"]].category == "camera"
    # These two announce nothing: their probes' evidence (SNMP sysDescr, certificate) names them.
    assert found[by_name["hub"]["address"]].category == "hub"
    assert found[by_name["plug"]["address"]].category == "plug"
    assert scanned.discovery_mode == "arp + tcp-connect"


def test_nmap_deepens_services(lab: dict[str, Any]) -> None:
    camera = next(d for d in lab["devices"] if d["name"] == "camera")
    res = lab_scan(camera["address"], "--nmap", "--safe", "--json")
    assert res.returncode == 0, res.stderr
    (dev,) = ScanResult.model_validate_json(res.stdout).devices
    ssh = next(s for s in dev.services if s.port == 22)
    assert ssh.product and "dropbear" in ssh.product.lower()
    assert ssh.version and ssh.version[0].isdigit()
    assert "nmap" in dev.sources and dev.os_guess  # -O runs: the lab scan is root
