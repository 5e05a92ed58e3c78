"""What a scan covered, in words, the same in the terminal, the report, the label and the
``rate`` table (issue 15): a grade claims only what was measured, so every view of it says
which ports, whether UDP, under which policy and whether a time budget cut probes.

Kept apart from :mod:`iotrate.scanrequest` so the reports and the CLI can share the wording
without the reports importing the scan machinery.
"""

from __future__ import annotations

from iotrate.models import ScanScope

NOT_RECORDED = "not recorded"


def scope_text(scope: ScanScope) -> str:
    """One line saying what a scan covered, for the terminal (the result keeps the fields)."""
    ports = {
        "curated": f"the curated IoT list ({scope.tcp_port_count} TCP ports)",
        "all": f"all {scope.tcp_port_count:,} TCP ports",
        "custom": f"{scope.tcp_port_count} chosen TCP port(s)",
    }[scope.tcp_ports]
    budget = "no time budget"
    if scope.budget_s is not None:
        budget = f"budget {scope.budget_s:g} s" + (
            ", which cut probes (their checks are not tested)" if scope.budget_cut else ""
        )
    udp = "the UDP IoT hellos" if scope.udp else "no UDP"
    return f"{scope.profile} profile: {ports}, {udp}, policy {scope.policy.value}, {budget}"


def _who(scope: ScanScope) -> str:
    return "Lab profile" if scope.profile == "lab" else "Home scan"


def scope_summary(scope: ScanScope | None) -> str:
    """The scope in plain words for a reader of the report or the ``rate`` table; results
    written before schema 1.2 did not record it, and the words say so rather than guess."""
    if scope is None:
        return NOT_RECORDED
    n = scope.tcp_port_count
    ports = {
        "curated": f"{n} common IoT ports",
        "all": f"all {n:,} TCP ports",
        "custom": f"{n} chosen TCP port{'' if n == 1 else 's'}",
    }[scope.tcp_ports]
    udp = " + UDP hellos" if scope.tcp_ports == "curated" else " + UDP"
    text = f"{_who(scope)}: {ports}{udp if scope.udp else ', no UDP'}, {scope.policy.value} policy"
    if scope.budget_s is not None:
        text += f", budget {scope.budget_s:g} s" + (" (cut)" if scope.budget_cut else "")
    return text


def scope_short(scope: ScanScope | None) -> str:
    """The scope in a few words for the label's metadata line."""
    if scope is None:
        return f"scope {NOT_RECORDED}"
    n = scope.tcp_port_count
    ports = {
        "curated": f"{n} IoT ports",
        "all": "all TCP ports",
        "custom": f"{n} chosen port{'' if n == 1 else 's'}",
    }[scope.tcp_ports]
    parts = [_who(scope), ports, "UDP" if scope.udp else "no UDP"]
    if scope.budget_cut:
        parts.append("time budget cut")
    return " · ".join(parts)
