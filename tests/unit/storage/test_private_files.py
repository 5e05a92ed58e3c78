"""Files that hold findings or secrets are private (issue 17, finding 8): the history database
and the agent's spool are created 0600 in a 0700 folder, and secret files that other users can
read are refused in one line before anything is sent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support.storage import device, result
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.fleet.spool import Spool
from iotrate.storage import Store

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _umask() -> object:
    """The usual umask, whatever the test runner's: the files must be private despite it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_history_database_is_created_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "iotrate" / "iotrate.db"
    r = result("33333333-3333-4333-8333-333333333333", device("192.0.2.1", "aa:bb:cc:00:00:01"))
    with Store(db) as store:
        store.begin_scan(r.scan_id, r.started_at, r.targets, r.policy)
        store.finish_scan(r)
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700
    for extra in db.parent.glob("iotrate.db-*"):  # WAL and shared memory, while present
        assert mode(extra) == 0o600, extra


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    """A shared database someone made group-readable on purpose is not changed behind them."""
    db = tmp_path / "shared.db"
    with Store(db):
        pass
    os.chmod(db, 0o640)
    with Store(db):
        pass
    assert mode(db) == 0o640


def test_agent_spool_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "spool.db"
    spool = Spool(path)
    spool.close()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


@pytest.mark.parametrize(
    "args",
    [
        ["agent-command", "scan-now", "--broker", "mqtt://127.0.0.1:9", "--site", "s1"],
        ["collector", "--broker", "mqtt://127.0.0.1:9", "--db", "x.db"],
    ],
)
def test_secret_files_others_can_read_are_refused(tmp_path: Path, args: list[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    os.chmod(secret, 0o644)
    option = "--command-key" if args[0] == "agent-command" else "--password-file"
    res = runner.invoke(app, [*args, option, str(secret)])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and "readable by other users" in res.stderr
    assert f"chmod 600 {secret}" in res.stderr
