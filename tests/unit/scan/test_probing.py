"""The probe runner: every (probe, service) gets an outcome, a probe's failure stays its own,
policy and budgets hold, devices are probed as soon as discovery knows them, and ``--safe``
sends no login to anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
import yaml
from iotrate.probes import ENTRY_POINT_GROUP, plugin_probes, registry
from iotrate.probes.base import (
    AttemptBudget,
    BudgetExhausted,
    Intrusiveness,
    LoginGate,
    NotApplicable,
    Policy,
    Probe,
    ProbeContext,
    ProbeFailed,
)
from support.probes import (
    Fake,
    basic_route,
    device,
    ftp_server,
    http_server,
    mqtt_broker,
    rtsp_server,
    snmp_agent,
    tarpit,
    tcp_fake,
    telnet_server,
    udp_fake,
)
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.models import Device, Finding, OutcomeStatus, ProbeOutcome, Severity, Transport
from iotrate.probing import ProbeRunner, RunnerOptions


class _Base(Probe):
    protocols = frozenset({"x"})
    timeout = 0.5
    checks = ("svc.telnet",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        return []


class Finds(_Base):
    id = "t.finds"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        return [Finding(check="svc.telnet", severity=Severity.HIGH, title="t")]


class Sleeps(_Base):
    id = "t.sleeps"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        await asyncio.sleep(10)
        return [Finding(check="svc.telnet", severity=Severity.HIGH, title="never")]


class Crashes(_Base):
    id = "t.crashes"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        raise ZeroDivisionError("boom")


class Fails(_Base):
    id = "t.fails"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        raise ProbeFailed("reset mid-handshake")


class NotHere(_Base):
    id = "t.na"

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        raise NotApplicable("port 443 is not TLS")


class Logs(_Base):
    id = "t.login"
    intrusiveness = Intrusiveness.LOGIN


class Writes(_Base):
    id = "t.write"
    intrusiveness = Intrusiveness.WRITE


class OtherProto(_Base):
    id = "t.other"
    protocols = frozenset({"y"})


def run(devices: list[Device], probes: Sequence[type[Probe]], **opts: Any) -> list[Device]:
    return asyncio.run(ProbeRunner(probes, RunnerOptions(**opts)).run(devices))


def outcome(d: Device, probe: str) -> ProbeOutcome:
    (o,) = [o for o in d.outcomes if o.probe == probe]
    return o


def test_each_failure_mode_maps_to_its_outcome() -> None:
    dev = device((1, "tcp", "x"))
    probes = [Finds, Sleeps, Crashes, Fails, NotHere, Logs, Writes, OtherProto]
    start = time.monotonic()
    (d,) = run([dev], probes, policy=Policy.DEFAULT)
    assert time.monotonic() - start < 3
    assert outcome(d, "t.finds").status is OutcomeStatus.RAN
    sleeps = outcome(d, "t.sleeps")
    assert sleeps.status is OutcomeStatus.FAILED and "timeout after 0.5s" in (sleeps.reason or "")
    crash = outcome(d, "t.crashes")
    assert crash.status is OutcomeStatus.FAILED and "ZeroDivisionError" in (crash.reason or "")
    assert outcome(d, "t.fails").reason == "reset mid-handshake"
    assert outcome(d, "t.na").status is OutcomeStatus.NOT_APPLICABLE
    assert outcome(d, "t.login").status is OutcomeStatus.RAN
    assert outcome(d, "t.write").status is OutcomeStatus.SKIPPED_BY_POLICY
    other = outcome(d, "t.other")
    assert other.status is OutcomeStatus.NOT_APPLICABLE and other.port is None
    for o in d.outcomes:
        assert o.checks == ["svc.telnet"]  # coverage is computed from these
    ran = [o for o in d.outcomes if o.status is not OutcomeStatus.SKIPPED_BY_POLICY and o.port]
    assert all(o.duration_s is not None for o in ran)
    # Only the probe that ran and found something contributes a finding, stamped with its id.
    assert [(f.check, f.probe, f.port) for f in d.findings] == [("svc.telnet", "t.finds", 1)]


@pytest.mark.parametrize(
    ("policy", "login", "write"),
    [
        (Policy.SAFE, OutcomeStatus.SKIPPED_BY_POLICY, OutcomeStatus.SKIPPED_BY_POLICY),
        (Policy.DEFAULT, OutcomeStatus.RAN, OutcomeStatus.SKIPPED_BY_POLICY),
        (Policy.INTRUSIVE, OutcomeStatus.RAN, OutcomeStatus.RAN),
    ],
)
def test_policy_filters_by_intrusiveness(
    policy: Policy, login: OutcomeStatus, write: OutcomeStatus
) -> None:
    (d,) = run([device((1, "tcp", "x"))], [Finds, Logs, Writes], policy=policy)
    assert outcome(d, "t.finds").status is OutcomeStatus.RAN
    assert outcome(d, "t.login").status is login
    assert outcome(d, "t.write").status is write
    if login is OutcomeStatus.SKIPPED_BY_POLICY:
        assert "safe" in (outcome(d, "t.login").reason or "")


def test_one_outcome_per_applicable_service() -> None:
    (d,) = run([device((1, "tcp", "x"), (2, "tcp", "x"), (3, "udp", "x"))], [Finds])
    assert sorted(o.port or 0 for o in d.outcomes) == [1, 2]  # _Base is TCP


class Counting(_Base):
    id = "t.count"
    running: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        cls = type(self)
        cls.running += 1
        cls.peak = max(cls.peak, cls.running)
        await asyncio.sleep(0.05)
        cls.running -= 1
        return []


def test_concurrency_is_bounded_per_device_and_overall() -> None:
    services = [(p, "tcp", "x") for p in range(1, 11)]
    run([device(*services)], [Counting], per_device=3)
    assert Counting.peak == 3
    Counting.peak = 0
    devices = [device(*services).model_copy(update={"id": f"d{i}"}) for i in range(4)]
    run(devices, [Counting], per_device=4, overall=5)
    assert Counting.peak == 5


def test_a_tarpit_service_fails_within_its_timeout_and_the_scan_goes_on() -> None:
    from iotrate.probes.adb import AdbUnauthenticated
    from iotrate.probes.telnet import TelnetExposed

    class QuickTelnet(TelnetExposed):
        listen_s = 0.3

    async def go() -> tuple[Device, float]:
        async with tcp_fake(tarpit) as pit, tcp_fake(telnet_server(None)) as tel:
            dev = device((pit.port, "tcp", "adb"), (tel.port, "tcp", "telnet"))
            start = time.monotonic()
            opts = RunnerOptions(timeout_scale=0.1)  # the ADB probe gets 1 s
            runner = ProbeRunner([AdbUnauthenticated, QuickTelnet], opts)
            (d,) = await runner.run([dev])
            return d, time.monotonic() - start

    d, took = asyncio.run(go())
    adb = outcome(d, "svc.adb")
    assert adb.status is OutcomeStatus.FAILED and took < 3.0
    assert outcome(d, "svc.telnet").status is OutcomeStatus.RAN
    assert [f.check for f in d.findings] == ["svc.telnet"]


class Correlates(_Base):
    id = "t.corr"
    checks = ("tls.cert.shared",)

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> Mapping[str, list[Finding]]:
        return {
            d.id: [Finding(check="tls.cert.shared", severity=Severity.MEDIUM, title="shared")]
            for d in devices
        }


class CorrelateCrash(_Base):
    id = "t.corr-crash"
    checks = ("ssh.hostkey.shared",)

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> Mapping[str, list[Finding]]:
        raise RuntimeError("bad")


def test_correlation_runs_after_all_devices() -> None:
    devs = [device((1, "tcp", "x")).model_copy(update={"id": i}) for i in ("a", "b")]
    out = run(devs, [Correlates, CorrelateCrash])
    for d in out:
        assert [(f.check, f.probe) for f in d.findings] == [("tls.cert.shared", "t.corr")]
        failed = [o for o in d.outcomes if o.status is OutcomeStatus.FAILED]
        assert [o.checks for o in failed] == [["ssh.hostkey.shared"]]


def test_login_gate_caps_spaces_and_shares() -> None:
    async def go() -> tuple[float, int, int]:
        parent = LoginGate(AttemptBudget(max_attempts=3, delay_s=0.05, per_username=2))
        a, b = parent.child(), parent.child()
        start = time.monotonic()
        await a.take("root")
        await b.take("root")
        assert not a.allows("root") and a.allows("admin")
        with pytest.raises(BudgetExhausted):
            await a.take("root")
        await b.take("admin")
        with pytest.raises(BudgetExhausted):
            await a.take("other")
        return time.monotonic() - start, a.attempts, b.attempts

    took, a, b = asyncio.run(go())
    assert (a, b) == (1, 2)
    assert took >= 0.1  # three attempts, two gaps of 50 ms


def test_registry_has_the_probe_families_with_scheme_check_ids() -> None:
    reg = registry(include_plugins=False)
    ids = {p.id for p in reg.probes}
    mine = {
        "cred.telnet", "cred.ssh", "cred.http", "cred.ftp", "cred.mqtt", "cred.rtsp",
        "cred.snmp", "svc.telnet", "svc.ftp", "svc.adb", "svc.snmp", "svc.snmp.write",
        "svc.upnp", "svc.upnp.portmap", "svc.rtsp", "svc.api", "svc.http", "svc.mqtt",
        "svc.coap", "svc.modbus", "svc.smb",
    }  # fmt: skip
    assert mine <= ids
    scheme = yaml.safe_load(open("rating_schema/iotrate-2026.1.yaml", encoding="utf-8"))
    known = {c["id"] for c in scheme["checks"]}
    for p in reg.probes:
        if p.id in mine:
            assert p.checks and set(p.checks) <= known, (p.id, set(p.checks) - known)
            assert p.intrusiveness is not Intrusiveness.PASSIVE or not p.id.startswith("cred.")


def test_plugins_load_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    class EP:
        def __init__(self, name: str, obj: Any) -> None:
            self.name, self.value, self.obj = name, f"pkg:{name}", obj

        def load(self) -> Any:
            if isinstance(self.obj, Exception):
                raise self.obj
            return self.obj

    eps = [EP("good", Finds), EP("many", [Fails, NotHere]), EP("bad", ImportError("x")),
           EP("junk", 42)]  # fmt: skip
    seen: list[str] = []

    def fake_entry_points(group: str) -> list[EP]:
        seen.append(group)
        return eps

    monkeypatch.setattr("iotrate.probes.entry_points", fake_entry_points)
    probes, errors = plugin_probes()
    assert seen == [ENTRY_POINT_GROUP]
    assert {p.id for p in probes} == {"t.finds", "t.fails", "t.na"}
    assert len(errors) == 2 and any("junk" in e for e in errors)


def test_scan_starts_probing_a_device_before_the_sweep_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first host's probes run while discovery still waits on the second host."""
    from iotrate import scan as scan_mod
    from iotrate.discovery.portscan import HostScan
    from iotrate.models import Service
    from iotrate.targets import resolve_targets

    started = asyncio.Event

    class Marks(_Base):
        id = "t.marks"
        event: ClassVar[asyncio.Event | None] = None

        async def run(self, ctx: ProbeContext) -> list[Finding]:
            assert Marks.event is not None
            Marks.event.set()
            return []

    async def fake_scan_hosts(
        hosts: list[str], specs: Any, limits: Any, on_host: Any, **kw: Any
    ) -> Any:
        Marks.event = started()
        first = HostScan("127.0.0.1", True, [Service(port=1, protocol="x")])
        on_host(first)
        await asyncio.wait_for(Marks.event.wait(), 2)  # would time out if probing waited
        return [first]

    monkeypatch.setattr(scan_mod, "scan_hosts", fake_scan_hosts)
    monkeypatch.setattr(scan_mod, "local_addresses", lambda: set())
    monkeypatch.setattr(
        scan_mod, "default_runner", lambda o: (ProbeRunner([Marks], o), ["plugin x failed"])
    )
    result = asyncio.run(
        scan_mod.run_scan(resolve_targets(["127.0.0.1"]), scan_mod.ScanOptions(policy="safe"))
    )
    assert result.policy == "safe"
    assert result.errors == ["plugin x failed"]
    assert [o.status for o in result.devices[0].outcomes] == [OutcomeStatus.RAN]


