"""A Bluetooth device in the report, on its label and in the terminal table: shown as
"Bluetooth", its device-chosen name escaped everywhere."""

from __future__ import annotations

import json
from io import StringIO

from iotrate.reports import html, terminal
from iotrate.reports import label as lbl
from rich.console import Console
from support.ble import observation, travelling_airtag

from iotrate.ble.devices import capture_result
from iotrate.identify import read_observations
from iotrate.models import ScanResult

HOSTILE = "<script>alert('x')</script>\x1b[31m Anna's Watch"


def result() -> ScanResult:
    obs = [*travelling_airtag(minutes=25), observation("watch", 1000.0, name=HOSTILE)]
    read = read_observations(json.dumps(o) for o in obs)
    assert not read.errors
    return capture_result(read.observations)


def test_html_report_shows_bluetooth_and_escapes_names() -> None:
    page = html.render(result(), digest="0" * 64)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in page
    assert "<dt>Connection</dt><dd>Bluetooth</dd>" in page
    assert "rated from its advertisements alone" in page
    assert "Item tracker travelling with you" in page
    assert "Personal details in the Bluetooth name" in page
    assert "iotrate 2026.3" in page


def test_label_says_bluetooth() -> None:
    res = result()
    watch = next(d for d in res.devices if d.id == "watch")
    data = lbl.label_data(watch, res, digest="0" * 64)
    assert data.transport == "Bluetooth"
    svg = lbl.render_svg(data, "full")
    assert "Bluetooth · Firmware" in svg and 'transport="bluetooth"' in svg
    assert "<script>" not in svg and "\x1b" not in svg
    assert "(Bluetooth)" in svg  # the accessible title
    sticker = lbl.render_svg(data, "sticker")
    assert "BT · FW" in sticker


def test_terminal_table_says_bluetooth_and_cannot_be_restyled() -> None:
    buf = StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    terminal.render(result(), console)
    text = buf.getvalue()
    assert "Bluetooth LE" in text and "\x1b[31m" not in text
