"""``ble replay`` of a recording that does not read whole (issue 17, finding 9): exit 2 with
the bad lines named, and nothing printed or written: no table, no JSON, no empty result over an
earlier ``-o`` file."""

from __future__ import annotations

import json
from pathlib import Path

from support.ble import travelling_airtag
from typer.testing import CliRunner

from iotrate.cli import app

runner = CliRunner()


def test_a_bad_recording_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    rec = tmp_path / "walk.jsonl"
    good = "".join(json.dumps(o) + "\n" for o in travelling_airtag(minutes=2))
    rec.write_text(good + '{"device": "a", "kind": "ble", "rssi": "loud"}\n', encoding="utf-8")
    out = tmp_path / "result.json"
    out.write_text("earlier result\n")
    labels = tmp_path / "labels"
    for extra in ([], ["--json"]):
        res = runner.invoke(
            app,
            ["ble", "replay", str(rec), "-o", str(out), "--labels", str(labels), *extra],
        )
        assert res.exit_code == 2, res.output
        assert res.stdout == ""
        assert "line" in res.stderr and "nothing rated or written" in res.stderr
    assert out.read_text() == "earlier result\n"
    assert not labels.exists()


def test_a_file_of_junk_is_refused_the_same_way(tmp_path: Path) -> None:
    rec = tmp_path / "junk.jsonl"
    rec.write_text("not json\n\x00\x01\n", encoding="utf-8")
    res = runner.invoke(app, ["ble", "replay", str(rec), "--json"])
    assert res.exit_code == 2 and res.stdout == ""
