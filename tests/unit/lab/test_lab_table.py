"""The reference lab without building it: unknown profiles and bad subnets refused, a missing
daemon named by its Debian package, and devices.yaml consistent with itself and the MAC
registry (the lab itself, seen from the scanner namespace: lab/test_lab.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotrate.errors import LabError
from iotrate.lab import core
from iotrate.lab import host as lab_host
from iotrate.lab.table import load_table, resolve_subnet

TABLE = load_table()
DEVICES = {d.name: d for d in TABLE.devices}


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(LabError, match="unknown profile"):
        core.lab_up(profile="nonsense")


@pytest.mark.parametrize("subnet", ["8.8.8.0/24", "10.0.0.0/28", "not-a-net", "fd00::/64"])
def test_bad_subnet_is_refused(subnet: str) -> None:
    with pytest.raises(LabError):
        resolve_subnet(subnet)


def test_subnet_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTRATE_LAB_SUBNET", "192.168.213.0/24")
    assert str(resolve_subnet(None)) == "192.168.213.0/24"


def test_a_missing_daemon_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = lab_host.shutil.which

    def which(cmd: str, path: str | None = None) -> str | None:
        return None if cmd == "dropbear" else real_which(cmd, path=path)

    monkeypatch.setattr(lab_host.shutil, "which", which)
    with pytest.raises(LabError, match="dropbear-bin"):
        lab_host.find_tools()


def test_macs_belong_to_the_named_makers() -> None:
    oui = Path("/usr/share/ieee-data/oui.txt")
    if not oui.exists():
        pytest.skip("ieee-data is not installed")
    registry = {
        line[:8].replace("-", ":").lower(): line.split("\t")[-1].strip().lower()
        for line in oui.read_text(encoding="utf-8", errors="replace").splitlines()
        if "(hex)" in line
    }
    for dev in TABLE.devices:
        maker = registry.get(dev.mac[:8])
        assert maker is not None, dev.name
        assert dev.vendor.lower().replace("-", "") in maker.replace("-", ""), (dev.name, maker)


def test_every_daemon_port_and_credential_is_consistent() -> None:
    for dev in TABLE.devices:
        assert {p.daemon for p in dev.ports} == {d.name for d in dev.daemons}, dev.name
        ports = {p.port for p in dev.ports}
        assert all(c.port in ports for c in dev.credentials), dev.name
    plug = DEVICES["plug"]
    assert plug.declaration and not plug.weaknesses and plug.expected_grade == "A"
