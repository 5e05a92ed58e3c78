"""``iotrate history`` and ``iotrate diff``: what was scanned, and what changed since last time.

Both read the history database that ``iotrate scan`` writes (see :mod:`iotrate.storage`);
registered in :mod:`iotrate.cli.main`, with its exit codes (2: unknown scan id, 3: database
unreadable). Device strings come from the devices and are cleaned before they reach the
terminal, since a device name may carry escape sequences.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from iotrate.cli.console import SafeConsole, fail, write_json
from iotrate.errors import IotrateError, UsageError
from iotrate.history import DeviceChange, ScanDiff, diff_results, scan_scope_line
from iotrate.models import ScanResult
from iotrate.storage import Store, default_path, is_url

# Heavy modules (the renderers) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.

_out = SafeConsole(soft_wrap=True, highlight=False)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="History database: a file, sqlite:///PATH or postgresql://… (default: "
        "$IOTRATE_DB, else iotrate.db in the user data dir).",
    ),
]


def _clean(value: object, limit: int = 160) -> str:
    from iotrate.reports.textfit import clean

    return str(clean(value, limit=limit))


def _when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt else "-"


def _open(db: str | None) -> Store | None:
    """The store, or None when the file does not exist: reading history never creates it.
    A database URL (a fleet's PostgreSQL) is opened as given."""
    if db is not None and is_url(db):
        return Store(db)
    path = Path(db) if db else default_path()
    if not path.exists():
        return None
    return Store(path)


def history_cmd(
    db: DbOption = None,
    device: Annotated[
        str | None,
        typer.Option("--device", metavar="ID", help="One device's grade over time (MAC or IP)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List stored scans (date, targets, devices, grades), or one device's grade over time."""
    try:
        store = _open(db)
        if store is None:
            scans, records = [], []
        else:
            with store:
                scans = store.scans() if device is None else []
                records = store.device_history(device) if device is not None else []
    except IotrateError as exc:
        fail(exc)
    if device is not None:
        if json_out:
            data: Any = [{**asdict(r), "started_at": r.started_at.isoformat()} for r in records]
            write_json(json.dumps(data, indent=2) + "\n")
            return
        if not records:
            _out.print(f"no stored scan saw device {_clean(device)}", markup=False)
            return
        t = Table(title=f"device {_clean(device)}")
        for col in ("Scan", "Date", "Address", "Grade", "Findings", "Status"):
            t.add_column(col)
        for r in records:
            t.add_row(
                *(
                    Text(x)
                    for x in (
                        r.scan_id[:8],
                        _when(r.started_at),
                        _clean(r.address),
                        r.grade or "-",
                        str(r.findings),
                        r.status,
                    )
                )
            )
        _out.print(t)
        return
    if json_out:
        data = [
            {
                **asdict(s),
                "started_at": s.started_at.isoformat(),
                "finished_at": s.finished_at.isoformat() if s.finished_at else None,
            }
            for s in scans
        ]
        write_json(json.dumps(data, indent=2) + "\n")
        return
    if not scans:
        _out.print(f"no scans stored in {db or default_path()}", markup=False)
        return
    t = Table()
    # The policy says whether passwords were tried (safe tries none): two scans of one device
    # under different policies do not test the same things.
    for col in ("Scan", "Date", "Targets", "Policy", "Devices", "Grades", "Status"):
        t.add_column(col)
    for s in scans:
        grades = " ".join(f"{g}:{n}" for g, n in s.grades.items()) or "-"
        t.add_row(
            *(
                Text(x)
                for x in (
                    s.scan_id[:8],
                    _when(s.started_at),
                    _clean(" ".join(s.targets)),
                    _clean(s.policy),
                    str(s.devices),
                    grades,
                    s.status,
                )
            )
        )
    _out.print(t)


def diff_cmd(
    scan_a: Annotated[
        str | None, typer.Argument(metavar="[SCAN_A]", help="Older scan id (or prefix).")
    ] = None,
    scan_b: Annotated[
        str | None, typer.Argument(metavar="[SCAN_B]", help="Newer scan id (or prefix).")
    ] = None,
    db: DbOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """What changed between two scans (default: the last two complete scans of the same
    targets): devices new and gone, grades up and down, findings fixed and new, ports."""
    try:
        before, after, statuses = _load_pair(db, scan_a, scan_b)
    except IotrateError as exc:
        fail(exc)
    d = diff_results(before, after)
    if json_out:
        data = asdict(d)
        data["before_status"], data["after_status"] = statuses
        write_json(json.dumps(data, indent=2) + "\n")
        return
    _out.print(
        f"changes from scan {d.before[:8]} ({_when(before.started_at)}) to scan "
        f"{d.after[:8]} ({_when(after.started_at)})",
        markup=False,
    )
    for label, res in (("first", before), ("second", after)):
        _out.print(f"{label} scan: {scan_scope_line(res)}", markup=False)
    for label, status in zip(("first", "second"), statuses, strict=True):
        if status != "complete":
            _out.print(
                f"note: the {label} scan is {status}; devices it did not finish show as "
                "new or gone",
                markup=False,
            )
    lines = _change_lines(d)
    if not lines:
        _out.print(f"nothing changed ({d.unchanged} devices the same)", markup=False)
        return
    t = Table()
    t.add_column("Device")
    t.add_column("What changed")
    for who, what_text in lines:
        t.add_row(Text(_clean(who)), Text(_clean(what_text, limit=4000)))
    _out.print(t)
    _out.print(f"{d.unchanged} device(s) unchanged", markup=False)


def _load_pair(
    db: str | None, scan_a: str | None, scan_b: str | None
) -> tuple[ScanResult, ScanResult, tuple[str, str]]:
    """The two scans to compare (named, or the last two of the same targets) and their
    statuses."""
    if (scan_a is None) != (scan_b is None):
        raise UsageError("name two scans (SCAN_A SCAN_B), or none for the last two")
    store = _open(db)
    if store is None:
        raise UsageError(f"no scans stored in {db or default_path()}")
    with store:
        if scan_a is None or scan_b is None:
            a_id, b_id = store.previous_pair()
        else:
            a_id, b_id = store.resolve(scan_a), store.resolve(scan_b)
        before, after = store.load_scan(a_id), store.load_scan(b_id)
        return before, after, (store.status(a_id), store.status(b_id))


def _change_lines(d: ScanDiff) -> list[tuple[str, str]]:
    """One (device, what changed) line per device that is new, gone or changed."""
    lines: list[tuple[str, str]] = []
    for r in d.new_devices:
        lines.append((f"{r.name} ({r.address})", f"new device, grade {r.grade or '-'}"))
    for r in d.gone_devices:
        lines.append((f"{r.name} ({r.address})", "no longer seen"))
    for c in d.changed:
        lines.append((f"{c.device.name} ({c.device.address})", "; ".join(_what_changed(c))))
    return lines


def _what_changed(c: DeviceChange) -> list[str]:
    what: list[str] = []
    if c.direction in ("better", "worse"):
        what.append(f"grade {c.grade_before} -> {c.grade_after} ({c.direction})")
    elif c.direction == "unknown":
        what.append(f"grade {c.grade_before or '-'} -> {c.grade_after or '-'}")
    elif c.direction == "not_compared":
        what.append(
            f"grade {c.grade_before or 'none'} -> {c.grade_after or 'none'} not compared: the "
            f"scans tested different checks (coverage {c.coverage_before or '-'} -> "
            f"{c.coverage_after or '-'})"
        )
    what += [f"fixed: {f.title} ({f.check})" for f in c.findings_fixed]
    what += [f"new problem: {f.title} ({f.check})" for f in c.findings_new]
    what += [
        f"not compared (not tested in one scan): {f.title} ({f.check})" for f in c.not_compared
    ]
    if c.services_opened:
        what.append("ports opened: " + ", ".join(c.services_opened))
    if c.services_closed:
        what.append("ports closed: " + ", ".join(c.services_closed))
    if c.address_before:
        what.append(f"moved from {c.address_before}")
    return what


def show_cmd(
    scan: Annotated[str, typer.Argument(metavar="SCAN", help="Scan id (or a unique prefix).")],
    db: DbOption = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the stored result as JSON.")
    ] = False,
) -> None:
    """Print a stored scan as 'iotrate scan' did (table, or the result JSON with --json)."""
    from iotrate.reports import json as json_report
    from iotrate.reports import terminal

    try:
        store = _open(db)
        if store is None:
            raise UsageError(f"no scans stored in {db or default_path()}")
        with store:
            result = store.load_scan(scan)
            status = store.status(result.scan_id)
    except IotrateError as exc:
        fail(exc)
    if json_out:
        write_json(json_report.render(result) + "\n")
        return
    if status != "complete":
        _out.print(f"note: scan {result.scan_id[:8]} is {status}", markup=False)
    terminal.render(result, _out)
