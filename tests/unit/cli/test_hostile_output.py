"""Every command that prints device or result data, run over data full of terminal escapes:
nothing but printable text, line feeds and tabs reaches stdout or stderr (issue 17, finding 4
and "one sanitiser for every terminal line").

A device answers with whatever bytes it likes, and those bytes end up in names, banners,
evidence summaries, cap reasons, error messages and recorded observations. Each command below
is run for real (the typer application, in process) over such data; the check is on the bytes
the user's terminal would receive.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path

import pytest
from iotrate.reports import json as json_report
from support.ble import observation
from support.labels import fridge, rating, result
from typer.testing import CliRunner, Result

from iotrate import signing
from iotrate.cli import app
from iotrate.models import CapApplied, Evidence, Finding, ScanResult, Service, Severity
from iotrate.storage import Store

runner = CliRunner()

# CSI (clear screen, colour), OSC 0 (window title) ended by BEL, an OSC 8 hyperlink, 8-bit C1
# CSI/OSC/ST, BEL, NUL, DEL, CR and backspace (overwrite), bidi overrides and isolates,
# zero-width and a line separator.
EVIL = (
    "Evil\x1b[2J\x1b[31mRed\x1b[0m\x1b]0;owned\x07\x1b]8;;https://evil.example/\x1b\\click"
    "\x1b]8;;\x1b\\\x9b31m\x9d8;;x\x9c\x07\x00\x7f\rX\x08\u202etxet\u202c\u2066iso\u2069"
    "\u200b\u2028Corp"
)


def unsafe(text: str) -> list[str]:
    """The characters a terminal could act on: controls other than LF and TAB, and format
    characters (bidi, zero-width), and the line/paragraph separators."""
    return sorted(
        {
            repr(ch)
            for ch in text
            if ch not in "\n\t"
            and (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))
        }
    )


def clean_run(args: list[str], *, code: int | tuple[int, ...] = 0) -> Result:
    res = runner.invoke(app, args)
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (args, res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert unsafe(res.stdout) == [], (args, res.stdout)
    assert unsafe(res.stderr) == [], (args, res.stderr)
    return res


def hostile_result(scan_id: str = "0b9e1c8e-54a4-4d0f-9a65-3f3c1b2f9a10") -> ScanResult:
    dev = fridge(
        vendor=EVIL,
        model=EVIL,
        firmware=EVIL,
        names=[EVIL],
        services=[Service(port=23, protocol="telnet", banner=EVIL)],
        findings=[
            Finding(
                check="cred.default-password",
                severity=Severity.CRITICAL,
                title=EVIL,
                evidence=[Evidence(summary=EVIL, port=23, data={"subject": EVIL, EVIL: 1})],
                remediation=EVIL,
                port=23,
            ),
            Finding(
                check="svc.adb.unauthenticated",
                severity=Severity.CRITICAL,
                title=EVIL,
                evidence=[Evidence(summary=f"certificate subject CN={EVIL}", port=5555)],
                port=5555,
            ),
        ],
        rating=rating(
            "G",
            reasons=[EVIL],
            caps=[CapApplied(cap="default-password", grade="G", reason=EVIL)],
        ),
    )
    r = result([dev, fridge(id="x2", address="10.231.47.12", vendor="Plain", rating=rating("B"))])
    return r.model_copy(update={"scan_id": scan_id, "errors": [EVIL]})


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    path = tmp_path / "evil.json"
    path.write_text(json_report.render(hostile_result()) + "\n", encoding="utf-8")
    return path


def test_rate_table_json_and_fail_under(result_file: Path) -> None:
    table = clean_run(["rate", str(result_file)])
    # The caps' reasons quote the evidence (finding 4): printed, cleaned.
    assert "Android Debug Bridge" in table.stdout and "Evil" in table.stdout
    clean_run(["rate", str(result_file), "--json"])
    clean_run(["rate", str(result_file), "--fail-under", "G"], code=1)


def test_rate_declaration_errors(result_file: Path, tmp_path: Path) -> None:
    decl = tmp_path / "decl.yaml"
    decl.write_text(json.dumps({EVIL: EVIL, "model": EVIL}), encoding="utf-8")
    res = clean_run(["rate", str(result_file), "--declaration", str(decl)], code=2)
    assert "declaration" in res.stderr


def test_report_label_sign_verify(result_file: Path, tmp_path: Path) -> None:
    clean_run(["report", str(result_file), "-o", str(tmp_path / "r.html")])
    labels = tmp_path / "labels"
    clean_run(["label", str(result_file), "--out", str(labels), "--format", "svg"])
    svgs = sorted(labels.glob("*.svg"))
    assert len(svgs) == 2
    priv, pub = signing.new_keypair(tmp_path / "keys")
    clean_run(["sign", str(result_file), "--key", str(priv)])
    args = ["verify", str(result_file), "--pubkey", str(pub)]
    clean_run([*args, *(x for s in svgs for x in ("--label", str(s)))])
    evil_label = tmp_path / f"{EVIL[:20]}.svg".replace("/", "_").replace("\x00", "")
    evil_label.write_text(f"<svg><title>{EVIL}</title></svg>".replace("\x00", ""))
    clean_run([*args, "--label", str(evil_label)], code=1)


def test_commands_over_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scan_id": EVIL, EVIL: [EVIL]}), encoding="utf-8")
    for cmd in (["rate"], ["verify"], ["label"], ["report", "-o", str(tmp_path / "x.html")]):
        clean_run([*cmd, str(bad)], code=2)
    nan = tmp_path / "nan.json"
    nan.write_text('{"x": NaN, "' + EVIL.replace("\\", "\\\\").replace('"', "") + '": 1}')
    clean_run(["verify", str(nan)], code=2)


def test_history_show_diff(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    first = hostile_result("11111111-1111-4111-8111-111111111111")
    second = hostile_result("22222222-2222-4222-8222-222222222222")
    second.devices[0] = second.devices[0].model_copy(
        update={"findings": second.devices[0].findings[:1], "rating": rating("F", reasons=[EVIL])}
    )
    with Store(db) as store:
        for r in (first, second):
            store.begin_scan(r.scan_id, r.started_at, r.targets, r.policy)
            store.finish_scan(r)
    clean_run(["history", "--db", str(db)])
    clean_run(["history", "--db", str(db), "--json"])
    dev = clean_run(["history", "--db", str(db), "--device", first.devices[0].id])
    assert "11111111" in dev.stdout
    clean_run(["history", "--db", str(db), "--device", EVIL])
    shown = clean_run(["show", "11111111", "--db", str(db)])
    assert "Evil" in shown.stdout
    clean_run(["show", "11111111", "--db", str(db), "--json"])
    clean_run(["show", EVIL, "--db", str(db)], code=2)
    diffed = clean_run(["diff", "11111111", "22222222", "--db", str(db)])
    assert "Evil" in diffed.stdout
    clean_run(["diff", "11111111", "22222222", "--db", str(db), "--json"])


def test_show_json_is_the_same_value_escaped(tmp_path: Path) -> None:
    """JSON output keeps the data: control characters become ``\\u`` escapes, not gaps."""
    db = tmp_path / "h.db"
    r = hostile_result()
    with Store(db) as store:
        store.begin_scan(r.scan_id, r.started_at, r.targets, r.policy)
        store.finish_scan(r)
    res = clean_run(["show", r.scan_id[:8], "--db", str(db), "--json"])
    assert json.loads(res.stdout)["devices"][0]["vendor"] == EVIL


def test_identify_table_and_json(tmp_path: Path) -> None:
    lines = [
        {"device": EVIL, "kind": "mdns", "service_type": "_hap._tcp.local.", "name": EVIL,
         "port": 80, "properties": {"md": EVIL, "ci": "7", EVIL: EVIL}},
        {"device": EVIL, "kind": "ssdp", "headers": {"SERVER": EVIL}, "description_xml": (
            '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
            f"<manufacturer>{EVIL}</manufacturer><modelName>{EVIL}</modelName>"
            "</device></root>").replace("\x00", "")},
        {"device": EVIL, "kind": EVIL},
    ]  # fmt: skip
    obs = tmp_path / "obs.jsonl"
    obs.write_text("".join(json.dumps(x) + "\n" for x in lines) + EVIL + "\n", encoding="utf-8")
    table = clean_run(["identify", str(obs)], code=2)
    assert "Evil" in table.stdout
    res = clean_run(["identify", str(obs), "--json"], code=2)
    assert json.loads(res.stdout.splitlines()[0])["device"] == EVIL


def test_ble_replay_table_and_json(tmp_path: Path) -> None:
    rec = tmp_path / "ble.jsonl"
    lines = [
        observation(EVIL, 1000.0 + 30 * i, name=EVIL, address="AA:BB:CC:DD:EE:FF") for i in range(5)
    ]
    rec.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    table = clean_run(["ble", "replay", str(rec)])
    assert "Evil" in table.stdout
    clean_run(["ble", "replay", str(rec), "--json"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"device": EVIL, "kind": "ble", "rssi": EVIL}) + "\n")
    clean_run(["ble", "replay", str(bad)], code=2)


def test_db_update_and_info(tmp_path: Path) -> None:
    table = tmp_path / "embedded_components.csv"
    buf = io.StringIO()
    fields = ["cve_id", "product", "affected_from", "fixed_in", "affected_text", "cvss3", "kev"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerow({f: EVIL for f in fields})
    table.write_text(buf.getvalue(), encoding="utf-8")
    data = tmp_path / "vulns"
    res = clean_run(["db", "update", str(table), "--data-dir", str(data)], code=(0, 2))
    assert "Evil" in res.stdout + res.stderr
    clean_run(["db", "info", "--data-dir", str(data)])


def test_label_files_per_device_do_not_collide(tmp_path: Path) -> None:
    r = result(
        [
            fridge(id="10.0.11.5", address="10.0.11.5", mac=None),
            fridge(id="10.0.1.15", address="10.0.1.15", mac=None),
        ]
    )
    path = tmp_path / "two.json"
    path.write_text(json_report.render(r))
    out = tmp_path / "labels"
    clean_run(["label", str(path), "--out", str(out), "--format", "svg"])
    assert len(list(out.glob("*.svg"))) == 2


def test_log_lines_are_cleaned_too() -> None:
    """Agents, the collector and probes log device strings on stderr."""
    import logging

    from iotrate.cli.console import SafeFormatter

    record = logging.LogRecord("iotrate.fleet", logging.WARNING, __file__, 1, "%s", (EVIL,), None)
    line = SafeFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert unsafe(line) == [] and line.startswith("WARNING iotrate.fleet: Evil")
