"""The collector's writes through the store, on SQLite and PostgreSQL: idempotent under
redelivery and reordering, and a scan never changes hands between sites."""

from __future__ import annotations

import pytest
from support.fleet import postgres  # noqa: F401
from support.storage import (
    HOSTILE,
    Where,
    device,
    finding,
    peek,
    result,
    target,
    where,  # noqa: F401
)

from iotrate.models import Device, Service, utcnow
from iotrate.storage.ingest import ForeignScan
from iotrate.storage.store import Store

SITE, AGENT = "shop-7", "agent-1"


def start(s: Store, scan_id: str, site: str = SITE, agent: str = AGENT) -> bool:
    r = result(scan_id)
    return s.ingest_start(
        scan_id=scan_id, site=site, agent_id=agent, started_at=r.started_at,
        targets=[target()], policy="default", tool_version="9.9", options={"ports": "iot"},
    )  # fmt: skip


def devices_in(s: Store, scan_id: str, *devs: Device, site: str = SITE) -> bool:
    return s.ingest_devices(
        scan_id,
        list(devs),
        site=site,
        agent_id=AGENT,
        received_at=utcnow(),
    )


def test_redelivered_messages_change_nothing(where: Where) -> None:  # noqa: F811
    path = where("c.db")
    a, b = device("192.0.2.2", grade="E"), device("192.0.2.3", "aa:bb:cc:00:00:03")
    gone = device("192.0.2.9")  # sent mid-scan, absent from the final result
    final = result("s1", device("192.0.2.2", grade="C"), b)
    lean = final.model_copy(update={"devices": []})
    with Store(path) as s:
        for _ in range(2):  # everything delivered twice, as at-least-once allows
            assert start(s, "s1")
            assert devices_in(s, "s1", a)
            assert devices_in(s, "s1", b, b, gone)  # and twice within one batch
        rec = s.scan_record("s1")
        assert (rec.site, rec.agent_id, rec.policy, rec.status) == (
            SITE,
            AGENT,
            "default",
            "running",
        )
        assert rec.options == {"ports": "iot"}
        final_a = final.devices[0]
        assert devices_in(s, "s1", final_a)  # the end of the scan changed it: sent again
        for _ in range(2):
            s.ingest_end(
                lean, "complete", site=SITE, agent_id=AGENT, addresses=["192.0.2.2", "192.0.2.3"]
            )
            assert not devices_in(s, "s1", final_a)  # redelivered after the end: no change
        assert not devices_in(s, "s1", a)  # a late copy of the provisional device: ignored
        assert not start(s, "s1")  # a late start does not reopen the scan
        assert s.load_scan("s1") == final
        (summary,) = s.scans()
        assert (summary.site, summary.devices, summary.grades) == (SITE, 2, {"C": 2})
    assert peek(path, "SELECT COUNT(*) FROM devices") == [(2,)]
    assert peek(path, "SELECT COUNT(*) FROM findings") == [(0,)]
    assert peek(path, "SELECT COUNT(*) FROM services") == [(2,)]


def test_devices_before_their_start_and_an_end_without_devices(where: Where) -> None:  # noqa: F811
    with Store(where("c.db")) as s:
        assert devices_in(s, "s2", device("192.0.2.2", findings=(finding("x", 80),)))
        assert s.scan_record("s2").policy == "unknown"  # a placeholder until the start comes
        assert start(s, "s2")
        assert s.scan_record("s2").targets == [target()]
        devices_in(s, "s2", device("192.0.2.4"))
        cut = result("s2").model_copy(update={"errors": ["agent stopped"]})
        s.ingest_end(cut, "interrupted", site=SITE, agent_id=AGENT, addresses=None)
        loaded = s.load_scan("s2")  # rebuilt from the rows: both devices stand
        assert [d.address for d in loaded.devices] == ["192.0.2.2", "192.0.2.4"]
        assert loaded.errors == ["agent stopped"] and s.status("s2") == "interrupted"


def test_a_scan_never_changes_site_or_agent(where: Where) -> None:  # noqa: F811
    with Store(where("c.db")) as s:
        start(s, "s3")
        with pytest.raises(ForeignScan):
            start(s, "s3", site="elsewhere")
        with pytest.raises(ForeignScan):
            start(s, "s3", agent="intruder")
        with pytest.raises(ForeignScan):
            devices_in(s, "s3", device("192.0.2.9"), site="elsewhere")
        s.begin_scan("local-1", utcnow(), [target()], "default")  # a local scan is site 'local'
        with pytest.raises(ForeignScan):
            s.ingest_end(result("local-1"), "complete", site=SITE, agent_id=AGENT, addresses=[])
        assert s.load_scan("s3").devices == [] and s.status("local-1") == "running"


def test_a_batch_commits_together_and_nul_bytes_are_stored(where: Where) -> None:  # noqa: F811
    path = where("c.db")
    nul = device("192.0.2.5", name="cam\x00era").model_copy(
        update={"services": [Service(port=80, banner="Server: x\x00y")]}
    )
    with Store(path) as s:
        with pytest.raises(RuntimeError), s.batch():
            start(s, "s4")
            devices_in(s, "s4", device("192.0.2.2"))
            raise RuntimeError("the collector died before the commit")
        assert s.scans() == []  # nothing of the batch: it will be redelivered
        with s.batch():
            start(s, "s4")
            devices_in(s, "s4", nul, device(HOSTILE[:20]))
        assert s.load_devices("s4")[0] == nul  # the JSON keeps the device exactly
    assert peek(path, "SELECT banner FROM services WHERE port = 80 ORDER BY banner")[0] == (
        "Server: x\\x00y",
    )
