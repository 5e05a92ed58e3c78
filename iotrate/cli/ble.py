"""``iotrate ble scan`` and ``iotrate ble replay``: Bluetooth LE devices, rated.

A thin shell, like ``iotrate identify``: ``scan`` records advertisements with bleak
(:mod:`iotrate.ble.live`) and ``replay`` reads a recording; both then run the same pipeline
(:func:`iotrate.ble.devices.capture_result`) and the same outputs as ``iotrate scan`` (table,
``--json``/``-o``, ``--report``, ``--labels``). Registered in ``iotrate.cli.main`` with one line.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from iotrate.cli.console import (
    EXIT_RUNTIME,
    EXIT_USAGE,
    stderr_console,
    stdout_console,
    write_json,
    write_outputs,
)
from iotrate.cli.observations import read_observation_file
from iotrate.errors import IotrateError, UsageError
from iotrate.identify.observations import BleObservation, Observation
from iotrate.models import ScanResult

# Heavy modules (bleak, the BLE pipeline, the renderers) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.

ble_app = typer.Typer(
    help="Bluetooth LE: find watches, trackers, bands and sensors nearby and rate their privacy.",
    no_args_is_help=True,
)


def _consoles() -> tuple[Console, Console]:
    return stdout_console(), stderr_console


def _fail(err: Console, exc: IotrateError) -> typer.Exit:
    """One line, no traceback; usage errors exit 2, everything else 3."""
    text = str(exc)
    prefix = "iotrate: " if text.startswith("no Bluetooth") else "iotrate: error: "
    err.print(prefix + text, markup=False, highlight=False)
    return typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME)


def _emit(
    result: ScanResult,
    *,
    json_out: bool,
    output: Path | None,
    report: Path | None,
    labels: Path | None,
    out: Console,
) -> None:
    from iotrate.reports import terminal

    text = result.model_dump_json(indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")
    write_outputs(result, report, labels)
    if json_out:
        write_json(text + "\n")
    else:
        terminal.render(result, out)
        for d in result.devices:
            for f in d.findings:
                if f.check == "ble.tracker.following":
                    out.print(
                        Text.assemble(("Warning:", "bold red"), " ", f.evidence[0].summary),
                        highlight=False,
                    )


def _save(path: Path, observations: list[BleObservation]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for obs in observations:
            fh.write(json.dumps(obs.model_dump(mode="json"), ensure_ascii=False) + "\n")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the rated result as JSON.")]
OutOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the rated result (JSON) to FILE.")
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write the HTML report to FILE.")]
LabelsOpt = Annotated[
    Path | None, typer.Option("--labels", help="Write each device's label (SVG, PNG) into DIR.")
]


@ble_app.command("scan")
def scan_cmd(
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", min=1, max=3600, help="Listen this long (default 30)."),
    ] = None,
    follow: Annotated[
        float | None,
        typer.Option(
            "--follow",
            min=1,
            max=24 * 60,
            help="Listen this many minutes, for the checks that need time: a trackable "
            "address (15 min) and a tracker travelling with you (20 min; keep moving).",
        ),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save-observations",
            help="Write what was heard, one JSON object a line (replay: iotrate ble replay).",
        ),
    ] = None,
    json_out: JsonOpt = False,
    output: OutOpt = None,
    report: ReportOpt = None,
    labels: LabelsOpt = None,
) -> None:
    """Listen to Bluetooth LE advertisements nearby, then identify and rate each device.

    Passive: nothing is sent to any device. Needs a Bluetooth adapter and BlueZ (Linux).
    """
    from iotrate.ble.devices import capture_result
    from iotrate.ble.live import Recorder, scan

    out, err = _consoles()
    if seconds is not None and follow is not None:
        err.print("iotrate: error: give --seconds or --follow, not both", markup=False)
        raise typer.Exit(EXIT_USAGE)
    duration = follow * 60 if follow is not None else (seconds or 30.0)
    started = datetime.now(UTC)
    span = f"{duration / 60:g} min" if duration >= 60 else f"{duration:g} s"

    def listening() -> None:
        if not json_out:
            err.print(
                f"iotrate: listening to Bluetooth LE for {span}; nothing is sent",
                markup=False,
                highlight=False,
            )

    try:
        recorder = asyncio.run(scan(duration, Recorder(), listening))
        if recorder.dropped:
            err.print(
                f"iotrate: warning: {recorder.dropped} advertisements past the recording limit "
                "were not kept",
                markup=False,
                highlight=False,
            )
        if save is not None:
            _save(save, recorder.observations)
        result = capture_result(recorder.observations, started_at=started)
        _emit(result, json_out=json_out, output=output, report=report, labels=labels, out=out)
    except IotrateError as exc:
        raise _fail(err, exc) from None
    except OSError as exc:
        err.print(f"iotrate: error: {exc.strerror or exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUNTIME) from None


@ble_app.command("replay")
def replay_cmd(
    file: Annotated[
        Path, typer.Argument(help="A recording of ble observations, one JSON object a line.")
    ],
    json_out: JsonOpt = False,
    output: OutOpt = None,
    report: ReportOpt = None,
    labels: LabelsOpt = None,
) -> None:
    """Identify and rate the Bluetooth devices of a recording, as a live scan would have.

    The time-based checks use the recording's own clock (each observation's ``time``).
    """
    from iotrate.ble.devices import capture_result

    out, err = _consoles()
    read = read_observation_file(file, err)
    if read.errors:
        # A recording that did not read whole is not rated: a result (or an empty one) from
        # part of it would claim less was heard than was, and overwrite any earlier -o file.
        err.print(
            f"iotrate: error: {file}: {len(read.errors)} bad line(s); nothing rated or written",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(EXIT_USAGE)
    ble: list[Observation] = [o for o in read.observations if isinstance(o, BleObservation)]
    try:
        result = capture_result(ble)
        _emit(result, json_out=json_out, output=output, report=report, labels=labels, out=out)
    except IotrateError as exc:
        raise _fail(err, exc) from None
