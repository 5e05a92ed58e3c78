"""``iotrate identify FILE.jsonl``: offline identification of recorded observations.

Kept in its own module so the identification area owns its command; ``iotrate.cli.main``
registers it with one line. The command is a thin shell: reading, identifying and rendering are
library functions, so the benchmark and tests run exactly what users run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from iotrate.cli.console import EXIT_RUNTIME, EXIT_USAGE, stderr_console, stdout_console, write_json
from iotrate.cli.observations import read_observation_file, tell_read_problems
from iotrate.identify import IdentifyError, identify
from iotrate.identify.observations import ReadResult
from iotrate.models import Identity

# Heavy modules (the pcap reader) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.


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
    out = stdout_console()
    err = stderr_console
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
        tell_read_problems(read, err)
    try:
        results = identify(read.observations)
    except IdentifyError as exc:
        err.print(f"iotrate: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUNTIME) from None
    if json_out:
        write_json(render_json(results))
    else:
        render_table(results, out)
    if read.errors:
        raise typer.Exit(EXIT_USAGE)
