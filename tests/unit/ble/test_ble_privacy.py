"""The Bluetooth privacy checks on recordings that span time, built from the real formats, and
their rating through scheme 2026.2 (IP devices unchanged from 2026.1)."""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

import pytest
from iotrate.rating_schema import SCHEME_DIR
from iotrate.rating_schema.loader import load_scheme
from support.ble import (
    APPLE,
    address,
    capture,
    findmy_near_owner,
    heart_rate,
    observation,
    rotating_phone,
    tile,
    travelling_airtag,
    weight_kg,
)

from iotrate.ble.devices import capture_result
from iotrate.ble.privacy import (
    CHECK_DATA,
    CHECK_NAME,
    CHECK_STABLE,
    CHECK_TRACKER,
    personal_details,
)
from iotrate.identify import read_observations
from iotrate.models import (
    CategoryStatus,
    Device,
    Finding,
    OutcomeStatus,
    ProbeOutcome,
    Severity,
)
from iotrate.rating import rate


def rated(*recordings: list[dict[str, Any]]) -> dict[str, Device]:
    lines = [json.dumps(o) for rec in recordings for o in rec]
    read = read_observations(lines)
    assert not read.errors, read.errors
    result = capture_result(read.observations)
    return {d.id: d for d in result.devices}


def checks(device: Device) -> dict[str, Finding]:
    return {f.check: f for f in device.findings if f.check.startswith("ble.")}


def status(device: Device, check: str) -> OutcomeStatus:
    (outcome,) = [o for o in device.outcomes if check in o.checks]
    return outcome.status


def test_a_separated_tracker_travelling_for_30_minutes_is_reported() -> None:
    tag = rated(travelling_airtag(minutes=30))["tag"]
    found = checks(tag)
    assert tag.category == "tracker" and tag.transport == "bluetooth"
    f = found[CHECK_TRACKER]
    assert f.confidence.value == "confirmed" and f.severity is Severity.HIGH
    assert f.evidence[0].data["network"] == "Apple Find My"
    assert f.evidence[0].data["minutes"] == 30.0
    assert "may be following you" in f.evidence[0].summary
    assert f.remediation and "Identify Found Item" in f.remediation
    assert "ETSI EN 303 645 6-2" in f.standards
    # A separated AirTag keeps its address for a day: it can be followed, too.
    assert found[CHECK_STABLE].evidence[0].data["identifier"] == "address"
    assert tag.rating is not None and tag.rating.grade == "E"
    assert "tracker-following" in [c.cap for c in tag.rating.caps]


def test_signal_strength_does_not_matter_but_presence_does() -> None:
    weak = travelling_airtag(minutes=30)
    for o in weak:
        o["rssi"] = -99
    assert CHECK_TRACKER in checks(rated(weak)["tag"])
    # Heard only at the start and the end of a 30-minute capture: not travelling with you.
    gappy = [o for o in travelling_airtag(minutes=30) if o["time"] < 1300 or o["time"] > 2500]
    dev = rated(gappy)["tag"]
    assert CHECK_TRACKER not in checks(dev) and status(dev, CHECK_TRACKER) is OutcomeStatus.RAN


def test_a_short_capture_leaves_the_time_checks_unknown() -> None:
    tag = rated(travelling_airtag(minutes=5))["tag"]
    assert CHECK_TRACKER not in checks(tag) and CHECK_STABLE not in checks(tag)
    assert status(tag, CHECK_TRACKER) is OutcomeStatus.FAILED
    assert status(tag, CHECK_STABLE) is OutcomeStatus.FAILED
    assert tag.rating is not None and tag.rating.coverage is not None
    assert set(tag.rating.coverage.checks_unknown) == {CHECK_STABLE, CHECK_TRACKER}


def test_rotating_private_addresses_are_not_a_stable_address() -> None:
    phone = rated(rotating_phone(minutes=30, rotate_s=13 * 60))["phone"]
    assert len(phone.addresses) >= 3
    assert CHECK_STABLE not in checks(phone)
    assert status(phone, CHECK_STABLE) is OutcomeStatus.RAN  # judged, and passed
    assert status(phone, CHECK_TRACKER) is OutcomeStatus.NOT_APPLICABLE
    # The same phone keeping each address for 20 minutes is trackable.
    slow = rated(rotating_phone(minutes=30, rotate_s=20 * 60))["phone"]
    assert checks(slow)[CHECK_STABLE].evidence[0].data["minutes"] >= 15


