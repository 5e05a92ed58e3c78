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

from iotrate.models import GRADES, Device, Finding, OutcomeStatus, ScanResult

Direction = Literal["better", "worse", "same", "unknown", "not_compared"]


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
    not_compared: list[FindingRef] = field(default_factory=list)
    """Findings in one scan whose check the other scan did not evaluate: neither fixed nor new."""
    coverage_before: str | None = None
    coverage_after: str | None = None


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


def _check_states(d: Device) -> dict[str, bool]:
    """Per check a probe outcome mentions: whether it was evaluated (ran, and no attempt at it
    failed or was skipped). Checks no outcome mentions (declaration checks) are absent."""
    states: dict[str, bool] = {}
    for o in d.outcomes:
        for cid in o.checks:
            ok = o.status is OutcomeStatus.RAN or o.status is OutcomeStatus.NOT_APPLICABLE
            states[cid] = states.get(cid, True) and ok
    return states


def _comparable(check: str, a: dict[str, bool], b: dict[str, bool]) -> bool:
    """Like with like: a check is compared only if both scans evaluated it, or neither scan's
    probes dealt with it at all (findings the rater derives, such as a declaration's)."""
    if check not in a and check not in b:
        return True
    return a.get(check, False) and b.get(check, False)


def _coverage(d: Device) -> str | None:
    cov = d.rating.coverage if d.rating else None
    return f"{cov.checks_run}/{cov.checks_total}" if cov else None


def _untested(states: dict[str, bool]) -> frozenset[str]:
    return frozenset(c for c, ok in states.items() if not ok)


def _grade_direction(a: Device, b: Device, ca: dict[str, bool], cb: dict[str, bool]) -> Direction:
    """A grade change counts only between scans whose probes failed to test the same checks:
    after a budget-cut scan, "E -> D, better" only meant "TLS was not tested". A device with
    no letter (insufficient evidence) is never compared."""
    insufficient = any(
        d.rating is not None and d.rating.status == "insufficient_evidence" for d in (a, b)
    )
    if insufficient or _untested(ca) != _untested(cb):
        return "same" if _grade(a) == _grade(b) and not insufficient else "not_compared"
    return _direction(_grade(a), _grade(b))


def diff_results(before: ScanResult, after: ScanResult) -> ScanDiff:
    old, new = _keyed(before), _keyed(after)
    changed: list[DeviceChange] = []
    unchanged = 0
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        fa, fb = _findings(a), _findings(b)
        sa, sb = _services(a), _services(b)
        ca, cb = _check_states(a), _check_states(b)
        gone = sorted(fa.keys() - fb.keys(), key=str)
        came = sorted(fb.keys() - fa.keys(), key=str)
        change = DeviceChange(
            device=_ref(key, b),
            grade_before=_grade(a),
            grade_after=_grade(b),
            direction=_grade_direction(a, b, ca, cb),
            findings_fixed=[_fref(fa[k]) for k in gone if _comparable(k[0], ca, cb)],
            findings_new=[_fref(fb[k]) for k in came if _comparable(k[0], ca, cb)],
            services_opened=sorted(sb - sa, key=_port_order),
            services_closed=sorted(sa - sb, key=_port_order),
            address_before=a.address if a.address != b.address else None,
            not_compared=[_fref(fa[k]) for k in gone if not _comparable(k[0], ca, cb)]
            + [_fref(fb[k]) for k in came if not _comparable(k[0], ca, cb)],
            coverage_before=_coverage(a),
            coverage_after=_coverage(b),
        )
        if (
            change.direction == "same"
            and not change.findings_fixed
            and not change.findings_new
            and not change.not_compared
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


def scan_scope_line(result: ScanResult) -> str:
    """What one scan covered, for the header of a comparison: its policy, ports, budget."""
    scope = result.scope
    if scope is None:
        return f"policy {result.policy}, scope not recorded"
    budget = f", budget {scope.budget_s:g} s" if scope.budget_s else ""
    cut = " (cut short)" if scope.budget_cut else ""
    return (
        f"{scope.profile} profile, policy {scope.policy.value}, {scope.tcp_port_count} TCP "
        f"ports ({scope.tcp_ports}), UDP {'yes' if scope.udp else 'no'}{budget}{cut}"
    )
