"""``iotrate identify FILE.jsonl``: offline identification of recorded observations.

Kept out of ``iotrate.cli`` so the identification area owns its command; ``cli.py`` registers
it with one line. The command is a thin shell: reading, identifying and rendering are library
functions, so the benchmark and tests run exactly what users run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from iotrate.identify import IdentifyError, identify, read_observations
from iotrate.identify.observations import ReadResult
from iotrate.models import Identity

EXIT_USAGE, EXIT_RUNTIME = 2, 3


def result_dict(device: str, identity: Identity) -> dict[str, Any]:
    """The documented per-device JSON object (docs/identify.md)."""
    return {"device": device, **identity.model_dump(mode="json")}


def render_json(results: list[tuple[str, Identity]]) -> str:
    return "".join(
        json.dumps(result_dict(d, i), ensure_ascii=False, sort_keys=False) + "\n"
        for d, i in results
    )


def render_table(results: list[tuple[str, Identity]], console: Console) -> None:
    table = Table()
    for col in ("Device", "Category", "Vendor", "Model", "Firmware", "Conf.", "Main evidence"):
        table.add_column(col)
    for device, ident in results:
        top = next((e for e in ident.evidence if e.supports), None)
        why = f"{top.field} = {top.value[:40]}" if top else "-"
        table.add_row(
            *(
                Text(x)
                for x in (
                    device,
                    ident.category,
                    ident.vendor or "-",
                    ident.model or "-",
                    ident.firmware or "-",
                    f"{ident.confidence:.2f}",
                    why,
                )
            )
        )
    console.print(table)


def identify_cmd(
    file: Annotated[
        Path | None,
        typer.Argument(help="Recorded observations, one JSON object a line ('-' for stdin)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON result per device per line.")
    ] = False,
    pcap: Annotated[
        Path | None,
        typer.Option(
            "--pcap",
            help="Identify passively from a packet capture (pcap/pcapng): SSDP, mDNS, DHCP, "
            "HTTP. Sends nothing.",
        ),
    ] = None,
) -> None:
    """Identify devices (category, vendor, model, firmware) from recorded observations.

    Offline: reads FILE, sends nothing. Format: docs/identify.md.
    """
    out = Console(soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(soft_wrap=True, width=160)
    err = Console(stderr=True, soft_wrap=True)
    if (file is None) == (pcap is None):
        err.print("iotrate: error: give either FILE.jsonl or --pcap FILE", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if pcap is not None:
        from iotrate.discovery.pcap import read_pcap
        from iotrate.errors import UsageError

        try:
            read = ReadResult(observations=read_pcap(pcap))
        except UsageError as exc:
            err.print(f"iotrate: error: {exc}", markup=False, highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        file = pcap
    assert file is not None
    if pcap is None:
        read = read_observation_file(file, err)
    else:
        _tell_read_problems(read, err)
    try:
        results = identify(read.observations)
    except IdentifyError as exc:
        err.print(f"iotrate: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUNTIME) from None
    if json_out:
        sys.stdout.write(render_json(results))
    else:
        render_table(results, out)
    if read.errors:
        raise typer.Exit(EXIT_USAGE)


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
    _tell_read_problems(read, err)
    return read


def _tell_read_problems(read: ReadResult, err: Console) -> None:
    for w in read.warnings:
        err.print(f"iotrate: warning: {w}", markup=False, highlight=False)
    for e in read.errors:
        err.print(f"iotrate: error: {e}", markup=False, highlight=False)
