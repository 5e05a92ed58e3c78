"""The HTML report as text: every section is there, it is self-contained, hostile device
strings are escaped, and the summary speaks plain words. The browser test is test_html_browser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from iotrate.rating_schema import SCHEME_DIR
from iotrate.rating_schema.loader import load_scheme
from iotrate.reports import html
from iotrate.reports import json as json_report
from support.labels import SCRIPT, fridge, hostile_device, rating, result
from typer.testing import CliRunner

from iotrate.cli import app


def sample() -> str:
    page: str = html.render(
        result(
            [
                fridge(),
                fridge(id="x1", vendor="TP-Link", model="Tapo P110", rating=rating("A")),
                fridge(id="x2", rating=None),
                hostile_device(),
            ]
        )
    )
    return page


def test_sections_are_all_there() -> None:
    page = sample()
    for anchor in ("summary", "overview", "devices", "about", "not-a-certification"):
        assert f'id="{anchor}"' in page
    assert page.count('<article class="card device"') == 4
    assert "Automated assessment, not a certification" in page
    assert "How to fix it." in page and "Evidence" in page
    assert "iotrate 2026.1" in page  # scheme and version
    assert "14 of 40 checks could be tested" in page


def test_no_script_and_hostile_strings_escaped() -> None:
    page = sample()
    assert "<script" not in page.lower()
    assert "<b>bold</b>" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_labels_are_embedded_and_escaped() -> None:
    page = sample()
    uris = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 4
    for u in uris:
        svg = base64.b64decode(u).decode()
        assert "<script" not in svg.lower()
        assert "not a certification" in svg


def test_self_contained() -> None:
    page = sample()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "<link" not in page and "@import" not in page
    assert "<style>" in page


def test_plain_summary() -> None:
    v = html.view(
        result(
            [
                fridge(),
                fridge(id="b", rating=rating("B")),
                fridge(id="d", rating=rating("D", support_until=None)),
            ]
        )
    )
    assert v.headline == "We checked 3 connected devices on your network."
    assert v.sentences[0] == "1 needs attention now, 1 could be safer and 1 is in good shape."
    assert "no known security-update period" in v.sentences[1]
    assert v.devices[0].grade == "G"  # worst first
    assert v.actions[0][3].startswith("Change the password")


def test_scheme_texts_explain_findings() -> None:
    texts = {"cred.telnet.default": html.CheckText(explanation="Anyone can log in.")}
    page = html.render(result([fridge()]), texts=texts)
    assert "Why it matters." in page and "Anyone can log in." in page
    assert isinstance(html.load_check_texts(), dict)


def test_same_result_same_report_whoever_renders_it() -> None:
    """`scan --report` renders without texts, `iotrate report` passes the scheme's: the same
    page, explained in the words of the scheme version that rated the device (2026.1 here)."""
    res = result([fridge()])
    assert html.render(res) == html.render(res, texts=html.load_check_texts())
    old = load_scheme(SCHEME_DIR / "iotrate-2026.1.yaml").check("svc.mqtt.anonymous")
    assert old is not None
    (mqtt,) = [f for f in html.view(res).devices[0].findings if f.check == "svc.mqtt.anonymous"]
    assert mqtt.explanation == old.explanation and mqtt.remediation == old.remediation
    assert mqtt.standards == list(old.standards)


def test_empty_result_renders() -> None:
    page = html.render(result([]))
    assert "No devices were found" in page


def test_cli_report(tmp_path: Path) -> None:
    res_path = tmp_path / "r.json"
    res_path.write_text(json_report.render(result([hostile_device()])))
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(res_path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert SCRIPT not in page and "<script" not in page.lower()
    assert (
        CliRunner().invoke(app, ["report", str(tmp_path / "nope.json"), "-o", str(out)]).exit_code
        == 2
    )
