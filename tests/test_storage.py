"""The history store: round trip, incremental writes, interruption, hostile strings, schema."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from iotrate.errors import RuntimeFailure, UsageError
from iotrate.history import diff_results
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
from iotrate.storage import MIGRATIONS, SCHEMA_VERSION, Recorder, Store, default_path

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


def test_default_path_is_under_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTRATE_DB")
    p = default_path()
    assert p.name == "iotrate.db" and p.parent.name == "iotrate"
    monkeypatch.setenv("IOTRATE_DB", "/tmp/x.db")
    assert default_path() == Path("/tmp/x.db")


def test_migrations_from_an_empty_db_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "h.db"
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    with Store(path) as s:  # opening again applies nothing twice
        assert s.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {
        "schema_version",
        "scans",
        "devices",
        "services",
        "observations",
        "findings",
        "outcomes",
        "ratings",
    } <= tables


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeFailure, match="newer"):
        Store(path)


def test_a_file_that_is_not_a_database_is_a_runtime_failure(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RuntimeFailure, match="history database"):
        Store(path)


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    r = result("scan-1", device("192.0.2.2", "aa:bb:cc:00:00:01", findings=(finding("x", 23),)))
    with Store(tmp_path / "h.db") as s:
        s.begin_scan(r.scan_id, r.started_at, r.targets, r.policy)
        s.finish_scan(r)
        assert s.load_scan("scan-1") == r
        assert s.load_scan("scan-") == r  # a unique prefix is enough
        assert s.status("scan-1") == "complete"
        (summary,) = s.scans()
        assert summary.devices == 1 and summary.grades == {"C": 1}
        assert summary.targets == ["192.0.2.0/29"]


def test_finish_without_begin_still_stores(tmp_path: Path) -> None:
    r = result("scan-2", device("192.0.2.2"))
    with Store(tmp_path / "h.db") as s:
        s.finish_scan(r)
        assert s.load_scan("scan-2") == r


def test_unknown_and_ambiguous_ids_are_usage_errors(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
        for sid in ("abc1", "abc2"):
            s.finish_scan(result(sid))
        with pytest.raises(UsageError, match="no stored scan"):
            s.load_scan("zzz")
        with pytest.raises(UsageError, match="ambiguous"):
            s.resolve("abc")
        with pytest.raises(UsageError):
            s.resolve("%")  # LIKE wildcards are matched literally


def test_hostile_strings_are_stored_verbatim_and_harmless(tmp_path: Path) -> None:
    d = device("192.0.2.3", name=HOSTILE, findings=(finding("c", title=HOSTILE),))
    path = tmp_path / "h.db"
    r = result(HOSTILE, d)
    with Store(path) as s:
        s.begin_scan(r.scan_id, r.started_at, [target(HOSTILE)], r.policy)
        s.record_device(r.scan_id, d)
        s.finish_scan(r)
        assert s.load_scan(HOSTILE) == r
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM scans").fetchone() == (1,)
    assert conn.execute("SELECT model FROM devices").fetchone() == (HOSTILE,)
    assert conn.execute("SELECT banner FROM services").fetchone() == (f"banner {HOSTILE}",)
    assert conn.execute("SELECT title FROM findings").fetchone() == (HOSTILE,)
    assert conn.execute("SELECT value FROM observations").fetchone() == (HOSTILE,)
    conn.close()


def test_each_device_is_visible_to_another_connection_when_written(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    start = utcnow()
    with Store(path) as s:
        rec = Recorder(s, "live", start, [target()], "default")
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT status FROM scans").fetchone() == ("running",)
        rec(device("192.0.2.2"))
        assert reader.execute("SELECT COUNT(*) FROM devices").fetchone() == (1,)
        rec(device("192.0.2.3"))
        assert reader.execute("SELECT COUNT(*) FROM devices").fetchone() == (2,)
        reader.close()
        # A scan killed now (no finish) still loads, rebuilt from what it committed.
        again = s.load_scan("live")
        assert [d.address for d in again.devices] == ["192.0.2.2", "192.0.2.3"]
        assert again.finished_at is None and s.status("live") == "running"


def test_final_result_replaces_provisional_device_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
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
    monkeypatch.setattr(scan_mod, "neighbour_macs", lambda: {})
    monkeypatch.setattr(ProbeRunner, "probe_device", probe_device)


def test_interrupted_scan_keeps_finished_devices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from iotrate import scan as scan_mod
    from iotrate.targets import resolve_targets

    fake_scan(monkeypatch, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], stall="127.0.0.3")
    targets = resolve_targets(["127.0.0.2-4"])
    path = tmp_path / "h.db"
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
    monkeypatch.setattr(scan_mod, "neighbour_macs", lambda: {})
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
