"""Exposed-service probes against the lab's real daemons (the scripted loopback servers:
unit/probes/test_probes_services.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.probes import device as make_device

from iotrate.models import Device, OutcomeStatus

LAB_RUN = """
import asyncio, json
from iotrate.models import Device
from iotrate.probes import registry
from iotrate.probes.base import Policy
from iotrate.probing import ProbeRunner, RunnerOptions
devices = [Device.model_validate(d) for d in json.loads({devices!r})]
probes = [p for p in registry(include_plugins=False).probes if p.id.startswith("svc.")]
runner = ProbeRunner(probes, RunnerOptions(policy=Policy.INTRUSIVE))
print(json.dumps([d.model_dump(mode="json") for d in asyncio.run(runner.run(devices))]))
"""


@pytest.mark.lab
def test_lab_exposed_services(lab: dict[str, Any], in_scanner: Any) -> None:
    ports = {d["name"]: d for d in lab["devices"]}
    # Service names in devices.yaml -> the protocol names discovery gives those ports.
    protocol = {"upnp-http": "upnp", "cast-tls": "castv2"}
    devices = [
        make_device(
            *[(p["port"], p["transport"], protocol.get(p["service"], p["service"]))
              for p in dev["ports"]]
        ).model_copy(update={"id": name, "address": dev["address"],
                             "addresses": [dev["address"]]}).model_dump(mode="json")
        for name, dev in ports.items()
    ]  # fmt: skip
    out = in_scanner(LAB_RUN.format(devices=json.dumps(devices)), timeout=120)
    found = {d["id"]: Device.model_validate(d) for d in out}

    def has(name: str) -> set[str]:
        return {f.check for f in found[name].findings}

    assert {"svc.adb.unauthenticated", "svc.api.unauthenticated"} <= has("tv")
    adb = next(f for f in found["tv"].findings if f.check == "svc.adb.unauthenticated")
    assert adb.evidence[0].data["model"] == "55P8"
    assert {"svc.telnet", "svc.http.admin-cleartext", "svc.mqtt.cleartext"} <= has("fridge")
    assert {"svc.rtsp.unauthenticated", "svc.http.admin-cleartext"} <= has("camera")
    snmp = next(f for f in found["hub"].findings if f.check == "svc.snmp.readable")
    assert snmp.evidence[0].data["community"] == "public"
    # snmpd's rwcommunity "private": the SET of sysContact (written back unchanged) worked;
    # public, a rocommunity, was never the one that wrote.
    (w,) = [f for f in found["hub"].findings if f.check == "svc.snmp.writable"]
    assert w.evidence[0].data["community"] == "private" and w.confidence.value == "confirmed"
    eureka = next(f for f in found["speaker"].findings if f.check == "svc.api.unauthenticated")
    assert eureka.evidence[0].data["path"] == "/setup/eureka_info"
    assert [f.check for f in found["plug"].findings if f.severity.value != "info"] == []
    failed = [(n, o.probe, o.reason) for n, d in found.items() for o in d.outcomes
              if o.status is OutcomeStatus.FAILED]  # fmt: skip
    assert failed == []
