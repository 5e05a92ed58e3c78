"""What the history hands back: stored scans and devices as lists and pages show them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from iotrate.models import Device, Target

ScanStatus = Literal["running", "complete", "interrupted"]


@dataclass(frozen=True)
class ScanSummary:
    """One stored scan as the history list shows it."""

    scan_id: str
    started_at: datetime
    finished_at: datetime | None
    status: ScanStatus
    policy: str
    targets: list[str]
    devices: int
    grades: dict[str, int] = field(default_factory=dict)
    site: str = "local"


@dataclass(frozen=True)
class ScanRecord:
    """One stored scan's own row, without its devices: what ``--resume`` starts from."""

    scan_id: str
    started_at: datetime
    finished_at: datetime | None
    status: ScanStatus
    policy: str
    targets_key: str
    targets: list[Target]
    options: dict[str, Any] | None  # None: stored by an iotrate that did not keep options
    site: str
    owner: str | None  # the process that writes (or wrote) the scan, as given to begin_scan
    errors: list[str]
    agent_id: str | None = None  # the fleet agent that sent the scan; None for local scans


@dataclass(frozen=True)
class DeviceRecord:
    """One device in one scan, for a device's history over time."""

    scan_id: str
    started_at: datetime
    status: ScanStatus
    device_key: str
    address: str
    grade: str | None
    score: float | None
    findings: int


@dataclass(frozen=True)
class DeviceBrief:
    """One stored device as a list shows it, read from its columns and its findings' rows
    rather than its JSON: a fleet's dashboard lists thousands of devices, and parsing each
    one's full result (some 20 kB) took most of the time of such a page."""

    scan_id: str
    device_key: str
    address: str
    mac: str | None
    vendor: str | None
    model: str | None
    category: str | None
    names: list[str]
    grade: str | None
    score: float | None
    findings: list[tuple[str, str]]  # (check id, severity) of each finding

    @classmethod
    def of(cls, device: Device, scan_id: str) -> DeviceBrief:
        """The same from a loaded device: what its rows hold."""
        r = device.rating
        return cls(
            scan_id=scan_id,
            device_key=device.id,
            address=device.address,
            mac=device.mac,
            vendor=device.vendor,
            model=device.model,
            category=device.category,
            names=list(device.names),
            grade=r.grade if r else None,
            score=r.score if r else None,
            findings=[(f.check, str(f.severity)) for f in device.findings],
        )


def address_order(address: str) -> tuple[int, int, str]:
    """Devices in address order, as a scan's result lists them (IPv4 before IPv6)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)
