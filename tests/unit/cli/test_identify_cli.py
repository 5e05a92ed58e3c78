"""`iotrate identify`: JSON per device, a table otherwise, bad lines reported by number."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from iotrate.cli import app

runner = CliRunner()

LINES = [
    {"device": "gw", "kind": "ssdp", "headers": {}, "description_xml": (
        '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
        "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
        "<manufacturer>AVM Berlin</manufacturer><modelName>FRITZ!Box 7590</modelName>"
        "</device></root>")},
    {"device": "plug", "kind": "mdns", "service_type": "_hap._tcp.local.", "name": "Eve",
     "port": 80, "properties": {"md": "Eve Energy", "ci": "7"}},
    {"device": "plug", "kind": "mac", "mac": "aa:bb:cc:dd:ee:ff"},
]  # fmt: skip


def write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "obs.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_json_output_one_object_per_device(tmp_path: Path) -> None:
    p = write(tmp_path, [json.dumps(x) for x in LINES])
    res = runner.invoke(app, ["identify", str(p), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["device"] for r in rows] == ["gw", "plug"]
    for r in rows:
        assert {
            "device",
            "category",
            "vendor",
            "model",
            "firmware",
            "confidence",
            "evidence",
        } <= set(r)
    assert (rows[0]["category"], rows[0]["vendor"], rows[0]["model"]) == (
        "router",
        "AVM",
        "FRITZ!Box 7590",
    )
    assert rows[1]["category"] == "plug"
    assert all(isinstance(e["rule"], str) for e in rows[0]["evidence"])


def test_table_output(tmp_path: Path) -> None:
    p = write(tmp_path, [json.dumps(x) for x in LINES])
    res = runner.invoke(app, ["identify", str(p)])
    assert res.exit_code == 0, res.output
    assert "router" in res.stdout and "AVM" in res.stdout


def test_bad_lines_are_reported_and_the_rest_identified(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        [json.dumps(LINES[0]), "{oops", json.dumps({"device": "x", "kind": "thread", "adv": "01"})],
    )
    res = runner.invoke(app, ["identify", str(p), "--json"])
    assert res.exit_code == 2
    assert "line 2" in res.stderr
    assert "thread" in res.stderr and "warning" in res.stderr
    assert json.loads(res.stdout.splitlines()[0])["device"] == "gw"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["identify", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2
    assert "cannot read" in res.stderr
