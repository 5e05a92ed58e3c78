"""The scan's scope is stated on the report, the label and the ``rate`` table (issue 15)."""

from __future__ import annotations

import io

import support.labels as fx
from iotrate.reports import html, label
from rich.console import Console

from iotrate.cli.rate import rating_table
from iotrate.models import Coverage, EtsiCoverage, Policy, ScanResult, ScanScope

LAB_CUT = ScanScope(
    profile="lab",
    tcp_ports="all",
    tcp_port_count=65535,
    udp=True,
    policy=Policy.DEFAULT,
    budget_s=60.0,
    budget_cut=True,
)


def _result(scope: ScanScope | None) -> ScanResult:
    return fx.result([fx.fridge()]).model_copy(update={"scope": scope})


def test_report_states_a_lab_scope_with_its_budget_cut() -> None:
    page = html.render(_result(LAB_CUT))
    assert "Lab profile: all 65,535 TCP ports + UDP, default policy, budget 60 s (cut)" in page


def test_report_says_when_the_scope_was_not_recorded() -> None:
    assert html.view(_result(None)).scope == "not recorded"
    assert "<dt>Scope</dt><dd>not recorded</dd>" in html.render(_result(None))


def test_label_states_the_scope_and_the_cut() -> None:
    r = _result(LAB_CUT)
    svg = label.render_svg(label.label_data(r.devices[0], r))
    assert "Lab profile · all TCP ports · UDP · time budget cut" in svg
    home = ScanScope(tcp_ports="curated", tcp_port_count=61, udp=True, policy=Policy.DEFAULT)
    r = _result(home)
    assert "Home scan · 61 IoT ports · UDP" in label.render_svg(label.label_data(r.devices[0], r))


def test_label_says_when_the_scope_was_not_recorded() -> None:
    r = _result(None)
    assert "scope not recorded" in label.render_svg(label.label_data(r.devices[0], r))


def test_label_with_etsi_line_keeps_the_scope_line() -> None:
    cov = Coverage(
        fraction=0.5,
        checks_run=5,
        checks_total=10,
        etsi=EtsiCoverage(tested=3, partly=1, declared=0, not_assessed=9),
    )
    dev = fx.fridge(rating=fx.rating("C", coverage=cov))
    r = fx.result([dev]).model_copy(update={"scope": LAB_CUT})
    svg = label.render_svg(label.label_data(r.devices[0], r))
    assert "ETSI EN 303 645" in svg and "time budget cut" in svg


def test_rate_table_states_the_scope() -> None:
    buf = io.StringIO()
    Console(file=buf, width=200).print(rating_table(_result(LAB_CUT)))
    assert "Lab profile: all 65,535 TCP ports + UDP, default policy, budget 60 s (cut)" in (
        buf.getvalue()
    )
    buf = io.StringIO()
    Console(file=buf, width=200).print(rating_table(_result(None)))
    assert "Scan scope: not recorded" in buf.getvalue()
