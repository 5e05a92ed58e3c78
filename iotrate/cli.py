"""The ``iotrate`` command line.

Exit codes (documented in README.md): 0 ok; 1 a device rated at or below ``--fail-under``;
2 usage error or refused target; 3 runtime failure. Library code raises :mod:`iotrate.errors`;
only this module turns errors into exit codes and one-line messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from iotrate import __version__
from iotrate.errors import IotrateError, RuntimeFailure, UsageError
from iotrate.models import GRADES, Device, ScanResult
from iotrate.ratelimit import DEFAULT_RATE

if TYPE_CHECKING:
    from iotrate.storage import Recorder

EXIT_OK, EXIT_FAIL_UNDER, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3

app = typer.Typer(
    help="Rate connected devices' cyber-security from A to G, like an energy label.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
lab_app = typer.Typer(
    help="The reference lab: an emulated IoT network of real daemons (Linux, root).",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

out = Console(soft_wrap=True)
if not out.is_terminal and "COLUMNS" not in os.environ:
    # Piped or logged output gets a table wide enough to read, not rich's 80-column default.
    out = Console(soft_wrap=True, width=160)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("iotrate")


def _fail(exc: IotrateError) -> NoReturn:
    err.print(f"iotrate: error: {exc}", markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME)


def _version(value: bool) -> None:
    if value:
        out.print(f"iotrate {__version__}", markup=False, highlight=False)
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_callback(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-vv: debug).")
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """iotrate: find the devices on a network, probe them and grade them A-G."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def worst_at_or_below(result: ScanResult, threshold: str) -> list[str]:
    """Devices whose grade is ``threshold`` or worse (A is best, G worst)."""
    limit = GRADES.index(threshold)
    hits = []
    for d in result.devices:
        grade = d.rating.grade if d.rating else None
        if grade is not None and GRADES.index(grade) >= limit:
            hits.append(f"{d.address} ({grade})")
    return hits


