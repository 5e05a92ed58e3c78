"""MQTT probe against the lab fridge's mosquitto, run inside the scanner namespace by re-running
this file there (the scripted brokers: unit/probes/test_probes_mqtt.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from iotrate.probes import mqtt, update
from iotrate.probes.base import Policy, ProbeContext

from iotrate.models import Device, Service


@pytest.mark.lab
def test_lab_fridge_mosquitto(lab: dict[str, Any]) -> None:
    fridge = next(d for d in lab["devices"] if d["name"] == "fridge")
    out = subprocess.run(
        ["ip", "netns", "exec", lab["scanner"]["namespace"], sys.executable, __file__,
         fridge["address"]],
        capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    found: dict[str, list[dict[str, Any]]] = {}
    for f in json.loads(out.stdout):
        found.setdefault(f["check"], []).append(f)
    summary = found["mqtt.summary"][0]["evidence"][0]["data"]
    retained = set(fridge["settings"]["mqtt_retained"])
    assert retained <= set(summary["topics"])
    assert summary["anonymous"] is True and summary["retained"] >= len(retained)
    assert summary["version_topics"] == {"fridge/firmware": "04.02.13"}
    sys_data = found["mqtt.sys-exposed"][0]["evidence"][0]["data"]
    assert sys_data["broker_version"].startswith("mosquitto version 2.0.")
    # The broker version feeds the update status (Debian 12 ships mosquitto 2.0.11).
    cves = {c for f in found["update.cve"] for c in f["evidence"][0]["data"]["cve"]}
    assert "CVE-2023-0809" in cves


def _main(address: str) -> None:
    """Scanner-namespace side: the MQTT probe on 1883, then the update judgement."""
    svc = Service(port=1883, protocol="mqtt", tls=False)
    dev = Device(id=address, address=address, services=[svc])
    ctx = ProbeContext(address=address, device=dev, service=svc, policy=Policy.SAFE, timeout=20)
    findings = asyncio.run(mqtt.MqttProbe().run(ctx))
    probed = dev.model_copy(update={"findings": findings})
    findings += update.UpdateProbe.correlate([probed]).get(address, [])
    print(json.dumps([f.model_dump(mode="json") for f in findings]))


if __name__ == "__main__":
    _main(sys.argv[1])
