"""What every ``iotrate`` command shares: the consoles, the one-line error exit, the exit codes,
the grade option and the writers of the report and labels.

Exit codes (documented in README.md): 0 ok; 1 a device rated at or below ``--fail-under``;
2 usage error or refused target; 3 runtime failure. Library code raises :mod:`iotrate.errors`;
only the command modules turn errors into exit codes and one-line messages, through
:func:`fail`. Nothing here imports another command module, so every one of them can import this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from iotrate.errors import IotrateError, UsageError
from iotrate.models import GRADES, ScanResult

EXIT_OK, EXIT_FAIL_UNDER, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


def stdout_console() -> Console:
    """The console for results on stdout."""
    console = Console(soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or logged output gets a table wide enough to read, not rich's 80-column default.
        console = Console(soft_wrap=True, width=160)
    return console


out = stdout_console()
err = Console(stderr=True, soft_wrap=True)


def fail(exc: IotrateError) -> NoReturn:
    """One line on stderr, no traceback; usage errors exit 2, everything else 3."""
    err.print(f"iotrate: error: {exc}", markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME)


def say(line: str) -> None:
    """A line for the user on stderr, printed as it is (no markup, no highlighting)."""
    err.print(line, markup=False, highlight=False)


def grade_option(value: str | None) -> str | None:
    """The ``--fail-under`` callback: a grade A-G, any case."""
    if value is None:
        return None
    v = value.strip().upper()
    if v not in GRADES:
        raise typer.BadParameter(f"grade must be one of {', '.join(GRADES)}")
    return v


def worst_at_or_below(result: ScanResult, threshold: str) -> list[str]:
    """Devices whose grade is ``threshold`` or worse (A is best, G worst)."""
    limit = GRADES.index(threshold)
    hits = []
    for d in result.devices:
        grade = d.rating.grade if d.rating else None
        if grade is not None and GRADES.index(grade) >= limit:
            hits.append(f"{d.address} ({grade})")
    return hits


def write_outputs(result: ScanResult, report: Path | None, labels: Path | None) -> None:
    """HTML report and per-device labels, both carrying the result's digest."""
    if report is None and labels is None:
        return
    # Rendering (jinja2, cairosvg) is loaded only by the commands that write something.
    from iotrate.reports import html
    from iotrate.reports import label as lbl
    from iotrate.signing import result_digest

    digest = result_digest(result)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html.render(result, digest=digest), encoding="utf-8")
    if labels is not None:
        labels.mkdir(parents=True, exist_ok=True)
        for d in result.devices:
            svg = lbl.render_svg(lbl.label_data(d, result, digest=digest), "full")
            stem = lbl.file_stem(d)
            (labels / f"{stem}.svg").write_text(svg, encoding="utf-8")
            (labels / f"{stem}.png").write_bytes(lbl.to_png(svg, dpi=150))
