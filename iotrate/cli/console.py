"""What every ``iotrate`` command shares: the consoles, the one-line error exit, the exit codes,
the grade option and the writers of the report and labels.

Exit codes (documented in README.md): 0 ok; 1 a device rated at or below ``--fail-under``;
2 usage error or refused target; 3 runtime failure. Library code raises :mod:`iotrate.errors`;
only the command modules turn errors into exit codes and one-line messages, through
:func:`fail`. Nothing here imports another command module, so every one of them can import this.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.segment import Segment

from iotrate.errors import IotrateError, UsageError
from iotrate.models import GRADES, ScanResult
from iotrate.reports.textfit import json_safe, terminal_safe

EXIT_OK, EXIT_FAIL_UNDER, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


class SafeConsole(Console):
    """A rich console whose every text segment passes :func:`terminal_safe` on its way out.

    This is the one place between data and the terminal: tables, reasons and errors may all
    carry device strings, and cleaning at each call site is how one gets forgotten. Rich's
    own styling and control segments are generated after the text is cleaned, so colours stay.
    """

    def __init__(self, **kwargs: Any) -> None:
        # No console markup by default: ``[link=…]`` in a device string would otherwise become
        # a hyperlink. Styling is given as rich ``Text`` styles, never parsed from strings.
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)  # ":thumbs_up:" in a device name stays text
        super().__init__(**kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            Segment(text if control else terminal_safe(text), style, control)
            for text, style, control in buffer
        )


class SafeFormatter(logging.Formatter):
    """Log lines on stderr are terminal lines too: agents and probes log device strings."""

    def format(self, record: logging.LogRecord) -> str:
        return str(terminal_safe(super().format(record)))


def stdout_console() -> Console:
    """The console for results on stdout."""
    console = SafeConsole(soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or logged output gets a table wide enough to read, not rich's 80-column default.
        console = SafeConsole(soft_wrap=True, width=160)
    return console


out = stdout_console()
err = SafeConsole(stderr=True, soft_wrap=True)
stderr_console = err  # for modules whose functions take a console named ``err``


def fail(exc: IotrateError) -> NoReturn:
    """One line on stderr, no traceback; usage errors exit 2, everything else 3."""
    say(f"iotrate: error: {exc}")
    raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME)


def say(line: str) -> None:
    """A line for the user on stderr, printed as it is (no markup, no highlighting), through
    the stderr console so that it shares the screen with a live status line."""
    err.print(line, markup=False, highlight=False)


def say_err(line: str) -> None:
    """A plain line on stderr, cleaned like everything the CLI prints."""
    typer.echo(terminal_safe(line), err=True)


def say_out(line: str) -> None:
    """A plain line on stdout, cleaned like everything the CLI prints."""
    typer.echo(terminal_safe(line))


def write_json(text: str) -> None:
    """A JSON document on stdout, device strings' control characters written as ``\\u``
    escapes: the same JSON value, harmless when nobody pipes it anywhere."""
    sys.stdout.write(json_safe(text))
    sys.stdout.flush()


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
