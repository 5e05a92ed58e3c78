"""``iotrate scan`` and ``iotrate schema``: discover, probe and rate the devices of a network.

The scan itself (checks, ``--resume``, the history, Ctrl-C) is :class:`iotrate.scanjob.ScanJob`;
this module turns the options into a :class:`~iotrate.scanrequest.ScanRequest`, shows progress,
prints the result and maps errors to exit codes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from iotrate.cli.console import (
    EXIT_FAIL_UNDER,
    err,
    fail,
    grade_option,
    out,
    say,
    worst_at_or_below,
    write_json,
    write_outputs,
)
from iotrate.errors import IotrateError, RuntimeFailure
from iotrate.models import Device, ScanResult
from iotrate.ratelimit import DEFAULT_RATE
from iotrate.reports.scope import scope_text
from iotrate.scanrequest import SCAN_PARAMS, ScanRequest

if TYPE_CHECKING:
    from iotrate.scanjob import ScanInterrupted


def scan(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Addresses, CIDRs (10.0.0.0/24), ranges (10.0.0.1-20) or hostnames. "
            "None: the default interface's subnet.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the JSON result to FILE.")
    ] = None,
    ports: Annotated[
        str,
        typer.Option(
            help="'iot' (curated list), 'all' (1-65535), or e.g. '22,80,8000-8100,U:161'."
        ),
    ] = "iot",
    allow_public: Annotated[
        bool, typer.Option("--allow-public", help="Allow globally routable targets (yours only).")
    ] = False,
    max_hosts: Annotated[
        int | None,
        typer.Option("--max-hosts", min=1, help="Allow more than 1024 addresses (a /22)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=60, help="Connect timeout per port, seconds.")
    ] = 1.0,
    concurrency: Annotated[
        int, typer.Option(min=1, max=4096, help="Most connections open at once.")
    ] = 512,
    fail_under: Annotated[
        str | None,
        typer.Option(
            "--fail-under",
            callback=grade_option,
            help="Exit 1 if any device is rated at or below this grade (A-G).",
        ),
    ] = None,
    safe: Annotated[
        bool,
        typer.Option("--safe", help="Passive probes only: no login attempts, nothing written."),
    ] = False,
    intrusive: Annotated[
        bool,
        typer.Option(
            "--intrusive",
            help="Lab only: also run probes that change device state and revert it "
            "(UPnP port mapping, SNMP write-back).",
        ),
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report to FILE.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Write each device's label (SVG and PNG) into DIR."),
    ] = None,
    save_observations: Annotated[
        Path | None,
        typer.Option(
            "--save-observations",
            help="Write what discovery saw as JSONL, for 'iotrate identify' to replay.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="Address or CIDR never to contact (repeatable).", show_default=False
        ),
    ] = None,
    use_nmap: Annotated[
        bool,
        typer.Option(
            "--nmap",
            help="Also run nmap -sV (and -O as root) on each device's open ports; needs nmap.",
        ),
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="PATH",
            help="History database to record the scan in, device by device as it runs "
            "(default: $IOTRATE_DB, else iotrate.db in the user data dir).",
        ),
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Do not record this scan in the history.")
    ] = False,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            metavar="DURATION",
            help="Time budget, e.g. 60s or 2m: the most telling probes run first, nothing "
            "starts after it, and the rating shows the coverage reached.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Finish an interrupted scan with its own options: the scan whose id (or "
            "prefix) is the first argument, else the latest one of TARGETS, else the latest. "
            "Only hosts not stored yet are scanned.",
        ),
    ] = False,
    allow_list: Annotated[
        Path | None,
        typer.Option(
            "--allow-list",
            metavar="FILE",
            help="Lab allow-list: addresses/CIDRs, one a line (# comments). Targets outside "
            "it are refused; public addresses inside it need no --allow-public.",
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            min=0,
            metavar="N",
            help="Most new connections (or UDP probes) per second to each host; 0: no limit.",
        ),
    ] = DEFAULT_RATE,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            metavar="home|lab",
            help="'lab': the documented test-lab scope (all 65,535 TCP ports, the UDP IoT "
            "list, default credentials tried); recorded in the result. 'home': as asked.",
        ),
    ] = "home",
) -> None:
    """Discover devices on TARGETS, list their services, probe them and rate them.

    The default policy tries a short list of default passwords (within a per-service attempt
    budget) but changes nothing; --safe never logs in; --intrusive is for test labs."""
    # The scan machinery (discovery, probes, rating, history) loads only when a scan runs.
    from iotrate.scanjob import ScanInterrupted, ScanJob

    request = ScanRequest(
        targets=tuple(targets or ()),
        ports=ports,
        allow_public=allow_public,
        max_hosts=max_hosts,
        timeout=timeout,
        concurrency=concurrency,
        safe=safe,
        intrusive=intrusive,
        exclude=tuple(exclude or ()),
        use_nmap=use_nmap,
        allow_list=allow_list,
        rate_limit=rate_limit,
        budget=budget,
        profile=profile,
    )
    job = ScanJob(request, db=db, no_history=no_history, say=say)
    try:
        if resume:  # the stored scan's own targets and options replace the defaults
            job.resume(targets or [], _typed(ctx))
        target_set = job.prepare()
        # A live line on a terminal (stderr) while devices are probed; nothing when piped.
        status = err.status(f"scanning {target_set.size} address(es)…", spinner="dots")
        done: list[str] = []

        def on_device(device: Device) -> None:
            done.append(device.address)
            grade = device.rating.grade if device.rating and device.rating.grade else "?"
            status.update(
                f"scanning {target_set.size} address(es): {len(done)} device(s) rated, "
                f"last {device.address} ({grade})"
            )

        def on_sweep(host: str, done_ports: int, total: int, left_s: float) -> None:
            status.update(
                f"sweeping {host}: {done_ports:,} of {total:,} ports, about {left_s:.0f} s left"
            )

        result = job.run(
            progress=on_sweep,
            on_device=on_device,
            save_observations=save_observations,
            around=status if err.is_terminal else contextlib.nullcontext(),
        )
    except ScanInterrupted as stop:
        _interrupted(stop, json_out)
    except IotrateError as exc:
        fail(exc)
    except OSError as exc:
        fail(RuntimeFailure(str(exc)))
    _emit(result, json_out=json_out, output=output, report=report, labels=labels)
    if fail_under is not None:
        hits = worst_at_or_below(result, fail_under)
        if hits:
            err.print(
                f"iotrate: {len(hits)} device(s) at or below {fail_under}: {', '.join(hits)}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(EXIT_FAIL_UNDER)


def _typed(ctx: typer.Context) -> dict[str, Any]:
    """The scan options this command line gives explicitly (typer vendors its own click, so
    the parameter source is compared by name)."""
    return {
        k: ctx.params[k]
        for k in SCAN_PARAMS
        if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
    }


def _emit(
    result: ScanResult,
    *,
    json_out: bool,
    output: Path | None,
    report: Path | None,
    labels: Path | None,
) -> None:
    from iotrate.reports import json as json_report  # the renderers load only for a result
    from iotrate.reports import terminal

    text = json_report.render(result)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            fail(RuntimeFailure(f"cannot write {output}: {exc}"))
    try:
        write_outputs(result, report, labels)
    except (OSError, IotrateError) as exc:
        fail(RuntimeFailure(f"cannot write the report or labels: {exc}"))
    if json_out:
        write_json(text + "\n")
    else:
        terminal.render(result, out)
        if result.scope is not None:
            say(f"iotrate: scope: {scope_text(result.scope)}")


def _interrupted(stop: ScanInterrupted, json_out: bool) -> NoReturn:
    """Ctrl-C: print the devices already finished, then exit 130 like any command."""
    from iotrate.reports import json as json_report  # see _emit
    from iotrate.reports import terminal

    partial = stop.partial
    kept = (
        f"; kept in the history as {partial.scan_id[:8]}: finish it with "
        f"'iotrate scan --resume {partial.scan_id[:8]}'"
        if stop.kept
        else " (--no-history: nothing kept to resume)"
    )
    err.print(
        f"iotrate: interrupted after {len(partial.devices)} finished device(s){kept}",
        markup=False,
        highlight=False,
    )
    if json_out:
        write_json(json_report.render(partial) + "\n")
    else:
        terminal.render(partial, out)
    raise typer.Exit(130)


def schema() -> None:
    """Print the JSON Schema of the scan result (--json output)."""
    from iotrate.reports import json as json_report  # see _emit

    sys.stdout.write(json_report.schema_text())
