"""docs/extending.md stays true: its marked examples run against the current code.

The probe example is executed as a module of ``iotrate.probes`` and run through the real runner
against a server on 127.0.0.1, with findings stamped from a copy of the scheme grown by the
page's own procedure (next version, frozen mapping, the check entry, the clauses). The rule, the
renderer and the framework edits are loaded the same way, so a change to the probe contract, the
scheme format or the rule format fails here instead of misleading a contributor.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from iotrate.probes import base, is_probe_class
from iotrate.rating_schema import SCHEME_DIR
from iotrate.rating_schema.loader import DEFAULT_SCHEME, SchemeError, load_scheme
from iotrate.rating_schema.model import Scheme

from iotrate.declarations import load_yaml
from iotrate.identify import Database, Identifier
from iotrate.identify.observations import read_observations
from iotrate.identify.rules import load_rules
from iotrate.models import (
    Device,
    OutcomeStatus,
    Rating,
    ScanResult,
    Service,
    Severity,
)
from iotrate.probing import ProbeRunner, RunnerOptions

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.S)
NEW_CHECK = "svc.vnc.no-auth"
NEXT = "2026.4"


def example(name: str) -> str:
    found = {m.group(1): m.group(3) for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))}
    assert name in found, f"docs/extending.md has no <!-- example: {name} --> block"
    return found[name]


def yaml_block(name: str, tmp_path: Path) -> Any:
    path = tmp_path / f"{name}.yaml"
    path.write_text(example(name), encoding="utf-8")
    return load_yaml(path, name, SchemeError)


def framework_edits() -> dict[str, dict[str, list[str]]]:
    """From the page's diff: framework file stem -> requirement id -> check ids added."""
    edits: dict[str, dict[str, list[str]]] = {}
    stem = requirement = ""
    before: list[str] = []
    for line in example("framework").splitlines():
        if m := re.match(r"\+\+\+ b/rating_schema/frameworks/([\w-]+)\.yaml$", line):
            stem = m.group(1)
        elif m := re.match(r" +- id: \"?([\w.-]+)\"?$", line):
            requirement = m.group(1)
        elif m := re.match(r"([-+]) +checks: \[(.*)\]$", line):
            ids = [c.strip() for c in m.group(2).split(",")]
            if m.group(1) == "-":
                before = ids
            else:
                added = [c for c in ids if c not in before]
                edits.setdefault(stem, {})[requirement] = added
    return edits


