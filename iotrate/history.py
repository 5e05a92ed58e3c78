"""What changed between two scans: a pure function of two results, so it is golden-testable and
works the same on stored scans and on result files.

Devices are matched by their stable key (the MAC when known, else the address), so a device
that moved to another address is the same device; a finding is the same finding when its check
and port are, because titles and evidence wording change between versions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from iotrate.models import GRADES, Device, Finding, ScanResult

Direction = Literal["better", "worse", "same", "unknown"]


@dataclass(frozen=True)
class DeviceRef:
    key: str
    address: str
    name: str
    grade: str | None


@dataclass(frozen=True)
class FindingRef:
    check: str
    port: int | None
    severity: str
    title: str


@dataclass(frozen=True)
class DeviceChange:
    device: DeviceRef
    grade_before: str | None
    grade_after: str | None
    direction: Direction
    findings_fixed: list[FindingRef] = field(default_factory=list)
    findings_new: list[FindingRef] = field(default_factory=list)
    services_opened: list[str] = field(default_factory=list)
    services_closed: list[str] = field(default_factory=list)
    address_before: str | None = None


@dataclass(frozen=True)
class ScanDiff:
    before: str
    after: str
    new_devices: list[DeviceRef] = field(default_factory=list)
    gone_devices: list[DeviceRef] = field(default_factory=list)
    changed: list[DeviceChange] = field(default_factory=list)
    unchanged: int = 0


def _name(d: Device) -> str:
    parts = [p for p in (d.vendor, d.model) if p]
    return " ".join(parts) or (d.names[0] if d.names else d.category or "unknown device")


def _grade(d: Device) -> str | None:
    return d.rating.grade if d.rating else None


def _keyed(result: ScanResult) -> dict[str, Device]:
    """Key -> device; a key seen twice in one scan (one MAC on two addresses) gets the
    address appended so neither copy hides the other."""
    counts = Counter(d.id for d in result.devices)
    return {(d.id if counts[d.id] == 1 else f"{d.id}@{d.address}"): d for d in result.devices}


def _ref(key: str, d: Device) -> DeviceRef:
    return DeviceRef(key=key, address=d.address, name=_name(d), grade=_grade(d))


def _findings(d: Device) -> dict[tuple[str, int | None], Finding]:
    return {(f.check, f.port): f for f in d.findings}


def _fref(f: Finding) -> FindingRef:
    return FindingRef(check=f.check, port=f.port, severity=f.severity.value, title=f.title)


def _services(d: Device) -> set[str]:
    return {f"{s.port}/{s.transport.value}" for s in d.services}


def _port_order(s: str) -> tuple[int, str]:
    port, _, transport = s.partition("/")
    return (int(port), transport)


def _direction(before: str | None, after: str | None) -> Direction:
    if before is None or after is None:
        return "same" if before == after else "unknown"
    b, a = GRADES.index(before), GRADES.index(after)
    return "same" if a == b else "better" if a < b else "worse"


def diff_results(before: ScanResult, after: ScanResult) -> ScanDiff:
    old, new = _keyed(before), _keyed(after)
    changed: list[DeviceChange] = []
    unchanged = 0
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        fa, fb = _findings(a), _findings(b)
        sa, sb = _services(a), _services(b)
        change = DeviceChange(
            device=_ref(key, b),
            grade_before=_grade(a),
            grade_after=_grade(b),
            direction=_direction(_grade(a), _grade(b)),
            findings_fixed=[_fref(fa[k]) for k in sorted(fa.keys() - fb.keys(), key=str)],
            findings_new=[_fref(fb[k]) for k in sorted(fb.keys() - fa.keys(), key=str)],
            services_opened=sorted(sb - sa, key=_port_order),
            services_closed=sorted(sa - sb, key=_port_order),
            address_before=a.address if a.address != b.address else None,
        )
        if (
            change.direction == "same"
            and not change.findings_fixed
            and not change.findings_new
            and not change.services_opened
            and not change.services_closed
            and change.address_before is None
        ):
            unchanged += 1
        else:
            changed.append(change)
    return ScanDiff(
        before=before.scan_id,
        after=after.scan_id,
        new_devices=[_ref(k, new[k]) for k in sorted(new.keys() - old.keys())],
        gone_devices=[_ref(k, old[k]) for k in sorted(old.keys() - new.keys())],
        changed=changed,
        unchanged=unchanged,
    )
