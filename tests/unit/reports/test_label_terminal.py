"""The terminal table shows the grade in the label's colours and the reason a person should
read first, and device strings cannot restyle the terminal."""

from __future__ import annotations

from io import StringIO

from iotrate.reports import label as lbl
from iotrate.reports import terminal
from rich.console import Console
from support.labels import HOSTILE, fridge, hostile_device, rating, result

from iotrate.models import CapApplied, Finding, Severity


def test_grade_is_coloured_like_the_label() -> None:
    for grade, colour in lbl.GRADE_COLOURS.items():
        assert colour in terminal.GRADE_STYLES[grade]
    assert terminal.grade_text(None).plain == "–"


def test_top_reason_is_the_binding_cap_then_the_worst_finding() -> None:
    capped = fridge()  # grade G with a G cap
    assert terminal.top_reason(capped) == "universal password"
    worst = fridge(
        rating=rating("C", caps=[CapApplied(cap="x", grade="B", reason="minor")]),
        findings=[
            Finding(check="a", severity=Severity.LOW, title="low thing"),
            Finding(check="b", severity=Severity.HIGH, title="high thing"),
        ],
    )
    assert terminal.top_reason(worst) == "high thing"
    assert terminal.top_reason(fridge(rating=None)) == "not rated"


def test_table_has_reason_column_and_no_raw_escapes() -> None:
    buf = StringIO()
    console = Console(file=buf, width=200, color_system="truecolor", force_terminal=True)
    terminal.render(result([fridge(), hostile_device()]), console)
    text = buf.getvalue()
    assert "Top reason" in text and "universal password" in text
    assert "48;2;237;28;36" in text  # G's red from the label, as a truecolor background
    assert "\u202e" not in text
    out = StringIO()
    table = terminal.table(result([hostile_device()]))
    Console(file=out, width=200, color_system=None).print(table)
    plain = out.getvalue()
    assert "\x1b" not in plain and HOSTILE not in plain