def _grade(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().upper()
    if v not in GRADES:
        raise typer.BadParameter(f"grade must be one of {', '.join(GRADES)}")
    return v


@app.command()
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
            callback=_grade,
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
) -> None:
    """Discover devices on TARGETS, list their services, probe them and rate them.

    The default policy tries a short list of default passwords (within a per-service attempt
    budget) but changes nothing; --safe never logs in; --intrusive is for test labs."""
    from iotrate.discovery.portscan import ScanLimits, port_specs
    from iotrate.netinfo import local_subnet
    from iotrate.reports import json as json_report
    from iotrate.reports import terminal
    from iotrate.scan import ScanOptions, run_scan
    from iotrate.targets import allow_list_from_env, load_allow_list, resolve_targets

    try:
        plan = None
        if resume:  # the stored scan's own targets and options replace the defaults
            from iotrate.resume import SCAN_PARAMS, open_plan

            typed = {  # what this command line says explicitly (typer vendors its own click)
                k: ctx.params[k]
                for k in SCAN_PARAMS
                if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
            }
            resume_store, plan = open_plan(db, no_history, targets or [], typed)
            p = plan.params
            targets, ports, timeout = plan.specs, p.get("ports", ports), p.get("timeout", timeout)
            allow_public, max_hosts = p.get("allow_public", allow_public), p.get("max_hosts")
            concurrency, safe = p.get("concurrency", concurrency), p.get("safe", safe)
            intrusive, exclude = p.get("intrusive", intrusive), p.get("exclude", exclude)
            use_nmap, rate_limit = p.get("use_nmap", use_nmap), p.get("rate_limit", rate_limit)
            budget = p.get("budget", budget)  # the rest gets the same budget again
            allow_list = Path(p["allow_list"]) if p.get("allow_list") else None
        if safe and intrusive:
            raise UsageError("--safe and --intrusive exclude each other")
        from iotrate.probing import parse_budget

        try:
            budget_s = parse_budget(budget) if budget is not None else None
        except ValueError as exc:
            raise UsageError(f"--budget: {exc}") from None
        policy = "safe" if safe else "intrusive" if intrusive else "default"
        if intrusive:
            err.print(
                "iotrate: warning: --intrusive changes device state (UPnP port mappings, SNMP "
                "writes) and puts it back; use it only in a test lab, on devices you own",
                markup=False,
                highlight=False,
            )
        if use_nmap:
            from iotrate.discovery import nmapscan

            if not nmapscan.available():
                raise RuntimeFailure("--nmap needs the nmap program (apt-get install nmap)")
        specs = list(targets or [])
        if not specs:
            dev, net = local_subnet()
            err.print(f"no targets given: scanning {net} on {dev}", markup=False, highlight=False)
            specs = [str(net)]
        target_set = resolve_targets(
            specs,
            allow_public=allow_public,
            max_hosts=max_hosts,
            exclude=exclude or [],
            allow_list=allow_list_from_env() if allow_list is None else load_allow_list(allow_list),
        )
        try:
            port_specs(ports)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        # Say once, before anything is sent, what the scan will do to the devices.
        what = {
            "safe": "connections, banner reads and TLS/SSH handshakes only; no login attempts",
            "default": "connections and handshakes, plus a few login attempts per service with "
            "well-known default passwords (--safe: none)",
            "intrusive": "logins plus reverted writes (UPnP port mapping, SNMP)",
        }[policy]
        resuming, count = "", target_set.size
        if plan is not None:
            resuming = f"resuming scan {plan.record.scan_id[:8]} ({len(plan.devices)} done); "
            count -= len(plan.devices)
        err.print(
            f"iotrate: {resuming}scanning {count} address(es): {what}",
            markup=False,
            highlight=False,
        )
        limits = ScanLimits(connect_timeout=timeout, concurrency=concurrency)
        import asyncio
        import uuid

        from iotrate.cli_history import scan_recorder
        from iotrate.resume import claim, owner_token, record_options

        if plan is None:
            scan_id = str(uuid.uuid4())
            recorder = scan_recorder(
                db,
                no_history,
                scan_id,
                list(target_set.targets),
                policy,
                options=record_options(ctx.params),
                owner=owner_token(),
            )
        else:  # the same scan id, its first start, and the devices it already has
            scan_id = plan.record.scan_id
            claim(resume_store, plan)
            recorder = scan_recorder(
                db,
                no_history,
                scan_id,
                list(target_set.targets),
                policy,
                store=resume_store,
                started=plan.record.started_at,
                resumed=plan.devices,
            )
        # A live line on a terminal (stderr) while devices are probed; nothing when piped.
        status = err.status(f"scanning {target_set.size} address(es)…", spinner="dots")
        done: list[str] = []

        def on_device(device: Device) -> None:
            recorder(device)
            done.append(device.address)
            grade = device.rating.grade if device.rating and device.rating.grade else "?"
            status.update(
                f"scanning {target_set.size} address(es): {len(done)} device(s) rated, "
                f"last {device.address} ({grade})"
            )

        try:
            with status if err.is_terminal else contextlib.nullcontext():
                result = asyncio.run(
                    run_scan(
                        target_set,
                        ScanOptions(
                            ports=ports,
                            limits=limits,
                            policy=policy,
                            save_observations=save_observations,
                            nmap=use_nmap,
                            on_device=on_device,
                            scan_id=scan_id,
                            resumed=() if plan is None else tuple(plan.devices),
                            started_at=None if plan is None else plan.record.started_at,
                            rate_limit=rate_limit,
                            budget=budget_s,
                        ),
                    )
                )
        except KeyboardInterrupt:
            _interrupted(recorder, json_out)
        except BaseException:  # a crash still marks the scan and keeps its finished devices
            with contextlib.suppress(IotrateError):
                recorder.interrupt()
            _close(recorder)
            raise
        _record(recorder, result)
    except IotrateError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RuntimeFailure(str(exc)))
    text = json_report.render(result)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(RuntimeFailure(f"cannot write {output}: {exc}"))
    try:
        _write_outputs(result, report, labels)
    except (OSError, IotrateError) as exc:
        _fail(RuntimeFailure(f"cannot write the report or labels: {exc}"))
    if json_out:
        sys.stdout.write(text + "\n")
    else:
        terminal.render(result, out)
    if fail_under is not None:
        hits = worst_at_or_below(result, fail_under)
        if hits:
            err.print(
                f"iotrate: {len(hits)} device(s) at or below {fail_under}: {', '.join(hits)}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(EXIT_FAIL_UNDER)


def _interrupted(recorder: Recorder, json_out: bool) -> NoReturn:
    """Ctrl-C: keep and print the devices already finished, then exit 130 like any command."""
    from iotrate.reports import json as json_report
    from iotrate.reports import terminal

    try:
        partial = recorder.interrupt()
    except IotrateError as exc:
        err.print(f"iotrate: warning: {exc}", markup=False, highlight=False)
        partial = recorder.partial()
    finally:
        _close(recorder)
    kept = "" if recorder.store is None else f"; kept in the history as {partial.scan_id[:8]}"
    err.print(
        f"iotrate: interrupted after {len(partial.devices)} finished device(s){kept}",
        markup=False,
        highlight=False,
    )
    if json_out:
        sys.stdout.write(json_report.render(partial) + "\n")
    else:
        terminal.render(partial, out)
    raise typer.Exit(130)


def _close(recorder: Recorder) -> None:
    if recorder.store is not None:
        recorder.store.close()


def _record(recorder: Recorder, result: ScanResult) -> None:
    """Store the final result; a history failure is a warning, never the loss of the scan."""
    try:
        recorder.finish(result)
    except IotrateError as exc:
        err.print(f"iotrate: warning: scan not saved in the history: {exc}", markup=False)
    finally:
        _close(recorder)


def _write_outputs(result: ScanResult, report: Path | None, labels: Path | None) -> None:
    """HTML report and per-device labels, both carrying the result's digest."""
    if report is None and labels is None:
        return
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


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scan result (--json output)."""
    from iotrate.reports import json as json_report

    sys.stdout.write(json_report.schema_text())


@lab_app.command("up")
def lab_up(
    subnet: Annotated[
        str | None,
        typer.Option(help="Lab subnet (/24); default 10.231.47.0/24 or $IOTRATE_LAB_SUBNET."),
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Lab profile: reference, hostile or scale.")
    ] = "reference",
    hosts: Annotated[
        int | None, typer.Option(min=1, help="Scale profile: number of emulated hosts (250).")
    ] = None,
    link: Annotated[
        str, typer.Option(help="Scale profile: macvlan (on-link, MACs), routed, or auto.")
    ] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the lab status as JSON.")] = False,
) -> None:
    """Build the lab (idempotent): namespaces, bridge, real daemons."""
    from iotrate import lab

    try:
        status = lab.lab_up(subnet=subnet, profile=profile, hosts=hosts, link=link)
    except IotrateError as exc:
        _fail(exc)
    _print_status(status, json_out)


@lab_app.command("down")
def lab_down() -> None:
    """Tear the lab down; leaves no namespace, interface, file or process behind."""
    from iotrate import lab

    try:
        lab.lab_down()
    except IotrateError as exc:
        _fail(exc)
    err.print("lab is down", markup=False)


@lab_app.command("status")
def lab_status(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print subnet and device table as JSON.")
    ] = False,
) -> None:
    """Say what runs where in the lab."""
    from iotrate import lab

    try:
        status = lab.lab_status()
    except IotrateError as exc:
        _fail(exc)
    _print_status(status, json_out)


@lab_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def lab_exec(
    command: Annotated[list[str], typer.Argument(help="Command to run in the scanner namespace.")],
) -> None:
    """Run a command in the lab's scanner namespace: iotrate lab exec -- CMD ARGS."""
    from iotrate import lab

    try:
        code = lab.lab_exec(list(command))
    except IotrateError as exc:
        _fail(exc)
    raise typer.Exit(code)


def _print_status(status: dict[str, object], json_out: bool) -> None:
    import json

    if json_out:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    running = bool(status.get("running"))
    out.print(
        Text(f"lab {'running' if running else 'not running'} — subnet {status.get('subnet')}")
    )
    t = Table()
    for col in ("Device", "Address", "MAC", "Ports", "Weaknesses", "Expected"):
        t.add_column(col)
    devices = status.get("devices")
    for d in devices if isinstance(devices, list) else []:
        ports = ", ".join(f"{p['port']}/{p['transport']}" for p in d.get("ports", []))
        weak = ", ".join(
            w["id"] if isinstance(w, dict) else str(w) for w in d.get("weaknesses", [])
        )
        t.add_row(
            *(
                Text(str(x))
                for x in (
                    d.get("name"),
                    d.get("address"),
                    d.get("mac"),
                    ports,
                    weak,
                    d.get("expected_grade"),
                )
            )
        )
    out.print(t)


# --- Command registrations -------------------------------------------------------------------
# Each area keeps its commands in its own module and registers them here with one line, e.g.
# ``app.command("identify")(identify_cmd)`` or ``app.add_typer(keys_app, name="keys")``.
from iotrate.cli_rate import rate_cmd  # noqa: E402

app.command("rate")(rate_cmd)
from iotrate.cli_report import keys_app, label_cmd, report_cmd, sign_cmd, verify_cmd  # noqa: E402

app.command("label")(label_cmd)
app.command("report")(report_cmd)
app.add_typer(keys_app, name="keys")
app.command("sign")(sign_cmd)
app.command("verify")(verify_cmd)
from iotrate.cli_identify import identify_cmd  # noqa: E402

app.command("identify")(identify_cmd)
from iotrate.cli_db import db_app  # noqa: E402

app.add_typer(db_app, name="db")
from iotrate.cli_history import diff_cmd, history_cmd, show_cmd  # noqa: E402

app.command("history")(history_cmd)
app.command("show")(show_cmd)
app.command("diff")(diff_cmd)
from iotrate.cli_fleet import register as register_fleet  # noqa: E402

register_fleet(app)
from iotrate.cli_serve import serve_cmd  # noqa: E402

app.command("serve")(serve_cmd)
from iotrate.cli_ble import ble_app  # noqa: E402

app.add_typer(ble_app, name="ble")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("iotrate: interrupted", markup=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
