"""The typed scan request: what ``scan`` records, what ``--resume`` reads back (including the
records iotrate wrote before the request existed), and the options the CLI and the fleet agent
both build from it. The CLI package's modules import only what they share, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from iotrate.errors import UsageError
from iotrate.fleet.agent import AgentSettings
from iotrate.models import Policy
from iotrate.ratelimit import DEFAULT_RATE
from iotrate.scanrequest import LAB_SWEEP_RATE, OPTIONS_VERSION, SCAN_PARAMS, ScanRequest

#: What ``iotrate scan`` stored before the request existed: OPTIONS_VERSION 1, keyed by the
#: scan command's parameter names, None for options not given.
OLD_RECORD = {
    "version": 1,
    "params": {
        "ports": "22,80",
        "allow_public": False,
        "max_hosts": 2048,
        "timeout": 2.5,
        "concurrency": 64,
        "safe": True,
        "intrusive": False,
        "exclude": ["192.0.2.9"],
        "use_nmap": False,
        "allow_list": "/etc/iotrate/lab.txt",
        "rate_limit": 20.0,
        "budget": "2m",
    },
}


def test_the_recorded_names_are_the_ones_scans_were_always_stored_under() -> None:
    assert OPTIONS_VERSION == 1
    assert SCAN_PARAMS == (
        "ports", "allow_public", "max_hosts", "timeout", "concurrency", "safe", "intrusive",
        "exclude", "use_nmap", "allow_list", "rate_limit", "budget", "profile",
    )  # fmt: skip


def test_an_old_record_resumes_as_the_same_request() -> None:
    typed_now = ScanRequest(targets=("10.0.0.0/24",), ports="iot", max_hosts=5)
    req = typed_now.resumed(OLD_RECORD["params"], ["192.0.2.0/29"])
    assert req == ScanRequest(
        targets=("192.0.2.0/29",),
        ports="22,80",
        max_hosts=2048,
        timeout=2.5,
        concurrency=64,
        safe=True,
        exclude=("192.0.2.9",),
        allow_list=Path("/etc/iotrate/lab.txt"),
        rate_limit=20.0,
        budget="2m",
    )
    # Scans recorded before profiles existed were home scans; the new record says so.
    assert req.record() == {"version": 1, "params": {**OLD_RECORD["params"], "profile": "home"}}
    # Options a record lacks keep this command line's value, except the two that were always
    # taken from the record alone.
    partial = typed_now.resumed({"ports": "80", "exclude": None}, ["192.0.2.0/29"])
    assert partial.ports == "80" and partial.exclude == () and partial.max_hosts is None
    assert partial.timeout == typed_now.timeout


def test_options_built_from_a_request() -> None:
    opts = ScanRequest(
        ports="80", timeout=2.0, concurrency=8, intrusive=True, use_nmap=True, budget="90s"
    ).scan_options(scan_id="x")
    assert opts.policy is Policy.INTRUSIVE and opts.nmap and opts.scan_id == "x"
    assert (opts.limits.connect_timeout, opts.limits.concurrency) == (2.0, 8)
    assert opts.budget == 90 and opts.rate_limit == DEFAULT_RATE
    assert ScanRequest().policy is Policy.DEFAULT and ScanRequest(safe=True).policy is Policy.SAFE


def test_contradictions_are_refused_before_anything_else() -> None:
    with pytest.raises(UsageError, match="--safe and --intrusive exclude each other"):
        ScanRequest(safe=True, intrusive=True, budget="soon").check()
    with pytest.raises(UsageError, match=r"^--budget: "):
        ScanRequest(budget="soon").check()
    with pytest.raises(UsageError):
        ScanRequest(ports="99999").check_ports()


def test_the_agent_scans_what_the_scan_command_would() -> None:
    settings = AgentSettings(
        site="s", targets=["127.0.0.2"], ports="80", policy="safe", timeout=3, concurrency=9
    )
    opts = settings.request().scan_options()
    assert opts.policy is Policy.SAFE and opts.ports == "80" and not opts.nmap
    assert (opts.limits.connect_timeout, opts.limits.concurrency) == (3, 9)
    assert opts.budget is None and opts.rate_limit == DEFAULT_RATE
    assert [t.spec for t in settings.check().targets] == ["127.0.0.2"]


def test_cli_modules_import_only_what_they_share() -> None:
    """No command module imports the package root or another command module."""
    cli = Path(__file__).resolve().parents[3] / "iotrate" / "cli"
    shared = {"iotrate.cli.console", "iotrate.cli.observations"}
    for path in cli.glob("*.py"):
        if path.stem in ("__init__", "main"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "iotrate.cli" or name.startswith("iotrate.cli."):
                    assert name in shared, f"{path.name} imports {name}"


def test_the_lab_profile_sweeps_every_tcp_port_and_tries_default_passwords() -> None:
    lab = ScanRequest(targets=("10.0.0.5",), profile="lab")
    lab.check()
    opts = lab.scan_options()
    assert (opts.ports, opts.profile, opts.policy) == ("all", "lab", Policy.DEFAULT)
    assert opts.limits.adaptive_rate == LAB_SWEEP_RATE  # the sweep paces itself
    home = ScanRequest(profile="home").scan_options()
    assert (home.ports, home.limits.adaptive_rate) == ("iot", 0.0)
    for bad, message in [
        (ScanRequest(profile="lab", safe=True), "excludes --safe"),
        (ScanRequest(profile="lab", ports="22,80"), "drop --ports"),
        (ScanRequest(profile="office"), "--profile must be one of home, lab"),
    ]:
        with pytest.raises(UsageError, match=message):
            bad.check()
    # recorded with the scan, so --resume sweeps the same scope
    assert ScanRequest().resumed(lab.record()["params"], ["10.0.0.5"]).profile == "lab"


def test_scope_recorded_from_what_the_scan_swept() -> None:
    from iotrate.reports.scope import scope_text

    from iotrate.discovery.portscan import port_specs
    from iotrate.models import Device, OutcomeStatus, ProbeOutcome
    from iotrate.scan import ScanOptions, scan_scope

    opts = ScanOptions(ports="all", profile="lab", budget=30.0)
    cut = ProbeOutcome(probe="p", status=OutcomeStatus.SKIPPED_BY_POLICY, budget_s=30.0)
    dev = Device(id="d", address="10.0.0.5", outcomes=[cut])
    scope = scan_scope(opts, port_specs("all"), [dev], [])
    assert (scope.profile, scope.tcp_ports, scope.tcp_port_count) == ("lab", "all", 65535)
    assert scope.udp and scope.budget_cut and scope.budget_s == 30.0
    assert "all 65,535 TCP ports" in scope_text(scope) and "cut probes" in scope_text(scope)
    home = scan_scope(ScanOptions(), port_specs("iot"), [], [])
    curated_tcp = sum(1 for p in port_specs("iot") if p.transport.value == "tcp")
    assert (home.tcp_ports, home.tcp_port_count, home.budget_cut) == ("curated", curated_tcp, False)
    custom = scan_scope(ScanOptions(ports="22,80"), port_specs("22,80"), [], [])
    assert (custom.tcp_ports, custom.udp) == ("custom", False)
