"""The ``ble`` observation kind: the issue's shape, one spelling per value, hostile values refused
with the line they are on, device strings kept as text (never interpreted)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.ble import shared_ble_or_skip

from iotrate.ble.errors import BleFormatError
from iotrate.ble.observe import MAX_NAME, MAX_PAYLOAD_BYTES, normalise_uuid, short_uuid
from iotrate.identify import ObservationError, parse_observation, read_observations
from iotrate.identify.observations import BleObservation


def ble(**fields: Any) -> dict[str, Any]:
    return {"device": "d", "kind": "ble", **fields}


def test_the_documented_shape_parses_and_normalises() -> None:
    obs = parse_observation(
        ble(
            address="aa-bb-cc-dd-ee-ff",
            address_type="public",
            name="Mi Smart Band 4",
            rssi=-71,
            manufacturer_data={"343": "02020154FF", "0x004C": "12 02 54 02"},
            service_data={"FEE0": "0b000000", "0x181D": "022044"},
            service_uuids=["fee0", "0000FEED-0000-1000-8000-00805F9B34FB", 0x180D],
            tx_power=9,
            time=12.5,
            source="ignored context",
        )
    )
    assert isinstance(obs, BleObservation)
    assert obs.address == "AA:BB:CC:DD:EE:FF" and obs.address_type == "public"
    assert obs.manufacturer_data == {"343": "02020154ff", "76": "12025402"}
    assert set(obs.service_data) == {
        "0000fee0-0000-1000-8000-00805f9b34fb",
        "0000181d-0000-1000-8000-00805f9b34fb",
    }
    assert [short_uuid(u) for u in obs.service_uuids] == ["fee0", "feed", "180d"]
    assert (obs.rssi, obs.tx_power, obs.time) == (-71, 9, 12.5)


def test_absent_and_null_keys_take_their_defaults() -> None:
    obs = parse_observation(ble(manufacturer_data=None, service_uuids=None, address_type=None))
    assert isinstance(obs, BleObservation)
    assert obs.address is None and obs.address_type == "unknown"
    assert obs.manufacturer_data == {} and obs.service_uuids == [] and obs.time is None
    # macOS hides addresses behind a per-host UUID; that is an address too.
    mac_os = parse_observation(ble(address="61de521b-f0bf-9f44-64d4-75bbe1738105"))
    assert isinstance(mac_os, BleObservation)
    assert mac_os.address == "61DE521B-F0BF-9F44-64D4-75BBE1738105"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"manufacturer_data": {"76": "123"}}, "odd number"),
        ({"manufacturer_data": {"76": "zz"}}, "not hex"),
        ({"manufacturer_data": {"76": "00" * (MAX_PAYLOAD_BYTES + 1)}}, "longer than"),
        ({"manufacturer_data": {"76": "0" * 10_000_000}}, "longer than"),
        ({"manufacturer_data": {"70000": "00"}}, "out of range"),
        ({"manufacturer_data": {"apple": "00"}}, "not a company id"),
        ({"manufacturer_data": {str(i): "00" for i in range(40)}}, "more than"),
        ({"manufacturer_data": ["76", "00"]}, "must be an object"),
        ({"service_data": {"not-a-uuid": "00"}}, "not a UUID"),
        ({"service_data": {"x" * 5000: "00"}}, "not a UUID"),
        ({"service_uuids": ["feed", "0000feed-zzzz"]}, "not a UUID"),
        ({"service_uuids": "feed"}, "must be a list"),
        ({"service_uuids": [True]}, "true or false"),
        ({"address": "not an address"}, "not a Bluetooth address"),
        ({"address": 42}, "must be a string"),
        ({"address_type": "random"}, "address_type must be one of"),
        ({"rssi": -500}, "out of range"),
        ({"rssi": True}, "must be a number"),
        ({"rssi": -60.5}, "whole number"),
        ({"time": float("nan")}, "out of range"),
        ({"time": -1}, "out of range"),
        ({"time": "yesterday"}, "must be a number"),
        ({"name": ["a"]}, "must be a string"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ObservationError) as exc:
        parse_observation(ble(**fields), line=7)
    assert "line 7" in str(exc.value) and message in str(exc.value)


def test_a_bad_line_is_reported_and_the_rest_of_the_recording_read() -> None:
    lines = [
        json.dumps(ble(manufacturer_data={"76": "1219"})),
        json.dumps(ble(service_data={"feed": "0x12345"})),
        json.dumps(ble(name="ok")),
    ]
    res = read_observations(lines)
    assert len(res.observations) == 2 and [e.line for e in res.errors] == [2]
    assert not res.warnings  # ble is a known kind now


def test_hostile_names_are_kept_as_bounded_text() -> None:
    name = "<script>alert(1)</script>\x1b[31m" + "x" * 1000
    obs = parse_observation(ble(name=name))
    assert isinstance(obs, BleObservation) and obs.name is not None
    assert obs.name.startswith("<script>") and len(obs.name) == MAX_NAME


def test_uuid_forms() -> None:
    assert normalise_uuid("FEED") == normalise_uuid(0xFEED) == normalise_uuid("0xfeed")
    assert normalise_uuid("0000feed") == "0000feed-0000-1000-8000-00805f9b34fb"
    assert normalise_uuid("6E400001B5A3F393E0A9E50E24DCCA9E").startswith("6e400001-b5a3-")
    assert short_uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e") is None
    for bad in ("", "fee", "g" * 4, "0x", 2**40, -1, None, 1.5):
        with pytest.raises(BleFormatError):
            normalise_uuid(bad)


def test_the_real_fixtures_read_without_errors() -> None:
    folder = shared_ble_or_skip()
    with (folder / "observations.jsonl").open(encoding="utf-8") as fh:
        res = read_observations(fh)
    assert not res.errors, res.errors[:3]
    assert len({o.device for o in res.observations}) >= 100
    assert all(isinstance(o, BleObservation) for o in res.observations)
