"""The terminal table. Device strings go in as rich ``Text``, never as markup, and cleaned
(:func:`textfit.clean`), so a device named ``[red]...`` or carrying escape sequences cannot
restyle or take over the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from iotrate.models import Device, ScanResult, Service
from iotrate.naming import display_name, main_reason

from .textfit import clean

# The label's class colours, so the table and the printed label agree at a glance.
GRADE_STYLES = {
    "A": "bold white on #00A54F",
    "B": "bold white on #4CB848",
    "C": "bold black on #BFD730",
    "D": "bold black on #FFF200",
    "E": "bold black on #FDB913",
    "F": "bold white on #F37021",
    "G": "bold white on #ED1C24",
}


def _service_label(s: Service) -> str:
    name = s.protocol or "?"
    if s.tls and not name.endswith("s"):
        name += "+tls"
    return f"{s.port}{'/udp' if s.transport.value == 'udp' else ''} {name}"


def _short(text: str, limit: int = 110) -> str:
    """One glance in the table; the whole reason is in --json and the report."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def grade_text(grade: str | None, *, at_best: bool = False, insufficient: bool = False) -> Text:
    """The grade cell: "no grade" when nothing decisive was tested, "≤B" for an upper bound."""
    if insufficient:
        return Text("no grade", style="dim")
    if grade is None:
        return Text("–", style="dim")
    return Text(f" {'≤' if at_best else ''}{grade} ", style=GRADE_STYLES.get(grade, "bold"))


def device_grade_text(device: Device) -> Text:
    r = device.rating
    if r is None:
        return grade_text(None)
    return grade_text(r.grade, at_best=r.at_best, insufficient=r.status == "insufficient_evidence")


def top_reason(device: Device) -> str:
    r = device.rating
    if r is not None and r.status == "insufficient_evidence":
        return "insufficient evidence: nothing that could pass or fail was tested"
    if r is None or r.grade is None:
        return "not rated"
    reason = main_reason(device)
    if r.at_best and r.left_out:
        reason = f"at best {r.grade} ({r.left_out[0]}); {reason}"
    return reason


def table(result: ScanResult) -> Table:
    t = Table(title=f"iotrate scan {result.scan_id[:8]} — {len(result.devices)} device(s)")
    t.add_column("Address", no_wrap=True)
    t.add_column("MAC", no_wrap=True)
    t.add_column("Device")
    t.add_column("Open services")
    t.add_column("Grade", justify="center", no_wrap=True)
    t.add_column("Top reason", overflow="fold", max_width=48)
    for d in result.devices:
        what = display_name(d)
        # Every cell may carry device text (fleet agents send addresses and protocols too):
        # each is cleaned, and the console (iotrate.cli.console.SafeConsole) cleans again.
        t.add_row(
            Text(clean(d.address)),
            Text(clean(d.mac or "–")),
            Text(clean(what)),
            Text(
                "Bluetooth LE"
                if d.transport == "bluetooth"
                else clean(", ".join(_service_label(s) for s in d.services), 2000) or "none found"
            ),
            device_grade_text(d),
            Text(_short(clean(top_reason(d), 2000))),
        )
    return t


def render(result: ScanResult, console: Console) -> None:
    console.print(table(result))
    if result.errors:
        console.print(
            Text(f"{len(result.errors)} error(s) during the scan; see --json for details")
        )