def next_version(tmp_path: Path) -> Path:
    """A copy of the scheme folder with the next version drafted as section (c) says, the
    check entry added and the clauses mapped as section (e) says; returns the draft's path."""
    root = tmp_path / "rating_schema"
    shutil.copytree(SCHEME_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    current = load_scheme()
    frozen = root / "frameworks" / current.version
    frozen.mkdir()
    for fw in (root / "frameworks").glob("*.yaml"):
        shutil.copy(fw, frozen / fw.name)
    doc = load_yaml(DEFAULT_SCHEME, "scheme", SchemeError)
    doc["version"] = NEXT
    doc.pop("published")
    doc.pop("provisions", None)  # published 2026.1/2026.2 carried it inline; 2026.3 on do not
    for check in doc["checks"]:
        check.pop("standards", None)
    doc["checks"] += yaml_block("scheme-check", tmp_path)
    draft = root / f"iotrate-{NEXT}.yaml"
    draft.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    for stem, requirements in framework_edits().items():
        path = root / "frameworks" / f"{stem}.yaml"
        fw = load_yaml(path, "framework", SchemeError)
        for req in fw["requirements"]:
            req["checks"] += requirements.get(str(req["id"]), [])
        path.write_text(json.dumps(fw), encoding="utf-8")
    return draft


@pytest.fixture
def draft(tmp_path: Path) -> Scheme:
    return load_scheme(next_version(tmp_path))


def probe_module() -> ModuleType:
    """The page's probe, as if it were ``probes/vnc.py`` (its relative imports included)."""
    module = ModuleType("iotrate.probes.vnc_example")
    module.__package__ = "iotrate.probes"
    exec(compile(example("probe"), f"{DOC}:probe", "exec"), module.__dict__)
    return module


def rfb_server(reply: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(reply[:12])
            await reader.readexactly(12)
            writer.write(reply[12:])
            await writer.drain()
        finally:
            writer.close()

    return handle


def scan(probe: type[base.Probe], reply: bytes) -> Device:
    async def go() -> Device:
        server = await asyncio.start_server(rfb_server(reply), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        device = Device(
            id="dut", address="127.0.0.1", services=[Service(port=port, protocol="vnc")]
        )
        async with server:
            run: Awaitable[list[Device]] = ProbeRunner([probe], RunnerOptions()).run([device])
            (d,) = await asyncio.wait_for(run, 30)
        return d

    return asyncio.run(go())


def test_the_new_check_is_really_new() -> None:
    assert load_scheme().check(NEW_CHECK) is None
    assert NEXT > load_scheme().version


def test_the_documented_procedure_yields_a_loadable_next_version(
    tmp_path: Path, draft: Scheme
) -> None:
    assert draft.version == NEXT
    check = draft.check(NEW_CHECK)
    assert check is not None and check.source == "scan" and check.expected
    clauses = {
        f"{fw.cite_as} {rid}"
        for fw in draft.frameworks
        for rid in framework_edits().get(fw.id, {})
        if NEW_CHECK in framework_edits()[fw.id][rid]
    }
    assert set(check.standards) == clauses
    assert any(s.startswith("ETSI EN 303 645 ") for s in check.standards)
    for other in load_scheme().checks:  # nothing else moved
        moved = draft.check(other.id)
        assert moved is not None and moved.standards == other.standards
    # The frozen copy keeps the published version loading, with its own clauses.
    published = load_scheme(draft.path.parent / DEFAULT_SCHEME.name)
    assert published.check(NEW_CHECK) is None
    assert [c.standards for c in published.checks] == [c.standards for c in load_scheme().checks]


@pytest.mark.parametrize(
    ("reply", "found"),
    [
        (b"RFB 003.008\n\x02\x01\x02", True),  # offers None and VNC authentication
        (b"RFB 003.003\n\x00\x00\x00\x01", True),  # 3.3: the server chose None
        (b"RFB 003.008\n\x01\x02", False),  # VNC authentication only
    ],
)
def test_the_probe_example_finds_an_open_screen_with_the_schemes_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, draft: Scheme, reply: bytes, found: bool
) -> None:
    monkeypatch.setattr(base, "catalogue", lambda: draft)
    probe = probe_module().VncNoAuth
    assert is_probe_class(probe) and probe.checks == (NEW_CHECK,)
    d = scan(probe, reply)
    (outcome,) = d.outcomes
    assert outcome.status is OutcomeStatus.RAN, outcome.reason
    assert outcome.checks == [NEW_CHECK]
    if not found:
        assert d.findings == []
        return
    (finding,) = d.findings
    entry = yaml_block("scheme-check", tmp_path)[0]
    check = draft.check(NEW_CHECK)
    assert check is not None
    assert finding.check == NEW_CHECK and finding.probe == "svc.vnc"
    assert finding.title == entry["title"]
    assert finding.severity is Severity(entry["severity"])
    assert finding.remediation == entry["remediation"]
    assert finding.standards == list(check.standards) and finding.standards
    assert 1 in finding.evidence[0].data["security_types"]


def test_the_probe_example_says_could_not_test_when_the_server_refuses(
    monkeypatch: pytest.MonkeyPatch, draft: Scheme
) -> None:
    monkeypatch.setattr(base, "catalogue", lambda: draft)
    reason = b"too many attempts"
    refused = b"RFB 003.008\n\x00" + len(reason).to_bytes(4, "big") + reason
    (outcome,) = scan(probe_module().VncNoAuth, refused).outcomes
    assert outcome.status is OutcomeStatus.FAILED


def test_the_probe_example_needs_its_check_in_the_scheme() -> None:
    """Without the new scheme version the probe's finding is refused: why (a) waits for (c)."""
    d = scan(probe_module().VncNoAuth, b"RFB 003.008\n\x01\x01")
    (outcome,) = d.outcomes
    assert outcome.status is OutcomeStatus.FAILED and d.findings == []


def test_the_probe_tests_example(monkeypatch: pytest.MonkeyPatch, draft: Scheme) -> None:
    monkeypatch.setattr(base, "catalogue", lambda: draft)
    names: dict[str, Any] = {
        "asyncio": asyncio,
        "pytest": pytest,
        "Awaitable": Awaitable,
        "Callable": Callable,
        "StreamReader": asyncio.StreamReader,
        "StreamWriter": asyncio.StreamWriter,
        "Device": Device,
        "Service": Service,
        "OutcomeStatus": OutcomeStatus,
        "ProbeRunner": ProbeRunner,
        "RunnerOptions": RunnerOptions,
        "VncNoAuth": probe_module().VncNoAuth,
    }
    exec(compile(example("probe-test"), f"{DOC}:probe-test", "exec"), names)
    test = names["test_vnc_without_a_password"]
    (mark,) = test.pytestmark
    cases = mark.args[1]
    assert {found for _, found in cases} == {True, False}
    for reply, found in cases:
        test(reply, found)


def extended_identifier(tmp_path: Path) -> Identifier:
    """The bundled fingerprint data plus the page's rule."""
    rules = load_rules(yaml_block("identify-rule", tmp_path), "extending.md")
    bundled = Database.load()
    assert not {r.id for r in rules} & {r.id for r in bundled.rules}
    db = Database(bundled.rules + rules, bundled.recog, bundled.lexicon, bundled.vendors)
    return Identifier(db)


def test_the_identification_rule_example(tmp_path: Path) -> None:
    line = {
        "device": "dut",
        "kind": "mdns",
        "service_type": "_octoprint._tcp.local.",
        "name": "Ender 3._octoprint._tcp.local.",
        "port": 80,
        "properties": {"path": "/", "version": "1.10.2", "api": "0.1"},
    }
    read = read_observations([json.dumps(line)])
    assert not read.errors
    before = Identifier().identify_device("dut", read.observations)
    after = extended_identifier(tmp_path).identify_device("dut", read.observations)
    assert before.firmware is None  # what the rule adds
    assert (after.category, after.firmware) == ("printer", "1.10.2")
    assert "dnssd.octoprint.version" in {e.rule for e in after.evidence}
    names: dict[str, Any] = {
        "json": json,
        "read_observations": read_observations,
        "Identifier": lambda: extended_identifier(tmp_path),
    }
    exec(compile(example("identify-test"), f"{DOC}:identify-test", "exec"), names)
    names["test_octoprint_version"]()


def test_the_report_example_renders_findings_as_csv() -> None:
    namespace: dict[str, Any] = {"__name__": "iotrate.reports.csv_example"}
    exec(compile(example("report"), f"{DOC}:report", "exec"), namespace)
    scheme = load_scheme()
    telnet = scheme.finding("svc.telnet", "telnet on port 23", 23, {}, probe="svc.telnet")
    device = Device(
        id="d1",
        address="10.0.0.5",
        findings=[telnet],
        rating=Rating(grade="F", score=40.0),
    )
    result = ScanResult(scan_id="s", started_at=datetime(2026, 1, 1, tzinfo=UTC), devices=[device])
    text = namespace["render"](result)
    header, row = text.splitlines()
    assert header.startswith("address,grade,check,severity,title,port,standards")
    assert row.startswith("10.0.0.5,F,svc.telnet,high,")
    assert "ETSI EN 303 645 5.1-3" in row