def test_an_owner_nearby_tracker_and_a_tile_with_an_unknown_owner() -> None:
    rng = random.Random(5)
    near = list(
        capture(
            "near",
            lambda t: {
                "address": address(0b11, rng),
                "address_type": "random_static",
                "manufacturer_data": {APPLE: findmy_near_owner()},
            },
        )
    )
    tag = list(
        capture("tile", lambda t: {"service_data": tile(b"\x01\x02\x03\x04\x05\x06\x07\x08")})
    )
    devices = rated(near, tag)
    assert CHECK_TRACKER not in checks(devices["near"])
    assert status(devices["near"], CHECK_TRACKER) is OutcomeStatus.RAN
    found = checks(devices["tile"])
    assert found[CHECK_TRACKER].confidence.value == "probable"
    assert found[CHECK_STABLE].evidence[0].data["identifier"] == "Tile identifier"


def test_a_public_address_is_stable_at_once() -> None:
    one = [
        observation(
            "band",
            0,
            address="C8:47:8C:C0:95:89",
            address_type="public",
            manufacturer_data={"343": "c8478cc09589"},
        )
    ]
    found = checks(rated(one)["band"])
    assert found[CHECK_STABLE].evidence[0].data["address_type"] == "public"


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("Anna's AirPods", "a person's name"),
        ("Anna\u2019s Apple Watch", "a person's name"),
        ("iPhone de Marie", "a person's name"),
        ("AirPods von Jan", "a person's name"),
        ("jo.doe@example.org", "an e-mail address"),
        ("Call +44 7700 900123", "a phone number"),
        ("06 12 34 56 78", "a phone number"),
    ],
)
def test_personal_names(name: str, what: str) -> None:
    assert what in [w for w, _ in personal_details(name)]
    obs = [observation("d", 0, name=name)]
    finding = checks(rated(obs)["d"])[CHECK_NAME]
    assert what in finding.evidence[0].data["details"]


@pytest.mark.parametrize(
    "name", ["Mi Smart Band 4", "Polar H10 8A1B2C3D", "GVH5102_CB9B", "Apple's", "P T EN 80906F"]
)
def test_product_names_are_not_personal(name: str) -> None:
    assert personal_details(name) == []


def test_health_data_without_pairing() -> None:
    hr = [observation("hrm", 0, service_data=heart_rate(72), service_uuids=["180d"])]
    scale = [observation("scale", 0, service_data=weight_kg(81.4))]
    devices = rated(hr, scale)
    f = checks(devices["hrm"])[CHECK_DATA]
    assert f.evidence[0].data["data"] == ["heart rate"] and "72 bpm" in f.evidence[0].summary
    assert "81.4 kg" in checks(devices["scale"])[CHECK_DATA].evidence[0].summary
    rating = devices["hrm"].rating
    assert rating is not None and "health-data-broadcast" in [c.cap for c in rating.caps]
    assert rating.grade in ("D", "E", "F", "G")


def test_bluetooth_devices_are_rated_on_bluetooth_checks_only() -> None:
    dev = rated(rotating_phone(minutes=30))["phone"]
    r = dev.rating
    assert r is not None and r.coverage is not None and r.scheme_version == "2026.3"
    assert r.coverage.checks_total == 3 and r.coverage.fraction == 1.0  # tracker n/a
    rows = {c.id: c.status for c in r.categories}
    assert rows["privacy"] is CategoryStatus.PASS
    assert rows["passwords"] is CategoryStatus.UNKNOWN  # nothing tested, never "passed"
    assert r.grade == "B"  # no declaration: A needs a declared support period
    # no firmware version applies over Bluetooth, so it is not held against the device
    assert "version-unknown" not in {c.cap for c in r.caps}


def test_ip_devices_rate_the_same_under_2026_1_and_2026_2() -> None:
    new = load_scheme(SCHEME_DIR / "iotrate-2026.2.yaml")
    old = load_scheme(SCHEME_DIR / "iotrate-2026.1.yaml")
    assert (old.version, new.version) == ("2026.1", "2026.2")
    ip_checks = [c.id for c in old.checks if c.source == "scan"]
    full = ProbeOutcome(probe="all", status=OutcomeStatus.RAN, checks=ip_checks)
    partial = ProbeOutcome(probe="tls", status=OutcomeStatus.FAILED, checks=ip_checks[:3])
    for cid in [None, *ip_checks]:
        check = old.check(cid) if cid else None
        findings = [Finding(check=cid, severity=check.severity, title="t")] if check else []
        for outcomes in ([full], [full, partial], []):
            d = Device(id="x", address="10.0.0.2", findings=findings, outcomes=outcomes)
            a = rate(d, old, today=date(2026, 3, 1))
            b = rate(d, new, today=date(2026, 3, 1))
            assert (a.grade, a.score, a.caps, a.coverage, a.categories) == (
                b.grade,
                b.score,
                b.caps,
                b.coverage,
                b.categories,
            ), cid
