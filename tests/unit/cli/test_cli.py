"""CLI contract: help everywhere, version, exit codes, and refusals before any socket."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from iotrate import __version__
from iotrate.cli import app
from iotrate.cli.console import EXIT_FAIL_UNDER, EXIT_RUNTIME, EXIT_USAGE, worst_at_or_below
from iotrate.errors import RuntimeFailure
from iotrate.models import Device, Rating, ScanResult

runner = CliRunner()


def all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"iotrate {__version__}"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket creation fails the test: a refused target must send nothing."""

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", boom)
    monkeypatch.setattr(socket, "getaddrinfo", boom)


@pytest.mark.parametrize(
    ("target", "message"),
    [("8.8.8.0/24", "public"), ("10.0.0.0/8", "more than 1024"), ("1.2.3.4", "public")],
)
def test_refused_targets_exit_2_without_a_socket(
    no_network: None, target: str, message: str
) -> None:
    res = runner.invoke(app, ["scan", target])
    assert res.exit_code == EXIT_USAGE
    assert message in res.output
    assert "Traceback" not in res.output


def test_usage_errors_exit_2(no_network: None) -> None:
    assert runner.invoke(app, ["scan", "--ports", "0-99999", "10.0.0.1"]).exit_code == EXIT_USAGE
    assert runner.invoke(app, ["scan", "--fail-under", "Q", "10.0.0.1"]).exit_code == EXIT_USAGE
    assert runner.invoke(app, ["scan", "--nope"]).exit_code == EXIT_USAGE
    assert runner.invoke(app, ["scan", "not/a/target"]).exit_code == EXIT_USAGE


def rated(*grades: str | None) -> ScanResult:
    return ScanResult(
        scan_id="s",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        devices=[
            Device(id=f"10.0.0.{i}", address=f"10.0.0.{i}", rating=Rating(grade=g) if g else None)  # type: ignore[arg-type]
            for i, g in enumerate(grades, 1)
        ],
    )


def test_worst_at_or_below() -> None:
    r = rated("A", "D", "G", None)
    assert worst_at_or_below(r, "D") == ["10.0.0.2 (D)", "10.0.0.3 (G)"]
    assert worst_at_or_below(r, "G") == ["10.0.0.3 (G)"]
    assert worst_at_or_below(rated("A", "B"), "C") == []


def test_fail_under_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_scan(*a: Any, **k: Any) -> ScanResult:
        return rated("B", "E")

    monkeypatch.setattr("iotrate.scan.run_scan", fake_scan)
    assert (
        runner.invoke(app, ["scan", "10.0.0.1", "--fail-under", "E"]).exit_code == EXIT_FAIL_UNDER
    )
    assert runner.invoke(app, ["scan", "10.0.0.1", "--fail-under", "f"]).exit_code == 0
    res = runner.invoke(app, ["scan", "10.0.0.1", "--json"])
    assert res.exit_code == 0
    assert ScanResult.model_validate_json(res.stdout).devices[1].rating.grade == "E"  # type: ignore[union-attr]


def test_runtime_failure_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*a: Any, **k: Any) -> ScanResult:
        raise RuntimeFailure("the sky fell")

    monkeypatch.setattr("iotrate.scan.run_scan", broken)
    res = runner.invoke(app, ["scan", "10.0.0.1"])
    assert res.exit_code == EXIT_RUNTIME
    assert "the sky fell" in res.output


def test_schema_command_prints_the_published_schema() -> None:
    import json
    from importlib import resources

    res = runner.invoke(app, ["schema"])
    committed = resources.files("iotrate").joinpath("schemas/scan-result.schema.json").read_text()
    assert json.loads(res.output) == json.loads(committed)


def test_profile_lab_reaches_the_scan_and_the_scope_is_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iotrate.discovery.portscan import port_specs
    from iotrate.scan import scan_scope

    seen: list[Any] = []

    async def fake_scan(targets: Any, options: Any) -> ScanResult:
        seen.append(options)
        scope = scan_scope(options, port_specs(options.ports), [], [])
        return ScanResult(scan_id="x", started_at=datetime.now(UTC), scope=scope)

    monkeypatch.setattr("iotrate.scan.run_scan", fake_scan)
    res = runner.invoke(app, ["scan", "127.0.0.1", "--profile", "lab", "--no-history"])
    assert res.exit_code == 0, res.output
    assert (seen[0].ports, seen[0].profile) == ("all", "lab")
    assert "scope: lab profile: all 65,535 TCP ports" in res.stderr
    bad = runner.invoke(app, ["scan", "127.0.0.1", "--profile", "lab", "--safe"])
    assert bad.exit_code == EXIT_USAGE and "excludes --safe" in bad.output
