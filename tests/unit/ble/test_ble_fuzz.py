"""Fuzzing the Bluetooth parsers: whatever bytes a device advertises and whatever a recording
holds, only the module's own error may escape (ObservationError for a recording line,
BleFormatError for a value, nothing at all from the payload decoders), and facts stay bounded."""

from __future__ import annotations

from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.ble import uuid16

from iotrate.ble.adv import MAX_FACTS, MAX_TEXT, Advert, decode
from iotrate.ble.errors import BleFormatError
from iotrate.ble.live import observation_from
from iotrate.ble.observe import normalise_hex, normalise_uuid
from iotrate.ble.privacy import personal_details
from iotrate.identify import Identifier, ObservationError, parse_observation
from iotrate.identify.observations import BleObservation

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Payload heads the decoders branch on, so the fuzzer reaches the deep paths.
HEADS = [b"\x12\x19", b"\x12\x02", b"\x10\x05", b"\x10\x06", b"\x07\x19", b"\x09\x08", b"\x02\x15"]
companies = st.sampled_from([0x004C, 0x0157, 0x0006, 0x00DC, 0x0499, 0x0000, 0xFFFF, 0x1234])
services = st.sampled_from(
    ["feed", "fd5a", "fe33", "feaa", "180d", "181d", "181b", "1809", "1810", "fee0", "fe95"]
)
payload = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda h, b: h + b, st.sampled_from(HEADS), st.binary(max_size=40)),
)


@FUZZ
@given(
    mfr=st.dictionaries(companies, payload, max_size=3),
    svc=st.dictionaries(services.map(uuid16), payload, max_size=3),
    name=st.one_of(st.none(), st.text(max_size=300)),
    address=st.one_of(st.none(), st.sampled_from(["AA:BB:CC:DD:EE:FF", "FB:6D:08:3D:25:A4"])),
)
def test_decoders_never_raise_and_stay_bounded(
    mfr: dict[int, bytes], svc: dict[str, bytes], name: str | None, address: str | None
) -> None:
    out = decode(Advert(address=address, name=name, manufacturer_data=mfr, service_data=svc))
    assert len(out.facts) <= MAX_FACTS
    assert all(len(v) <= MAX_TEXT for _, v in out.facts)


json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ble_keys = st.sampled_from(
    [
        "address",
        "address_type",
        "name",
        "rssi",
        "manufacturer_data",
        "service_data",
        "service_uuids",
        "tx_power",
        "time",
    ]
)


@FUZZ
@given(st.dictionaries(ble_keys, json_value, max_size=9))
def test_recorded_lines_raise_only_observation_errors(fields: dict[str, Any]) -> None:
    try:
        obs = parse_observation({"device": "d", "kind": "ble", **fields})
    except ObservationError:
        return
    assert isinstance(obs, BleObservation)
    # A line that parses must identify (never crash).
    Identifier().identify_device("d", [obs])


@FUZZ
@given(st.one_of(json_value, st.binary(max_size=20)))
def test_value_normalisers_raise_only_their_error(value: object) -> None:
    for fn in (normalise_uuid, normalise_hex):
        try:
            fn(value)
        except BleFormatError:
            pass


@FUZZ
@given(st.text(max_size=400))
def test_name_checks_never_raise(name: str) -> None:
    for what, text in personal_details(name):
        assert what and text


@FUZZ
@given(
    mfr=st.dictionaries(st.integers(-5, 70000), st.binary(max_size=30), max_size=3),
    svc=st.dictionaries(st.text(max_size=40), st.binary(max_size=30), max_size=3),
    uuids=st.lists(st.text(max_size=40), max_size=3),
    name=st.one_of(st.none(), st.text(max_size=300)),
    rssi=st.integers(-300, 300),
)
def test_the_live_adapter_raises_only_observation_errors(
    mfr: dict[int, bytes], svc: dict[str, bytes], uuids: list[str], name: str | None, rssi: int
) -> None:
    adv = AdvertisementData(name, mfr, svc, uuids, None, rssi, ())
    try:
        obs = observation_from(BLEDevice("AA:BB:CC:DD:EE:FF", None, {}), adv, at=1.0)
    except ObservationError:
        return
    assert isinstance(obs, BleObservation)
