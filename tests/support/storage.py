"""Stored scans built by hand for the history, fleet and dashboard tests, and the ``where``
fixture that gives a test a fresh database on SQLite and on the PostgreSQL test cluster.

A test module that takes ``where`` imports it (``from support.storage import where``) together
with ``postgres`` from ``support.fleet``, which ``where`` asks for on its PostgreSQL run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from iotrate.models import (
    Device,
    Evidence,
    Finding,
    Identity,
    IdentityEvidence,
    OutcomeStatus,
    ProbeOutcome,
    Rating,
    ScanResult,
    Service,
    Severity,
    Target,
    TargetKind,
    utcnow,
)
from iotrate.storage.db import database_url

Where = Callable[[str], "str | Path"]


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """A fresh database per name: a file in tmp_path, or a new database on the test cluster."""
    if request.param == "sqlite":
        return lambda name: tmp_path / name
    server = request.getfixturevalue("postgres")
    made: dict[str, str] = {}
    return lambda name: made.setdefault(name, server.new_database())


def peek(location: str | Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the database behind the store's back, through its own connection."""
    engine = create_engine(database_url(location))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


HOSTILE = "'); DROP TABLE scans;-- <script>alert(1)</script>"


def target(spec: str = "192.0.2.0/29") -> Target:
    return Target(spec=spec, kind=TargetKind.NETWORK, first="192.0.2.1", last="192.0.2.6", size=6)


def finding(check: str, port: int | None = None, title: str | None = None) -> Finding:
    return Finding(
        check=check,
        severity=Severity.HIGH,
        title=title or f"problem {check}",
        port=port,
        evidence=[Evidence(summary="seen", port=port, data={"k": [1, "two"]})],
    )


def device(
    address: str,
    mac: str | None = None,
    grade: str | None = "C",
    findings: tuple[Finding, ...] = (),
    ports: tuple[int, ...] = (80,),
    name: str = "plug",
) -> Device:
    return Device(
        id=mac or address,
        address=address,
        addresses=[address],
        mac=mac,
        vendor="Acme",
        model=name,
        names=[name],
        services=[Service(port=p, protocol="http", banner=f"banner {name}") for p in ports],
        findings=list(findings),
        outcomes=[ProbeOutcome(probe="http.basic", status=OutcomeStatus.RAN, port=80)],
        rating=Rating(grade=grade, score=5.0) if grade else None,  # type: ignore[arg-type]
        identity=Identity(
            category="plug",
            confidence=0.5,
            evidence=[
                IdentityEvidence(
                    source="http", field="http.title", value=name, rule="r", weight=0.5
                )
            ],
        ),
    )


def result(scan_id: str, *devices: Device, minutes: int = 0) -> ScanResult:
    start = utcnow() + timedelta(minutes=minutes)
    return ScanResult(
        scan_id=scan_id,
        started_at=start,
        finished_at=start + timedelta(seconds=3),
        targets=[target()],
        devices=list(devices),
        errors=["one error"],
    )
