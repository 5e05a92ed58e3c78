"""Scan results built by hand for the label, report and signing tests.

They are typed objects, not JSON files, so they follow the model as it changes; the hostile
strings are the ones a device really can send: markup, quotes, control and bidi characters, and
names far longer than any box on the label.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from iotrate.models import (
    GRADES,
    CapApplied,
    CategoryResult,
    CategoryStatus,
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
)

SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE = f"Evil\"Corp' {SCRIPT} \x1b[31m\u202etxet\x00 & <b>bold</b>"
LONG_NAME = ("Ultra Smart Connected Refrigerator-Freezer With Wi-Fi Camera " * 3)[:120]

CATEGORY_TITLES = (
    ("passwords", "Default passwords"),
    ("encryption", "Encryption"),
    ("updates", "Updates & support period"),
    ("services", "Exposed services"),
    ("privacy", "Data privacy"),
)


def categories(fails: set[str], unknown: set[str] = frozenset()) -> list[CategoryResult]:  # type: ignore[assignment]
    out = []
    for cid, title in CATEGORY_TITLES:
        status = (
            CategoryStatus.FAIL
            if cid in fails
            else CategoryStatus.UNKNOWN
            if cid in unknown
            else CategoryStatus.PASS
        )
        out.append(CategoryResult(id=cid, title=title, status=status))
    return out


def rating(grade: str | None, **kw: object) -> Rating:
    base: dict[str, object] = {
        "grade": grade,
        "score": 42.0,
        "scheme_id": "iotrate",
        "scheme_version": "2026.1",
        "coverage": Coverage(fraction=0.35, checks_run=14, checks_total=40),
        "categories": categories({"passwords", "services"}, {"privacy"}),
        "support_until": date(2031, 12, 31),
        "reasons": ["Telnet accepts a factory default password (root/admin)"],
    }
    base.update(kw)
    return Rating.model_validate(base)


def fridge(**kw: object) -> Device:
    base: dict[str, object] = {
        "id": "20:17:42:6b:31:5c",
        "address": "10.231.47.11",
        "mac": "20:17:42:6b:31:5c",
        "vendor": "LG",
        "model": "InstaView ThinQ GSX961NSVZ",
        "category": "appliance",
        "firmware": "04.02.13",
        "services": [
            Service(port=23, protocol="telnet", banner="LG-Fridge login: "),
            Service(port=80, protocol="http", banner="HTTP/1.0 401 Unauthorized"),
            Service(port=1883, protocol="mqtt"),
        ],
        "findings": [
            Finding(
                check="cred.telnet.default",
                severity=Severity.CRITICAL,
                title="Telnet accepts a factory default password",
                evidence=[
                    Evidence(
                        summary="login root/admin succeeded",
                        port=23,
                        transport=Transport.TCP,
                        data={"username": "root", "password": "admin"},
                    )
                ],
                remediation="Change the password in the app, or ask the maker for an update "
                "that turns telnet off.",
                standards=["ETSI EN 303 645 5.1-1", "UK PSTI R1", "OWASP I1"],
                port=23,
            ),
            Finding(
                check="svc.mqtt.anonymous",
                severity=Severity.MEDIUM,
                title="MQTT broker allows anonymous clients",
                evidence=[Evidence(summary="subscribed to # without credentials", port=1883)],
                confidence=Confidence.PROBABLE,
                port=1883,
            ),
        ],
        "outcomes": [
            ProbeOutcome(probe="cred.telnet", status=OutcomeStatus.RAN, port=23),
            ProbeOutcome(
                probe="privacy.passive",
                status=OutcomeStatus.SKIPPED_BY_POLICY,
                reason="passive traffic capture is off by default",
            ),
        ],
        "rating": rating(
            "G",
            caps=[CapApplied(cap="default-password", grade="G", reason="universal password")],
        ),
    }
    base.update(kw)
    return Device.model_validate(base)


def result(devices: list[Device]) -> ScanResult:
    return ScanResult(
        scan_id="0b9e1c8e-54a4-4d0f-9a65-3f3c1b2f9a10",
        started_at=datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
        finished_at=datetime(2026, 1, 15, 9, 31, 12, tzinfo=UTC),
        discovery_mode="tcp-connect",
        targets=[
            Target(
                spec="10.231.47.0/24",
                kind=TargetKind.NETWORK,
                first="10.231.47.1",
                last="10.231.47.254",
                size=254,
            )
        ],
        devices=devices,
    )


def every_grade_long_names() -> list[Device]:
    """One device per grade A-G (and one unrated) with 120-character vendor, model, firmware."""
    devs = []
    for i, g in enumerate([*GRADES, None]):
        devs.append(
            fridge(
                id=f"02:00:00:00:00:{i:02x}",
                address=f"10.0.0.{i + 10}",
                mac=f"02:00:00:00:00:{i:02x}",
                vendor=LONG_NAME,
                model=LONG_NAME.upper(),
                firmware="W" * 120,
                rating=None if g is None else rating(g),
            )
        )
    return devs


def hostile_device() -> Device:
    return fridge(
        id=f"aa:bb {SCRIPT}",
        vendor=HOSTILE,
        model=HOSTILE,
        firmware=HOSTILE,
        names=[HOSTILE],
        services=[Service(port=80, protocol="http", banner=HOSTILE)],
        findings=[
            Finding(
                check="http.banner",
                severity=Severity.LOW,
                title=HOSTILE,
                evidence=[Evidence(summary=HOSTILE, data={"server": HOSTILE, HOSTILE: 1})],
                remediation=HOSTILE,
            )
        ],
        rating=rating(
            "C",
            reasons=[HOSTILE],
            categories=[CategoryResult(id="x", title=HOSTILE, status=CategoryStatus.FAIL)],
            declaration=HOSTILE,
        ),
    )
