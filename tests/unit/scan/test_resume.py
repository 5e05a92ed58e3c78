"""``scan --resume`` without a network: which scan is picked, what is refused, who owns a
running scan, and that the rest of a scan skips what is stored and rates old and new together.
The kill -9 test against real daemons is tests/lab/test_resume_lab.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from iotrate.errors import UsageError
from iotrate.models import Device, Service, Target, TargetKind, utcnow
from iotrate.resume import claim, owner_alive, owner_token, plan_resume
from iotrate.scanrequest import OPTIONS_VERSION, record_options
from iotrate.storage import Recorder, Store

PARAMS: dict[str, Any] = {
    "ports": "iot",
    "allow_public": False,
    "max_hosts": None,
    "timeout": 1.0,
    "concurrency": 2,
    "safe": True,
    "intrusive": False,
    "exclude": ["192.0.2.9"],
    "use_nmap": False,
    "allow_list": None,
    "rate_limit": 50.0,
    "json_out": True,  # not a scan option: never recorded
}


def target(spec: str) -> Target:
    return Target(spec=spec, kind=TargetKind.NETWORK, first="192.0.2.0", last="192.0.2.7", size=6)


def dead_owner() -> str:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return owner_token(int(proc.stdout))  # the pid is gone (start time None: kill(0) says so)


def stored(
    store: Store, sid: str, spec: str = "192.0.2.0/29", minutes: int = 0, **kw: Any
) -> Recorder:
    kw.setdefault("options", record_options(PARAMS))
    kw.setdefault("owner", dead_owner())
    return Recorder(store, sid, utcnow() + timedelta(minutes=minutes), [target(spec)], "safe", **kw)


def test_recorded_options_are_the_scan_params_only() -> None:
    opts = record_options({**PARAMS, "allow_list": Path("lab.txt")})
    assert opts["version"] == OPTIONS_VERSION
    assert "json_out" not in opts["params"]
    assert opts["params"]["allow_list"] == str(Path("lab.txt").resolve())
    assert json.loads(json.dumps(opts)) == opts


def test_owner_of_this_process_is_alive_and_of_a_gone_one_is_not() -> None:
    assert owner_alive(owner_token()) is True
    assert owner_alive(dead_owner()) is False
    me = json.loads(owner_token())
    assert owner_alive(json.dumps({**me, "start": "1"})) is False  # pid reused by another
    assert owner_alive(json.dumps({**me, "boot": "another-boot"})) is False  # rebooted since
    assert owner_alive(json.dumps({**me, "host": "elsewhere"})) is None  # cannot tell
    assert owner_alive(None) is None and owner_alive("garbage") is None


def test_picks_by_prefix_by_targets_or_the_latest(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
        a = stored(s, "aaaa-1", minutes=0)
        a(Device(id="x", address="192.0.2.2"))
        stored(s, "bbbb-2", spec="192.0.2.64/29", minutes=1)
        done = stored(s, "cccc-3", minutes=2)
        done.finish(done.partial())  # complete: never picked
        assert plan_resume(s, [], {}).record.scan_id == "bbbb-2"
        plan = plan_resume(s, ["192.0.2.0/29"], {})
        assert plan.record.scan_id == "aaaa-1"
        assert [d.address for d in plan.devices] == ["192.0.2.2"]
        assert plan.params["exclude"] == ["192.0.2.9"] and "json_out" not in plan.params
        assert plan_resume(s, ["aaaa"], {}).record.scan_id == "aaaa-1"
        assert plan_resume(s, ["aaaa", "192.0.2.0/29"], {}).specs == ["192.0.2.0/29"]


def test_refusals(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
        stored(s, "aaaa-1")
        with pytest.raises(UsageError, match=r"was of 192\.0\.2\.0/29, not 10\.0\.0\.0/24"):
            plan_resume(s, ["aaaa", "10.0.0.0/24"], {})
        with pytest.raises(UsageError, match=r"no interrupted scan of 10\.0\.0\.0/24.*latest"):
            plan_resume(s, ["10.0.0.0/24"], {})
        with pytest.raises(UsageError, match="--ports differs"):
            plan_resume(s, ["aaaa"], {"ports": "22"})
        with pytest.raises(UsageError, match="--nmap differs"):
            plan_resume(s, ["aaaa"], {"use_nmap": True})
        # The same values typed again are no conflict (list order aside).
        assert plan_resume(s, [], {"safe": True, "exclude": ["192.0.2.9"]})
        done = stored(s, "dddd-2", minutes=1)
        done.finish(done.partial())
        with pytest.raises(UsageError, match="complete"):
            plan_resume(s, ["dddd"], {})
        stored(s, "eeee-3", minutes=2, owner=owner_token())  # this process: alive
        with pytest.raises(UsageError, match=f"still running \\(process {os.getpid()}\\)"):
            plan_resume(s, ["eeee"], {})
        assert plan_resume(s, [], {}).record.scan_id == "aaaa-1"  # the live one is passed over
        stored(s, "ffff-4", minutes=3, options=None)
        with pytest.raises(UsageError, match="did not record its options"):
            plan_resume(s, ["ffff"], {})


def test_claim_makes_this_process_the_owner_once(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as s:
        stored(s, "aaaa-1")
        plan = plan_resume(s, [], {})
        me = claim(s, plan)
        assert owner_alive(s.scan_record("aaaa-1").owner) and me == owner_token()
        with pytest.raises(UsageError, match="resumed by another"):
            claim(s, plan)  # the plan's owner is stale now


def test_run_scan_skips_stored_hosts_and_rates_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iotrate import scan as scan_mod
    from iotrate.discovery import sweep as sweep_mod
    from iotrate.discovery.portscan import HostScan
    from iotrate.targets import resolve_targets

    swept: list[str] = []

    async def fake_discover(hosts: list[str], specs: Any, limits: Any, on_host: Any,
                            *args: Any) -> Any:  # fmt: skip
        swept.extend(hosts)
        found = [HostScan(h, True, [Service(port=23, protocol="telnet")]) for h in hosts[:1]]
        for h in found:
            on_host(h)
        return found, "tcp-connect (unprivileged)"

    monkeypatch.setattr(scan_mod, "discover", fake_discover)
    monkeypatch.setattr(scan_mod, "local_addresses", lambda: set())
    monkeypatch.setattr(sweep_mod, "neighbour_macs", lambda: {})
    old = Device(id="127.0.0.2", address="127.0.0.2", services=[Service(port=23)])
    began = utcnow() - timedelta(hours=1)
    opts = scan_mod.ScanOptions(
        probes=False, multicast=False, identify=False, resumed=(old,), started_at=began
    )
    r = asyncio.run(scan_mod.run_scan(resolve_targets(["127.0.0.2-4"]), opts))
    assert swept == ["127.0.0.3", "127.0.0.4"]
    assert [d.address for d in r.devices] == ["127.0.0.2", "127.0.0.3"]
    assert r.started_at == began
    # every device rated (2026.3: with probes off nothing decisive ran, so no letter)
    assert all(d.rating is not None and d.rating.status for d in r.devices)
    assert r.scope is not None and r.scope.tcp_ports == "curated" and r.scope.profile == "home"
