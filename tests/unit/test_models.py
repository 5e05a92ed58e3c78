"""The scan result's JSON shape: lossless round trip, published schema kept in step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import jsonschema
import pytest
from pydantic import ValidationError

from iotrate.models import (
    CapApplied,
    Confidence,
    Coverage,
    Device,
    Evidence,
    Finding,
    OutcomeStatus,
    ProbeOutcome,
    Rating,
    ScanResult,
    Service,
    Severity,
    Target,
    TargetKind,
    Transport,
    json_schema,
)


def full_result() -> ScanResult:
    return ScanResult(
        scan_id="0b5c2d1e-0000-4000-8000-000000000001",
        started_at=datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC),
        finished_at=datetime(2026, 11, 25, 10, 0, 9, tzinfo=UTC),
        discovery_mode="tcp-connect",
        targets=[
            Target(
                spec="10.0.0.0/30",
                kind=TargetKind.NETWORK,
                first="10.0.0.0",
                last="10.0.0.3",
                size=2,
            )
        ],
        devices=[
            Device(
                id="a4:5e:60:00:00:01",
                address="10.0.0.1",
                addresses=["10.0.0.1"],
                mac="a4:5e:60:00:00:01",
                vendor="LG Electronics",
                model="GR-X257",
                category="appliance",
                firmware="1.2.3",
                names=["Kitchen fridge <script>alert(1)</script>"],
                services=[
                    Service(port=23, protocol="telnet", banner="login:", tls=False),
                    Service(port=161, transport=Transport.UDP, protocol="snmp"),
                ],
                findings=[
                    Finding(
                        check="cred.telnet.default",
                        severity=Severity.CRITICAL,
                        title="Telnet accepts a universal default password",
                        evidence=[
                            Evidence(
                                summary="root/xc3511 logged in",
                                port=23,
                                data={"user": "root", "n": 1.5},
                            )
                        ],
                        remediation="Change the password",
                        standards=["ETSI EN 303 645 5.1-1"],
                        confidence=Confidence.CONFIRMED,
                    )
                ],
                outcomes=[
                    ProbeOutcome(
                        probe="telnet.default_creds",
                        status=OutcomeStatus.RAN,
                        port=23,
                        duration_s=0.4,
                    ),
                    ProbeOutcome(
                        probe="tls",
                        status=OutcomeStatus.FAILED,
                        port=443,
                        reason="timeout after 5s",
                    ),
                ],
                rating=Rating(
                    grade="G",
                    score=12.5,
                    caps=[CapApplied(cap="universal-default-password", grade="G", reason="PSTI")],
                    reasons=["telnet default password"],
                    scheme_id="iotrate",
                    scheme_version="2026.1",
                    coverage=Coverage(fraction=0.5, checks_run=10, checks_total=20),
                ),
            )
        ],
    )


def test_json_round_trip_is_lossless() -> None:
    r = full_result()
    again = ScanResult.model_validate_json(r.model_dump_json())
    assert again == r
    assert again.model_dump_json() == r.model_dump_json()


def test_output_validates_against_published_schema() -> None:
    schema = json.loads(
        resources.files("iotrate").joinpath("schemas/scan-result.schema.json").read_text()
    )
    doc = json.loads(full_result().model_dump_json())
    jsonschema.Draft202012Validator(schema).validate(doc)
    doc["devices"][0]["rating"]["grade"] = "Z"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(doc)


def test_published_schema_matches_the_models() -> None:
    """The committed schema file is what `iotrate schema` generates: regenerate on change."""
    committed = json.loads(
        resources.files("iotrate").joinpath("schemas/scan-result.schema.json").read_text()
    )
    assert committed == json_schema()


def test_stable_field_names() -> None:
    doc = json.loads(full_result().model_dump_json())
    dev = doc["devices"][0]
    for key in (
        "address",
        "mac",
        "category",
        "vendor",
        "model",
        "firmware",
        "services",
        "findings",
        "outcomes",
        "rating",
    ):
        assert key in dev
    assert set(dev["services"][0]) >= {"port", "transport", "protocol", "banner", "tls"}
    assert set(dev["findings"][0]) >= {"check", "severity", "title", "evidence"}
    assert set(dev["rating"]) >= {"grade", "score", "caps", "coverage"}


def test_empty_device_has_nulls_not_missing_keys() -> None:
    doc = json.loads(Device(id="10.0.0.9", address="10.0.0.9").model_dump_json())
    assert doc["mac"] is None and doc["rating"] is None and doc["findings"] == []


def test_models_reject_bad_values() -> None:
    with pytest.raises(ValidationError):
        Service(port=70000)
    with pytest.raises(ValidationError):
        Rating(grade="H")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Device(id="x", address="y", colour="red")  # type: ignore[call-arg]


def test_failed_outcome_is_distinct_from_ran() -> None:
    failed = ProbeOutcome(probe="tls", status=OutcomeStatus.FAILED, reason="reset")
    assert failed.status is not OutcomeStatus.RAN
    assert json.loads(failed.model_dump_json())["status"] == "failed"
