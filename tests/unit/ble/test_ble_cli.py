"""``iotrate ble``: the live adapter's conversion of real bleak objects, the one-line failure
without an adapter (a real subprocess), and replay of a recording through the same pipeline."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from support.ble import findmy_separated, rotating_phone, travelling_airtag, uuid16
from support.executables import IOTRATE
from typer.testing import CliRunner

from iotrate.ble.live import KEEP_EVERY_S, Recorder, address_type_of, observation_from
from iotrate.cli import app
from iotrate.identify import ObservationError, read_observations
from iotrate.identify.observations import BleObservation

runner = CliRunner()


def adv(**over: object) -> AdvertisementData:
    fields: dict[str, object] = {
        "local_name": None,
        "manufacturer_data": {},
        "service_data": {},
        "service_uuids": [],
        "tx_power": None,
        "rssi": -60,
        "platform_data": (),
    }
    fields.update(over)
    return AdvertisementData(**fields)  # type: ignore[arg-type]


def bluez(address: str, kind: str | None) -> BLEDevice:
    props = {"AddressType": kind} if kind else {}
    return BLEDevice(address, None, {"path": "/org/bluez/hci0/dev_x", "props": props})


def test_bleak_objects_become_the_recorded_shape() -> None:
    key = bytes(range(22))
    obs = observation_from(
        bluez("FB:6D:08:3D:25:A4", "random"),
        adv(
            local_name="Tag",
            manufacturer_data={0x004C: bytes.fromhex(findmy_separated(key))},
            service_data={uuid16("feed"): b"\x02\x00" + bytes(8)},
            service_uuids=["0000FEED-0000-1000-8000-00805F9B34FB"],
            tx_power=4,
            rssi=-80,
        ),
        at=12.3456,
    )
    assert isinstance(obs, BleObservation)
    assert obs.address_type == "random_static"  # 0xFB: top bits 11
    assert obs.manufacturer_data == {"76": findmy_separated(key)}
    assert obs.service_data == {uuid16("feed"): "0200" + "00" * 8}
    assert obs.service_uuids == [uuid16("feed")]
    assert (obs.name, obs.rssi, obs.tx_power, obs.time) == ("Tag", -80, 4, 12.346)
    # Grouped by the tracker's broadcast identifier, not by its (rotating) address.
    assert obs.device.startswith("ble:Apple Find My:")
    # What the adapter records is what a recording holds: it reads back unchanged.
    line = json.dumps(obs.model_dump(mode="json"))
    assert read_observations([line]).observations == [obs]


def test_address_kinds_from_bluez() -> None:
    assert address_type_of("AA:BB:CC:DD:EE:FF", {"props": {"AddressType": "public"}}) == "public"
    assert address_type_of("4B:00:00:00:00:01", {"props": {"AddressType": "random"}}) == (
        "random_private_resolvable"
    )
    assert address_type_of("0B:00:00:00:00:01", {"props": {"AddressType": "random"}}) == (
        "random_private_nonresolvable"
    )
    assert address_type_of("ABCD-UUID", None) == "unknown"
    plain = observation_from(bluez("AA:BB:CC:DD:EE:FF", None), adv(), at=0)
    assert plain.device == "ble:AA:BB:CC:DD:EE:FF" and plain.address_type == "unknown"


def test_hostile_advertisements_are_refused_cleanly() -> None:
    with pytest.raises(ObservationError):
        observation_from(bluez("AA:BB:CC:DD:EE:FF", None), adv(rssi=-9999), at=0)
    with pytest.raises(ObservationError):
        observation_from(
            bluez("AA:BB:CC:DD:EE:FF", None), adv(service_data={"<script>": b"\x00"}), at=0
        )
    huge = observation_from(
        bluez("AA:BB:CC:DD:EE:FF", None), adv(local_name="<b>" + "x" * 5000), at=0
    )
    assert huge.name is not None and len(huge.name) == 248


def test_the_recorder_keeps_changes_and_a_sample_of_repeats() -> None:
    rec = Recorder()
    dev = bluez("AA:BB:CC:DD:EE:FF", "public")
    for i in range(100):
        rec.add(observation_from(dev, adv(rssi=-50 - i % 20), at=i * 0.5))
    assert len(rec.observations) == 1 + int(49.5 // KEEP_EVERY_S)
    rec.add(observation_from(dev, adv(local_name="renamed"), at=50.0))
    assert rec.observations[-1].name == "renamed"


def test_no_adapter_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-bus"}
    proc = subprocess.run(
        [IOTRATE, "ble", "scan", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("iotrate: no Bluetooth adapter/BlueZ found (")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_seconds_and_follow_together_is_a_usage_error() -> None:
    res = runner.invoke(app, ["ble", "scan", "--seconds", "5", "--follow", "20"])
    assert res.exit_code == 2


def test_replay_rates_a_recording_like_a_live_scan(tmp_path: Path) -> None:
    rec = tmp_path / "walk.jsonl"
    rec.write_text(
        "".join(json.dumps(o) + "\n" for o in travelling_airtag() + rotating_phone()),
        encoding="utf-8",
    )
    res = runner.invoke(app, ["ble", "replay", str(rec), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    devices = {d["id"]: d for d in result["devices"]}
    assert result["discovery_mode"] == "ble-passive"
    assert devices["tag"]["transport"] == "bluetooth"
    assert devices["tag"]["rating"]["grade"] == "E"
    assert "ble.tracker.following" in [f["check"] for f in devices["tag"]["findings"]]
    assert "ble.address.stable" not in [f["check"] for f in devices["phone"]["findings"]]
    table = runner.invoke(app, ["ble", "replay", str(rec)])
    assert table.exit_code == 0 and "Warning:" in table.stdout and "Bluetooth LE" in table.stdout


def test_replay_reports_bad_lines(tmp_path: Path) -> None:
    rec = tmp_path / "bad.jsonl"
    rec.write_text('{"device": "a", "kind": "ble", "rssi": "loud"}\n', encoding="utf-8")
    res = runner.invoke(app, ["ble", "replay", str(rec)])
    assert res.exit_code == 2 and "line 1" in res.stderr
    missing = runner.invoke(app, ["ble", "replay", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
