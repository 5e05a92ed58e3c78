"""The history store: round trip, incremental writes, interruption, hostile strings, schema.

Every test that does not look at the SQLite file itself runs twice: on SQLite and on a real
PostgreSQL 15 (``support.fleet.postgres``), the two databases the store serves."""

from __future__ import annotations

import ast
import asyncio
import importlib
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from support.fleet import postgres  # noqa: F401  (the PostgreSQL cluster fixture)
from support.storage import HOSTILE, Where, device, finding, peek, result, target, where  # noqa: F401

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.history import diff_results
from iotrate.models import (
    Device,
    Service,
    utcnow,
)
from iotrate.storage.db import database_url, default_path
from iotrate.storage.records import DeviceBrief
from iotrate.storage.schema import LEGACY_PARKED, SCHEMA_VERSION
from iotrate.storage.store import Store
from iotrate.storage.writer import Recorder

LEGACY = Path(__file__).resolve().parents[2] / "fleet_data"


def test_default_path_is_under_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTRATE_DB")
    p = default_path()
    assert p.name == "iotrate.db" and p.parent.name == "iotrate"
    monkeypatch.setenv("IOTRATE_DB", "/tmp/x.db")
    assert default_path() == Path("/tmp/x.db")


def test_migrations_from_an_empty_db_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "h.db"
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION == 5
    with Store(path) as s:  # opening again applies nothing twice
        assert s.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # The pre-Alembic counter is parked out of reach of older releases, which then refuse.
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(LEGACY_PARKED,)]
    conn.close()
    assert {
        "schema_version",
        "alembic_version",
        "scans",
        "devices",
        "services",
        "observations",
        "findings",
        "outcomes",
        "ratings",
    } <= tables


def test_a_newer_schema_is_refused(where: Where) -> None:  # noqa: F811
    path = where("h.db")
    Store(path).close()
    engine = create_engine(database_url(path))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(RuntimeFailure, match="newer"):
        Store(path)


def test_a_newer_pre_alembic_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    shutil.copy(LEGACY / "history-v2.db", path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 3")  # a hand-rolled migration we never had
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeFailure, match="newer"):
        Store(path)


def test_a_file_that_is_not_a_database_is_a_runtime_failure(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RuntimeFailure, match="history database"):
        Store(path)


def test_round_trip_is_lossless(where: Where) -> None:  # noqa: F811
    r = result("scan-1", device("192.0.2.2", "aa:bb:cc:00:00:01", findings=(finding("x", 23),)))
    with Store(where("h.db")) as s:
        s.begin_scan(r.scan_id, r.started_at, r.targets, r.policy)
        s.finish_scan(r)
        assert s.load_scan("scan-1") == r
        assert s.load_scan("scan-") == r  # a unique prefix is enough
        assert s.status("scan-1") == "complete"
        (summary,) = s.scans()
        assert summary.devices == 1 and summary.grades == {"C": 1}
        assert summary.targets == ["192.0.2.0/29"]


def test_finish_without_begin_still_stores(where: Where) -> None:  # noqa: F811
    r = result("scan-2", device("192.0.2.2"))
    with Store(where("h.db")) as s:
        s.finish_scan(r)
        assert s.load_scan("scan-2") == r


def test_unknown_and_ambiguous_ids_are_usage_errors(where: Where) -> None:  # noqa: F811
    with Store(where("h.db")) as s:
        for sid in ("abc1", "abc2"):
            s.finish_scan(result(sid))
        with pytest.raises(UsageError, match="no stored scan"):
            s.load_scan("zzz")
        with pytest.raises(UsageError, match="ambiguous"):
            s.resolve("abc")
        with pytest.raises(UsageError):
            s.resolve("%")  # LIKE wildcards are matched literally


