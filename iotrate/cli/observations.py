"""Reading recorded observations (JSON Lines) for the commands that replay them, ``identify``
and ``ble replay``: one reader, one way of telling what could not be read."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from iotrate.cli.console import EXIT_USAGE
from iotrate.identify import read_observations
from iotrate.identify.observations import ReadResult


def read_observation_file(file: Path, err: Console) -> ReadResult:
    """Observations from a JSON Lines file (``-``: stdin), their warnings and errors printed;
    a file that cannot be read at all is a usage error (exit 2)."""
    try:
        if str(file) == "-":
            read = read_observations(sys.stdin)
        else:
            with file.open(encoding="utf-8", errors="replace") as fh:
                read = read_observations(fh)
    except OSError as exc:
        err.print(f"iotrate: error: cannot read {file}: {exc.strerror or exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    tell_read_problems(read, err)
    return read


def tell_read_problems(read: ReadResult, err: Console) -> None:
    for w in read.warnings:
        err.print(f"iotrate: warning: {w}", markup=False, highlight=False)
    for e in read.errors:
        err.print(f"iotrate: error: {e}", markup=False, highlight=False)