def test_cli_policy_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def fake_run_scan(targets: Any, options: Any) -> Any:
        from iotrate.models import ScanResult, utcnow

        seen.append(options.policy)
        return ScanResult(scan_id="x", started_at=utcnow(), policy=options.policy)

    monkeypatch.setattr("iotrate.scan.run_scan", fake_run_scan)
    runner = CliRunner()
    both = runner.invoke(app, ["scan", "127.0.0.1", "--safe", "--intrusive"])
    assert both.exit_code == 2 and "exclude" in both.output
    assert runner.invoke(app, ["scan", "127.0.0.1", "--safe", "--json"]).exit_code == 0
    lab = runner.invoke(app, ["scan", "127.0.0.1", "--intrusive", "--json"])
    assert lab.exit_code == 0 and "only in a test lab" in lab.output
    assert runner.invoke(app, ["scan", "127.0.0.1", "--json"]).exit_code == 0
    assert seen == ["safe", "intrusive", "default"]


def test_safe_mode_sends_no_login_to_any_service() -> None:
    """Every login-capable fake counts the credentials it receives; in safe mode none may
    arrive, while the default policy does log in (so the counters do work)."""
    from iotrate.probes.telnet import TelnetDefaultPassword

    class QuickTelnet(TelnetDefaultPassword):
        step_timeout = 1.0

    async def go(policy: Policy) -> dict[str, int]:
        async with (
            tcp_fake(telnet_server(("root", "admin"))) as tel,
            tcp_fake(http_server(basic_route(("admin", "admin")))) as web,
            tcp_fake(ftp_server(("admin", "admin"))) as ftp,
            tcp_fake(mqtt_broker(("admin", "admin"))) as mqtt,
            tcp_fake(rtsp_server({"/": "auth"}, ("admin", "admin"))) as cam,
            udp_fake(snmp_agent({"public", "private"})) as agent,
        ):
            dev = device(
                (tel.port, "tcp", "telnet"),
                (web.port, "tcp", "http"),
                (ftp.port, "tcp", "ftp"),
                (mqtt.port, "tcp", "mqtt"),
                (cam.port, "tcp", "rtsp"),
                (agent.port, "udp", "snmp"),
            )
            probes = [
                p
                for p in registry(include_plugins=False).probes
                if p.id.startswith(("cred.", "svc.")) and p.id != "cred.telnet"
            ]
            probes.append(QuickTelnet)
            runner = ProbeRunner(probes, RunnerOptions(policy=policy, timeout_scale=0.5))
            await runner.run([dev])
            snmp_logins = [c for kind, c in agent.logins if c != "public"]
            fakes: dict[str, Fake] = {
                "telnet": tel,
                "http": web,
                "ftp": ftp,
                "mqtt": mqtt,
                "rtsp": cam,
            }
            counts = {k: len(f.logins) for k, f in fakes.items()}
            counts["snmp"] = len(snmp_logins)
            return counts

    safe = asyncio.run(go(Policy.SAFE))
    assert safe == dict.fromkeys(safe, 0), safe
    default = asyncio.run(go(Policy.DEFAULT))
    assert all(n > 0 for n in default.values()), default


def test_transport_of_udp_outcomes() -> None:
    class Udp(_Base):
        id = "t.udp"
        transport = Transport.UDP

    (d,) = run([device((161, "udp", "x"))], [Udp])
    assert outcome(d, "t.udp").transport is Transport.UDP