def test_hostile_strings_are_stored_verbatim_and_harmless(where: Where) -> None:  # noqa: F811
    d = device("192.0.2.3", name=HOSTILE, findings=(finding("c", title=HOSTILE),))
    path = where("h.db")
    r = result(HOSTILE, d)
    with Store(path) as s:
        s.begin_scan(r.scan_id, r.started_at, [target(HOSTILE)], r.policy)
        s.record_device(r.scan_id, d)
        s.finish_scan(r)
        assert s.load_scan(HOSTILE) == r
    assert peek(path, "SELECT COUNT(*) FROM scans") == [(1,)]
    assert peek(path, "SELECT model FROM devices") == [(HOSTILE,)]
    assert peek(path, "SELECT banner FROM services") == [(f"banner {HOSTILE}",)]
    assert peek(path, "SELECT title FROM findings") == [(HOSTILE,)]
    assert peek(path, "SELECT value FROM observations") == [(HOSTILE,)]


def test_each_device_is_visible_to_another_connection_when_written(where: Where) -> None:  # noqa: F811
    path = where("h.db")
    start = utcnow()
    with Store(path) as s:
        rec = Recorder(s, "live", start, [target()], "default")
        assert peek(path, "SELECT status FROM scans") == [("running",)]
        rec(device("192.0.2.2"))
        assert peek(path, "SELECT COUNT(*) FROM devices") == [(1,)]
        rec(device("192.0.2.3"))
        assert peek(path, "SELECT COUNT(*) FROM devices") == [(2,)]
        # A scan killed now (no finish) still loads, rebuilt from what it committed.
        again = s.load_scan("live")
        assert [d.address for d in again.devices] == ["192.0.2.2", "192.0.2.3"]
        assert again.finished_at is None and s.status("live") == "running"


def test_final_result_replaces_provisional_device_rows(where: Where) -> None:  # noqa: F811
    with Store(where("h.db")) as s:
        rec = Recorder(s, "s", utcnow(), [target()], "default")
        rec(device("192.0.2.2", grade=None, findings=(finding("a"),)))
        final = result("s", device("192.0.2.2", grade="B"))
        rec.finish(final)
        (summary,) = s.scans()
        assert summary.devices == 1 and summary.grades == {"B": 1}
        assert s.load_scan("s") == final
        (rec_row,) = s.device_history("192.0.2.2")
        assert rec_row.findings == 0 and rec_row.grade == "B"


def fake_scan(monkeypatch: pytest.MonkeyPatch, addresses: list[str], stall: str) -> None:
    """``run_scan`` over fabricated hosts: every pipeline finishes except ``stall``'s, whose
    probing hangs until the scan is cancelled — like Ctrl-C on a slow device."""
    from iotrate import scan as scan_mod
    from iotrate.discovery import sweep as sweep_mod
    from iotrate.discovery.portscan import HostScan
    from iotrate.probing import ProbeRunner

    async def fake_scan_hosts(
        hosts: list[str], specs: Any, limits: Any, on_host: Any, **kw: Any
    ) -> Any:
        done = []
        for a in addresses:
            h = HostScan(a, True, [Service(port=80, protocol="http")])
            on_host(h)
            done.append(h)
        await asyncio.Event().wait()  # discovery never ends; only cancellation stops it
        return done

    async def probe_device(self: Any, d: Device) -> Device:
        if d.address == stall:
            await asyncio.Event().wait()
        return d.model_copy(update={"findings": [finding("f", 80)]})

    monkeypatch.setattr(scan_mod, "scan_hosts", fake_scan_hosts)
    monkeypatch.setattr(scan_mod, "local_addresses", lambda: set())
    monkeypatch.setattr(sweep_mod, "neighbour_macs", lambda: {})
    monkeypatch.setattr(ProbeRunner, "probe_device", probe_device)


