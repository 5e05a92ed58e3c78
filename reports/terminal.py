"""The terminal table. Device strings go in as rich ``Text``, never as markup, so a device
named ``[red]...`` or carrying escape sequences cannot restyle or take over the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from iotrate.models import ScanResult, Service


def _service_label(s: Service) -> str:
    name = s.protocol or "?"
    if s.tls:
        name += "+tls"
    return f"{s.port}/{s.transport.value} {name}"


def table(result: ScanResult) -> Table:
    t = Table(title=f"iotrate scan {result.scan_id[:8]} — {len(result.devices)} device(s)")
    t.add_column("Address", no_wrap=True)
    t.add_column("MAC", no_wrap=True)
    t.add_column("Device")
    t.add_column("Open services")
    t.add_column("Grade", justify="center")
    for d in result.devices:
        what = " ".join(x for x in (d.vendor, d.model) if x) or (d.category or "unidentified")
        grade = d.rating.grade if d.rating and d.rating.grade else "–"
        t.add_row(
            Text(d.address),
            Text(d.mac or "–"),
            Text(what),
            Text(", ".join(_service_label(s) for s in d.services) or "none found"),
            Text(grade),
        )
    return t


def render(result: ScanResult, console: Console) -> None:
    console.print(table(result))
    if result.errors:
        console.print(
            Text(f"{len(result.errors)} error(s) during the scan; see --json for details")
        )
