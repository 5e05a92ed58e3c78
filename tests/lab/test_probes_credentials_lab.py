"""Default-credential probes in the lab: the planted defaults found from the list alone, with no
password in the evidence (the scripted loopback servers: unit/probes/test_probes_credentials.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.probes import (
    device,
)

from iotrate import lab as lab_api
from iotrate.models import Device, OutcomeStatus

LAB_RUN = """
import asyncio, json
from iotrate.models import Device, Service, Transport
from iotrate.probes import registry
from iotrate.probes.base import Policy
from iotrate.probing import ProbeRunner, RunnerOptions
devices = json.loads({devices!r})
probes = [p for p in registry(include_plugins=False).probes if p.id.startswith({prefixes!r})]
runner = ProbeRunner(probes, RunnerOptions(policy=Policy({policy!r})))
out = asyncio.run(runner.run([Device.model_validate(d) for d in devices]))
print(json.dumps([d.model_dump(mode="json") for d in out]))
"""


LAB_SERVICES = {
    "fridge": [(23, "tcp", "telnet"), (80, "tcp", "http"), (1883, "tcp", "mqtt")],
    "camera": [(22, "tcp", "ssh"), (80, "tcp", "http"), (554, "tcp", "rtsp")],
    "hub": [(443, "tcp", "https"), (161, "udp", "snmp")],
    "plug": [(443, "tcp", "https")],
}


def lab_devices(lab: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Devices as discovery reports them (address + services): no credentials, no vendor."""
    by_name = {d["name"]: d for d in lab["devices"]}
    return [
        device(*LAB_SERVICES[n])
        .model_copy(update={"id": n, "address": by_name[n]["address"],
                            "addresses": [by_name[n]["address"]]})
        .model_dump(mode="json")
        for n in names
    ]  # fmt: skip


def run_in_lab(in_scanner: Any, lab: dict[str, Any], names: list[str], prefixes: tuple[str, ...],
               policy: str = "default") -> dict[str, Device]:  # fmt: skip
    code = LAB_RUN.format(devices=json.dumps(lab_devices(lab, names)), prefixes=prefixes,
                          policy=policy)  # fmt: skip
    return {d["id"]: Device.model_validate(d) for d in in_scanner(code, timeout=120)}


@pytest.mark.lab
def test_lab_default_credentials_found_from_the_list(lab: dict[str, Any], in_scanner: Any) -> None:
    # The lab may have been rebuilt since the session began (test_lab does): ask it now.
    dropbear = Path(lab_api.lab_status()["temp_dir"]) / "logs" / "camera-dropbear.log"
    before = dropbear.read_text()
    found = run_in_lab(in_scanner, lab, ["fridge", "camera", "hub", "plug"], ("cred.",))
    # The daemon's own log agrees: failed attempts, then the one that worked.
    logged = dropbear.read_text()[len(before) :]
    assert "Bad password attempt for 'root'" in logged
    assert "Password auth succeeded for 'root'" in logged
    creds = {
        (n, f.evidence[0].data["protocol"], f.evidence[0].data["username"])
        for n, d in found.items()
        for f in d.findings
        if f.check == "cred.default-password"
    }
    assert creds == {
        ("fridge", "telnet", "root"),
        ("fridge", "http-basic", "admin"),
        ("camera", "ssh", "root"),
        ("hub", "snmp", "public"),
        ("hub", "snmp", "private"),
    }
    hub = found["hub"].findings
    assert all(f.evidence[0].data["universal"] for f in hub if f.check == "cred.default-password")
    # default policy: no SET sent, so private's write access is probable, not confirmed
    (w,) = [f for f in hub if f.check == "svc.snmp.writable"]
    assert w.confidence.value == "probable"
    assert "svc.mqtt.anonymous" in {f.check for f in found["fridge"].findings}
    # Passwords never appear in the evidence: only the redacted hint.
    planted = {c["password"] for d in lab["devices"] for c in d["credentials"] if c["password"]}
    for d in found.values():
        for f in d.findings:
            if f.check == "cred.default-password":
                data = f.evidence[0].data
                assert data["password"].endswith("***") and data["password"] not in planted
                text = json.dumps(f.model_dump(mode="json")["evidence"])
                user = data["username"]
                scrubbed = text.replace(f'"{user}"', "").replace(f"'{user}'", "")
                assert not any(p in scrubbed for p in planted if len(p) > 1), scrubbed
    assert all(o.status is not OutcomeStatus.FAILED for d in found.values() for o in d.outcomes)
    assert [f for f in found["plug"].findings if f.severity.value != "info"] == []


@pytest.mark.lab
def test_lab_safe_mode_sends_no_login(lab: dict[str, Any], in_scanner: Any) -> None:
    """Server-side proof from dropbear's own log, which records every connection and every
    password attempt, unbuffered: in safe mode not one connection reaches it (the default run in
    the test above shows the same log recording the attempts)."""
    # The lab may have been rebuilt since the session began (test_lab does): ask it now.
    dropbear = Path(lab_api.lab_status()["temp_dir"]) / "logs" / "camera-dropbear.log"
    before = dropbear.read_text()
    found = run_in_lab(in_scanner, lab, ["fridge", "camera"], ("cred.", "svc."), "safe")
    new = dropbear.read_text()[len(before) :]
    assert new == "", new
    status = {(n, o.probe): o.status for n, d in found.items() for o in d.outcomes}
    skipped, na = OutcomeStatus.SKIPPED_BY_POLICY, OutcomeStatus.NOT_APPLICABLE
    assert status[("fridge", "cred.telnet")] is skipped
    assert status[("fridge", "cred.http")] is skipped  # it answers 401: a login to skip
    assert status[("fridge", "cred.mqtt")] is skipped
    assert status[("camera", "cred.ssh")] is skipped
    # The passive precheck: nothing there asks for a password, so nothing was skipped.
    assert status[("camera", "cred.http")] is na and status[("camera", "cred.rtsp")] is na
    assert not [f for d in found.values() for f in d.findings if f.check.startswith("cred.")]