def test_interrupted_scan_keeps_finished_devices(
    monkeypatch: pytest.MonkeyPatch,
    where: Where,  # noqa: F811
) -> None:
    from iotrate import scan as scan_mod
    from iotrate.targets import resolve_targets

    fake_scan(monkeypatch, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], stall="127.0.0.3")
    targets = resolve_targets(["127.0.0.2-4"])
    path = where("h.db")
    store = Store(path)
    rec = Recorder(store, "cut", utcnow(), list(targets.targets), "safe")
    opts = scan_mod.ScanOptions(
        policy="safe", multicast=False, identify=False, on_device=rec, scan_id="cut"
    )

    async def go() -> None:
        task = asyncio.create_task(scan_mod.run_scan(targets, opts))
        for _ in range(200):
            if len(rec.devices) == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    partial = rec.interrupt()
    store.close()
    with Store(path) as s:
        assert s.status("cut") == "interrupted"
        stored = s.load_scan("cut")
    assert stored == partial
    assert [d.address for d in stored.devices] == ["127.0.0.2", "127.0.0.4"]
    assert all(d.findings and d.findings[0].check == "f" for d in stored.devices)
    assert stored.finished_at is not None


def test_run_scan_reports_each_device_and_uses_the_given_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iotrate import scan as scan_mod
    from iotrate.discovery import sweep as sweep_mod
    from iotrate.discovery.portscan import HostScan
    from iotrate.targets import resolve_targets

    async def fake_scan_hosts(
        hosts: list[str], specs: Any, limits: Any, on_host: Any, **kw: Any
    ) -> Any:
        h = HostScan("127.0.0.2", True, [Service(port=80, protocol="http")])
        on_host(h)
        return [h]

    monkeypatch.setattr(scan_mod, "scan_hosts", fake_scan_hosts)
    monkeypatch.setattr(scan_mod, "local_addresses", lambda: set())
    monkeypatch.setattr(sweep_mod, "neighbour_macs", lambda: {})
    seen: list[str] = []

    def broken(d: Device) -> None:
        seen.append(d.address)
        raise OSError("disk full")

    opts = scan_mod.ScanOptions(
        probes=False, multicast=False, identify=False, rate=False, on_device=broken, scan_id="i"
    )
    r = asyncio.run(scan_mod.run_scan(resolve_targets(["127.0.0.2"]), opts))
    assert r.scan_id == "i" and seen == ["127.0.0.2"]
    assert len(r.devices) == 1  # a storage failure does not lose the device
    assert any("not stored" in e and "disk full" in e for e in r.errors)


# -- migration 2 and what --resume needs -----------------------------------------------------


@pytest.mark.parametrize("legacy", ["history-v1.db", "history-v2.db"])
def test_a_pre_alembic_database_is_stamped_and_upgraded_in_place(
    legacy: str, tmp_path: Path
) -> None:
    """Databases the hand-rolled migrations made (fixtures written by that code, see
    fleet_data/make_legacy_history.py) keep every scan and gain the new columns."""
    path = tmp_path / "h.db"
    shutil.copy(LEGACY / legacy, path)
    old = sqlite3.connect(path)
    services_before = old.execute("SELECT COUNT(*) FROM services").fetchone()[0]
    old.close()
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        done, killed = s.scans()
        assert (done.status, done.devices, done.grades) == ("complete", 2, {"C": 1, "E": 1})
        assert (killed.status, killed.devices, killed.site) == ("running", 1, "local")
        full = s.load_scan(done.scan_id)
        assert [d.model for d in full.devices] == ["plug", HOSTILE]
        assert [d.address for d in s.load_scan(killed.scan_id).devices] == ["192.0.2.2"]
        assert [r.grade for r in s.device_history("AA:BB:CC:00:00:01")] == ["E", "B"]
        rec = s.scan_record(killed.scan_id)
        assert rec.options is None and rec.owner is None and rec.agent_id is None
        assert s.unfinished_scans("192.0.2.0/29") == [killed.scan_id]
        s.begin_scan("new", utcnow(), [target()], "default", options={"ports": "iot"})
        s.record_device("new", device("192.0.2.9"))
        assert s.scan_record("new").options == {"ports": "iot"}
    with Store(path) as s:  # stamped once: opening again migrates nothing
        assert len(s.scans()) == 3
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0005",)]
    # The rebuilt child tables kept their rows and index and lost every foreign key (0004 the
    # scan's, 0005 the device's); the device's own key to its scan stays.
    for table in ("services", "findings", "outcomes", "observations", "ratings"):
        assert conn.execute(f"PRAGMA foreign_key_list({table})").fetchall() == [], table
    assert [r[2] for r in conn.execute("PRAGMA foreign_key_list(devices)")] == ["scans"]
    assert {r[1] for r in conn.execute("PRAGMA index_list(services)")} == {"services_device"}
    orphans = (
        "SELECT COUNT(*) FROM {} WHERE device_id NOT IN (SELECT id FROM devices)"
        " OR scan_id <> (SELECT scan_id FROM devices WHERE id = device_id)"
    )
    for table in ("services", "findings", "outcomes", "observations", "ratings"):
        assert conn.execute(orphans.format(table)).fetchone() == (0,), table
    added = len(device("192.0.2.9").services)
    assert conn.execute("SELECT COUNT(*) FROM services").fetchone() == (services_before + added,)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(LEGACY_PARKED,)]
    conn.close()


