"""SSH probes against the lab camera's dropbear, run inside the scanner namespace by re-running this
file there (recorded bytes, the policy and scripted servers: unit/probes/test_probes_ssh.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from iotrate.probes import ssh, update
from iotrate.probes.base import Policy, ProbeContext

from iotrate.models import Device, Finding, Service


@pytest.mark.lab
def test_lab_camera_dropbear(lab: dict[str, Any]) -> None:
    cam = next(d for d in lab["devices"] if d["name"] == "camera")
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab["scanner"]["namespace"],
            sys.executable,
            __file__,
            cam["address"],
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(out.stdout)
    by: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        by.setdefault(f["check"], []).append(f)
    weak = by["ssh.algorithms.weak"][0]["evidence"][0]["data"]
    assert set(weak["algorithms"]) == {"diffie-hellman-group14-sha1", "hmac-sha1", "ssh-rsa"}
    assert weak["worst"] == "warn"
    pw = by["ssh.password-auth"][0]["evidence"][0]["data"]
    assert "password" in pw["methods"]
    summaries = [f["evidence"][0]["data"] for f in by["ssh.summary"]]
    assert any(s.get("software") == "dropbear_2022.83" and s.get("strict_kex") for s in summaries)
    assert any(str(s.get("host_key_sha256", "")).startswith("SHA256:") for s in summaries)
    # The version feeds the update status; strict kex rules Terrapin out.
    outdated = by["update.outdated"][0]["evidence"][0]["data"]
    assert outdated["component"] == "Dropbear SSH 2022.83" and outdated["latest"] == "2025.88"
    ruled_out = [c["id"] for c in outdated["ruled_out"]]
    assert ruled_out == ["CVE-2023-48795"]
    cve_ids = {c for f in by.get("update.cve", []) for c in f["evidence"][0]["data"]["cve"]}
    assert "CVE-2023-48795" not in cve_ids


def _main(address: str) -> None:
    """Scanner-namespace side: both SSH probes on port 22, then the update judgement (which
    reads the version from the probes' evidence, not from a banner given here)."""
    svc = Service(port=22, protocol="ssh", tls=False)
    dev = Device(id=address, address=address, services=[svc])
    ctx = ProbeContext(address=address, device=dev, service=svc, policy=Policy.SAFE, timeout=20)

    async def run() -> list[Finding]:
        return [*await ssh.SshAlgorithmsProbe().run(ctx), *await ssh.SshAuthProbe().run(ctx)]

    findings = asyncio.run(run())
    probed = dev.model_copy(update={"findings": findings})
    findings += update.UpdateProbe.correlate([probed]).get(address, [])
    print(json.dumps([f.model_dump(mode="json") for f in findings]))


if __name__ == "__main__":
    _main(sys.argv[1])
