"""``--budget``: the most telling probes run first, nothing starts after the deadline, whatever
runs is stopped there, and what the budget cut counts as unknown (coverage drops), never as a
pass or a finding. The real budgeted scan of the reference lab is tests/lab/test_budget_lab.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import time
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from iotrate.probes.base import Probe, ProbeContext
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import AnyCondition, FindingCondition
from support.probes import device
from typer.testing import CliRunner

from iotrate.cli import app
from iotrate.models import Confidence, Device, Finding, OutcomeStatus, ProbeOutcome, Severity
from iotrate.probing import (
    BUDGET_REASON,
    ProbeRunner,
    RunnerOptions,
    ScanExecutor,
    budget_cut,
    check_stakes,
    default_runner,
    order_probes,
    parse_budget,
    probe_priority,
)
from iotrate.rating import rate

# --- order: most telling first --------------------------------------------------------------


def _probe(pid: str, checks: tuple[str, ...], timeout: float = 1.0) -> type[Probe]:
    async def run(self: Probe, ctx: ProbeContext) -> list[Finding]:
        return []

    return type(
        pid,
        (Probe,),
        {
            "id": pid,
            "checks": checks,
            "timeout": timeout,
            "protocols": frozenset({"x"}),
            "run": run,
        },
    )


def _scheme() -> Any:
    """A small scheme: weights 5/10/20, one cap at G and one at E (inside an ``any``)."""
    band = SimpleNamespace
    return SimpleNamespace(
        score_start=100.0,
        bands=[band(grade=g, min_score=m) for g, m in (("A", 90), ("E", 40), ("F", 20), ("G", 0))],
        checks=[
            SimpleNamespace(id="c.weight20", weight=20),
            SimpleNamespace(id="c.weight10", weight=10),
            SimpleNamespace(id="c.capG", weight=1),
            SimpleNamespace(id="c.capE", weight=5),
        ],
        caps=[
            SimpleNamespace(grade="G", when=FindingCondition(("c.capG",), (), Confidence.PROBABLE)),
            SimpleNamespace(
                grade="E",
                when=AnyCondition((FindingCondition(("c.capE",), (), Confidence.PROBABLE),)),
            ),
        ],
    )


def test_stakes_are_weights_raised_by_the_caps_that_name_a_check() -> None:
    stakes = check_stakes(_scheme())
    # A cap at G costs everything down to below F's floor (100 - 20); a cap at E down to
    # below the band above E, A (100 - 90), which beats c.capE's own weight of 5.
    assert stakes == {"c.weight20": 20.0, "c.weight10": 10.0, "c.capG": 80.0, "c.capE": 10.0}


def test_most_telling_first_then_cheaper_then_by_id_in_any_input_order() -> None:
    stakes = check_stakes(_scheme())
    probes = [
        _probe("p.low", ("c.weight10",), timeout=1.0),
        _probe("p.cap", ("c.weight10", "c.capG")),  # its highest stake counts
        _probe("p.mid", ("c.weight20",)),
        _probe("p.unknown", ("c.not-in-scheme",)),
        _probe("p.b-low-slow", ("c.capE",), timeout=30.0),
        _probe("p.a-low-slow", ("c.capE",), timeout=30.0),
    ]
    expected = ["p.cap", "p.mid", "p.low", "p.a-low-slow", "p.b-low-slow", "p.unknown"]
    rng = random.Random(7)
    for _ in range(20):
        shuffled = rng.sample(probes, len(probes))
        ordered = order_probes(shuffled, stakes, lambda p: float(p.timeout))
        assert [p.id for p in ordered] == expected


def test_the_shipped_probes_run_in_the_order_of_the_shipped_scheme() -> None:
    stakes = check_stakes(load_scheme())
    runner, errors = default_runner()
    assert not errors
    ids = [p.id for p in runner.probes]
    prio = [probe_priority(p, stakes) for p in runner.probes]
    assert prio == sorted(prio, reverse=True)
    # Default-password logins and unauthenticated ADB (caps at G) before TLS enumeration
    # before the version/disclosure checks of SNMP and UPnP.
    assert ids.index("cred.telnet") < ids.index("tls") < ids.index("svc.snmp")
    assert ids.index("svc.adb") < ids.index("tls") < ids.index("svc.upnp")


class _Recorder(Probe):
    protocols = frozenset({"x"})
    timeout = 2.0
    started: ClassVar[list[str]] = []

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        type(self).started.append(f"{ctx.device.id}:{self.id}")
        await asyncio.sleep(0.02)
        return []


class _High(_Recorder):
    id = "t.high"
    checks = ("cred.default-password",)


class _Low(_Recorder):
    id = "t.low"
    checks = ("update.version-unknown",)


def test_a_freed_slot_goes_to_the_most_telling_probe_scan_wide() -> None:
    _Recorder.started = []
    devices = [device((1, "tcp", "x")).model_copy(update={"id": f"d{i}"}) for i in range(3)]
    runner = ProbeRunner(
        [_Low, _High], RunnerOptions(overall=1), stakes=check_stakes(load_scheme())
    )
    asyncio.run(runner.run(devices))
    # The first job takes the free slot; after that every high-stakes job on any device goes
    # before any low one (first come, first served would alternate high and low).
    assert _Recorder.started == [
        "d0:t.high",
        "d1:t.high",
        "d2:t.high",
        "d0:t.low",
        "d1:t.low",
        "d2:t.low",
    ]


# --- the deadline ------------------------------------------------------------------------------


class _Telnet(Probe):
    """Finds exposed telnet (a real scheme check), after ``delay`` seconds."""

    id = "t.telnet"
    protocols = frozenset({"x"})
    timeout = 10.0
    checks = ("svc.telnet",)
    delay: ClassVar[float] = 0.0
    cleaned: ClassVar[list[str]] = []

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        try:
            await asyncio.sleep(self.delay)
        finally:
            type(self).cleaned.append(self.id)  # its own cleanup runs when cancelled
        return [Finding(check="svc.telnet", severity=Severity.HIGH, title="telnet is open")]


class _SlowTelnet(_Telnet):
    id = "t.telnet-slow"
    delay = 5.0


class _Update(Probe):
    id = "t.update"
    protocols = frozenset({"x"})
    timeout = 10.0
    checks = ("update.version-unknown",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        return [Finding(check="update.version-unknown", severity=Severity.LOW, title="no version")]


def _run_with_budget(
    probes: list[type[Probe]], budget: float | None, **opts: Any
) -> tuple[Device, float]:
    async def go() -> tuple[Device, float]:
        start = time.monotonic()
        deadline = start + budget if budget is not None else None
        runner = ProbeRunner(
            probes,
            RunnerOptions(deadline=deadline, budget=budget, **opts),
            stakes=check_stakes(load_scheme()),
        )
        (d,) = await runner.run([device((23, "tcp", "x"))])
        return d, time.monotonic() - start

    return asyncio.run(go())


def _outcome(d: Device, probe: str) -> ProbeOutcome:
    (o,) = [o for o in d.outcomes if o.probe == probe]
    return o


def test_a_running_probe_is_stopped_at_the_deadline_and_a_waiting_one_never_starts() -> None:
    _Telnet.cleaned = []
    # One slot: the slow telnet probe (higher stakes) takes it; the update probe waits for it.
    d, took = _run_with_budget([_Update, _SlowTelnet], 0.4, overall=1)
    assert took < 1.5  # not the 5 s the probe wanted, nor its 10 s timeout
    slow = _outcome(d, "t.telnet-slow")
    assert slow.status is OutcomeStatus.FAILED
    assert re.fullmatch(rf"{BUDGET_REASON} \(0\.4 s\): stopped after 0\.\d+s", slow.reason or "")
    assert _Telnet.cleaned == ["t.telnet-slow"]
    waiting = _outcome(d, "t.update")
    assert waiting.status is OutcomeStatus.SKIPPED_BY_POLICY
    assert waiting.reason == f"{BUDGET_REASON} (0.4 s): not started"
    assert waiting.checks == ["update.version-unknown"]
    assert d.findings == []  # neither telnet nor the version finding: nothing proven
    assert slow.budget_s == waiting.budget_s == 0.4  # typed, not only in the sentence
    assert budget_cut(d) == 0.4
    # A result written before the field existed still tells the cut from the reason.
    legacy = d.model_copy(
        update={"outcomes": [o.model_copy(update={"budget_s": None}) for o in d.outcomes]}
    )
    assert budget_cut(legacy) == 0.4


def test_no_budget_no_cut_and_a_generous_budget_changes_nothing() -> None:
    for budget in (None, 30.0):
        d, _ = _run_with_budget([_Update, _Telnet], budget, overall=1)
        assert {o.status for o in d.outcomes} == {OutcomeStatus.RAN}
        assert sorted(f.check for f in d.findings) == ["svc.telnet", "update.version-unknown"]
        assert budget_cut(d) is None


def test_a_probe_whose_own_timeout_ends_first_says_timeout_not_budget() -> None:
    d, _ = _run_with_budget([_SlowTelnet], 3.0, timeouts={"t.telnet-slow": 0.2})
    o = _outcome(d, "t.telnet-slow")
    assert o.status is OutcomeStatus.FAILED and o.reason == "timeout after 0.2s"
    assert budget_cut(d) is None


def test_a_spent_budget_starts_nothing() -> None:
    d, took = _run_with_budget([_Update, _Telnet], 0.0)
    assert took < 0.5
    assert {o.status for o in d.outcomes} == {OutcomeStatus.SKIPPED_BY_POLICY}
    assert all((o.reason or "").endswith("not started") for o in d.outcomes)


def test_what_the_budget_cut_is_unknown_in_the_rating_never_a_pass_or_a_finding() -> None:
    scheme = load_scheme()
    today = dt.date(2026, 12, 5)
    full, _ = _run_with_budget([_Update, _Telnet], None)
    cut, _ = _run_with_budget([_Update, _SlowTelnet], 0.3, overall=1)
    r_full, r_cut = rate(full, scheme, today=today), rate(cut, scheme, today=today)
    assert r_full.coverage is not None and r_cut.coverage is not None
    assert "svc.telnet" not in r_full.coverage.checks_unknown
    assert {"svc.telnet", "update.version-unknown"} <= set(r_cut.coverage.checks_unknown)
    assert r_cut.coverage.checks_run < r_full.coverage.checks_run
    assert r_cut.coverage.fraction < r_full.coverage.fraction
    # The full run proved telnet open, which costs points; the cut run proved nothing.
    assert "svc.telnet" in {f.check for f in full.findings}
    assert "svc.telnet" not in {f.check for f in cut.findings}


def test_a_blocking_call_in_a_worker_thread_does_not_hold_the_scan_past_its_budget() -> None:
    class Blocks(Probe):
        id = "t.blocks"
        protocols = frozenset({"x"})
        timeout = 10.0
        checks = ("svc.telnet",)

        async def run(self, ctx: ProbeContext) -> list[Finding]:
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 3)
            return []

    async def go() -> Device:
        asyncio.get_running_loop().set_default_executor(ScanExecutor())  # as run_scan does
        runner = ProbeRunner([Blocks], RunnerOptions(deadline=time.monotonic() + 0.3, budget=0.3))
        (d,) = await runner.run([device((23, "tcp", "x"))])
        return d

    start = time.monotonic()
    d = asyncio.run(go())  # closing the loop must not join the sleeping thread
    assert time.monotonic() - start < 1.5
    assert "stopped after" in (_outcome(d, "t.blocks").reason or "")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("1m30s", 90), ("1h", 3600), ("0.5s", 0.5)],
)
def test_budget_durations(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "soon", "-5s", "5 minutes", "1s2m"])
def test_bad_budgets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_budget(text)


def test_a_bad_budget_is_a_usage_error_before_anything_is_sent() -> None:
    res = CliRunner().invoke(app, ["scan", "127.0.0.1", "--budget", "soon", "--no-history"])
    assert res.exit_code == 2
    assert "--budget" in res.output and "Traceback" not in res.output