def test_schema_at_head_matches_the_tables_the_queries_use(where: Where) -> None:  # noqa: F811
    """The Alembic scripts and the store's table definitions describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from iotrate.storage.schema import metadata

    path = where("h.db")
    Store(path).close()
    engine = create_engine(database_url(path))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    # The parked pre-Alembic counter (SQLite only) is the one table the queries never use.
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == "schema_version")] == []


def test_location_forms(tmp_path: Path) -> None:
    assert database_url(tmp_path / "a.db").database == str(tmp_path / "a.db")
    assert database_url(f"sqlite:///{tmp_path}/b.db").database == f"{tmp_path}/b.db"
    pg = database_url("postgres://u:secret@db.example/iotrate")
    assert pg.drivername == "postgresql+psycopg" and pg.database == "iotrate"
    for bad in ("mysql://x/y", "sqlite://", "postgresql+asyncpg://h/d"):
        with pytest.raises(UsageError):
            database_url(bad)
    with pytest.raises(RuntimeFailure) as err:
        Store("postgresql://u:secret@127.0.0.1:1/none")
    assert "secret" not in str(err.value) and "***" in str(err.value)


def test_options_site_and_owner_round_trip(where: Where) -> None:  # noqa: F811
    opts = {"ports": "22,80", "policy": "safe", "exclude": ["192.0.2.3"], "rate_limit": 5.0}
    with Store(where("h.db")) as s:
        s.begin_scan(
            "s1", utcnow(), [target()], "safe", options=opts, site="shop-7", owner="host 1 2"
        )
        s.begin_scan("s2", utcnow(), [target()], "default")
        rec = s.scan_record("s1")
        assert rec.options == opts and rec.site == "shop-7" and rec.owner == "host 1 2"
        assert rec.status == "running" and rec.targets == [target()]
        assert rec.targets_key == "192.0.2.0/29"
        assert s.scan_record("s2").options is None
        assert {x.scan_id: x.site for x in s.scans()} == {"s1": "shop-7", "s2": "local"}


def test_unfinished_scans_newest_first_by_targets(where: Where) -> None:  # noqa: F811
    t0 = utcnow()
    with Store(where("h.db")) as s:
        s.begin_scan("a", t0, [target()], "default")
        s.begin_scan("b", t0 + timedelta(minutes=1), [target()], "default")
        s.begin_scan("c", t0 + timedelta(minutes=2), [target("192.0.2.9")], "default")
        s.begin_scan("d", t0 + timedelta(minutes=3), [target()], "default")
        s.finish_scan(result("d"))  # complete: never a resume candidate
        s.finish_scan(result("b").model_copy(update={"started_at": t0}), "interrupted")
        assert s.unfinished_scans("192.0.2.0/29") == ["b", "a"]
        assert s.unfinished_scans("192.0.2.9") == ["c"]
        assert s.unfinished_scans() == ["c", "b", "a"]
        assert s.unfinished_scans("nothing") == []


def test_stored_addresses_and_devices_of_a_killed_scan(where: Where) -> None:  # noqa: F811
    with Store(where("h.db")) as s:
        rec = Recorder(s, "k", utcnow(), [target()], "default", options={"ports": "iot"})
        rec(device("192.0.2.4", findings=(finding("x", 80),)))
        rec(device("192.0.2.2"))
        s.begin_scan("other", utcnow(), [target()], "default")
        s.record_device("other", device("192.0.2.5"))
        assert s.stored_addresses("k") == {"192.0.2.2", "192.0.2.4"}
        assert s.load_devices("k") == rec.devices
        assert s.stored_addresses("missing") == set()


def test_reopen_is_compare_and_set_and_drops_the_provisional_result(where: Where) -> None:  # noqa: F811
    path = where("h.db")
    with Store(path) as s:
        first = Recorder(s, "r", utcnow(), [target()], "default", owner="dead-process")
        first(device("192.0.2.2"))
        first.interrupt()
        assert s.load_scan("r").errors  # the interruption note of the partial result
        assert not s.reopen_scan("r", "me", expected_owner="someone-else")
        assert s.reopen_scan("r", "me", expected_owner="dead-process")
        assert not s.reopen_scan("r", "rival", expected_owner="dead-process")  # lost the race
        rec = s.scan_record("r")
        assert (rec.status, rec.owner, rec.finished_at) == ("running", "me", None)
        again = Recorder(
            s, "r", rec.started_at, rec.targets, rec.policy, resumed=s.load_devices("r")
        )
        again(device("192.0.2.3"))
        # Killed again now: the scan rebuilds from its rows, old and new, not the stale JSON.
        assert [d.address for d in s.load_scan("r").devices] == ["192.0.2.2", "192.0.2.3"]
        assert [d.address for d in again.partial().devices] == ["192.0.2.2", "192.0.2.3"]
        again.finish(result("r", *again.devices))
        assert s.status("r") == "complete"
        assert not s.reopen_scan("r", "x", expected_owner="me")  # complete stays complete
    assert len(peek(path, "SELECT id FROM scans")) == 1


# -- diff semantics --------------------------------------------------------------------------


def test_diff_new_gone_grades_findings_and_ports() -> None:
    mac = "aa:bb:cc:00:00:01"
    before = result(
        "a",
        device(
            "192.0.2.2",
            mac,
            grade="E",
            findings=(finding("telnet", 23), finding("tls")),
            ports=(23, 80),
        ),
        device("192.0.2.3", grade="C"),
        device("192.0.2.4", grade="B", name="gone"),
    )
    after = result(
        "b",
        device("192.0.2.9", mac, grade="C", findings=(finding("tls"),), ports=(80, 443)),
        device("192.0.2.3", grade="D", findings=(finding("new", 80),)),
        device("192.0.2.5", grade="A", name="newcomer"),
        minutes=5,
    )
    d = diff_results(before, after)
    assert [r.key for r in d.new_devices] == ["192.0.2.5"]
    assert [r.key for r in d.gone_devices] == ["192.0.2.4"]
    by = {c.device.key: c for c in d.changed}
    moved = by[mac]
    assert (moved.grade_before, moved.grade_after, moved.direction) == ("E", "C", "better")
    assert [f.check for f in moved.findings_fixed] == ["telnet"]
    assert moved.findings_new == []
    assert moved.services_opened == ["443/tcp"] and moved.services_closed == ["23/tcp"]
    assert moved.address_before == "192.0.2.2"
    worse = by["192.0.2.3"]
    assert worse.direction == "worse" and [f.check for f in worse.findings_new] == ["new"]
    assert d.unchanged == 0


def test_diff_of_identical_scans_is_empty() -> None:
    a = result("a", device("192.0.2.2", findings=(finding("x"),)))
    b = result("b", *a.devices)
    d = diff_results(a, b)
    assert d.changed == [] and d.new_devices == [] and d.gone_devices == []
    assert d.unchanged == 1


def test_every_migration_downgrades_and_upgrades_again_with_the_data(where: Where) -> None:  # noqa: F811
    """Each revision's downgrade takes a database with history back one step, and the upgrade
    brings it forward again, on both databases, without losing a scan, device or finding."""
    from alembic import command
    from alembic.config import Config

    from iotrate.storage.schema import MIGRATIONS_DIR

    path = where("m.db")
    first = result("s1", device("192.0.2.2", grade="E"), device("192.0.2.3", "aa:bb:cc:00:00:03"))
    with Store(path) as s:
        s.begin_scan("s1", first.started_at, first.targets, "default")
        for d in first.devices:
            s.record_device("s1", d)
        s.finish_scan(first)
    counts = "SELECT (SELECT COUNT(*) FROM scans), (SELECT COUNT(*) FROM devices), " + ", ".join(
        f"(SELECT COUNT(*) FROM {t})" for t in ("services", "findings", "ratings")
    )
    before = peek(path, counts)
    assert before[0][:2] == (1, 2)
    engine = create_engine(database_url(path))
    try:
        for step in range(4, 0, -1):  # 0005 -> 0004 -> ... -> 0001, then back to the head
            with engine.begin() as conn:
                cfg = Config()
                cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, f"{step:04d}")
            assert peek(path, "SELECT version_num FROM alembic_version") == [(f"{step:04d}",)]
            assert peek(path, counts) == before, step
    finally:
        engine.dispose()
    with Store(path) as s:  # opening it upgrades it to the head again
        assert s.schema_version() == 5
        assert s.load_scan("s1") == first
    assert peek(path, counts) == before


def test_device_briefs_read_from_the_rows_say_what_the_devices_say(where: Where) -> None:  # noqa: F811
    """The dashboard lists devices from their columns and findings' rows; they must agree with
    the stored JSON, hostile strings and devices without a rating included."""
    path = where("b.db")
    a = device(
        "192.0.2.2",
        "aa:bb:cc:00:00:02",
        grade="E",
        findings=(finding("telnet-open", 23), finding("tls-weak", 443, HOSTILE)),
        name=HOSTILE,
    )
    b = device("192.0.2.3", grade=None)
    first, second = result("s1", a, b), result("s2", device("192.0.2.9", grade="A"))
    with Store(path) as s:
        for r in (first, second):
            s.finish_scan(r)
        briefs = s.device_briefs(["s2", "s1", "s1"])  # a scan named twice is read once
        expected = [DeviceBrief.of(d, r.scan_id) for r in (first, second) for d in r.devices]
        assert sorted(briefs, key=lambda x: x.address) == sorted(expected, key=lambda x: x.address)
        assert s.device_briefs(["nope"]) == [] and s.device_briefs([]) == []
    (brief_a,) = [x for x in briefs if x.address == "192.0.2.2"]
    assert sorted(brief_a.findings) == [("telnet-open", "high"), ("tls-weak", "high")]
    assert brief_a.names == [HOSTILE] and brief_a.grade == "E" and brief_a.vendor == "Acme"


def _siblings(module: ModuleType) -> set[str]:
    """The modules of its own package that ``module`` imports, anywhere in its body."""
    assert module.__file__ is not None
    package = module.__name__.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.add(f"{package}.{node.module}" if node.level else (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {n.removeprefix(package + ".") for n in found if n.startswith(package + ".")}


@pytest.mark.parametrize(
    ("part", "below"),
    [
        ("schema", set()),
        ("records", set()),
        ("db", {"schema"}),
        ("writer", {"db", "records", "schema"}),
        ("ingest", {"records", "schema", "writer"}),
        ("queries", {"db", "records", "schema"}),
        ("store", {"ingest", "queries"}),
    ],
)
def test_each_part_of_the_store_builds_only_on_the_parts_below(part: str, below: set[str]) -> None:
    """The writer, the fleet ingest and the queries share the base, never each other (the
    ingest writes devices the way the writer does, so it builds on it)."""
    assert _siblings(importlib.import_module(f"iotrate.storage.{part}")) == below
