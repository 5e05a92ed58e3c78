"""``iotrate lab``: build, inspect and tear down the reference lab (Linux, root)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from iotrate.cli.console import err, fail, out
from iotrate.errors import IotrateError

lab_app = typer.Typer(
    help="The reference lab: an emulated IoT network of real daemons (Linux, root).",
    no_args_is_help=True,
)


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
    from iotrate import lab  # the lab's tables and daemons load only for lab commands

    try:
        status = lab.lab_up(subnet=subnet, profile=profile, hosts=hosts, link=link)
    except IotrateError as exc:
        fail(exc)
    _print_status(status, json_out)


@lab_app.command("down")
def lab_down() -> None:
    """Tear the lab down; leaves no namespace, interface, file or process behind."""
    from iotrate import lab  # see lab_up

    try:
        lab.lab_down()
    except IotrateError as exc:
        fail(exc)
    err.print("lab is down", markup=False)


@lab_app.command("status")
def lab_status(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print subnet and device table as JSON.")
    ] = False,
) -> None:
    """Say what runs where in the lab."""
    from iotrate import lab  # see lab_up

    try:
        status = lab.lab_status()
    except IotrateError as exc:
        fail(exc)
    _print_status(status, json_out)


@lab_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def lab_exec(
    command: Annotated[list[str], typer.Argument(help="Command to run in the scanner namespace.")],
) -> None:
    """Run a command in the lab's scanner namespace: iotrate lab exec -- CMD ARGS."""
    from iotrate import lab  # see lab_up

    try:
        code = lab.lab_exec(list(command))
    except IotrateError as exc:
        fail(exc)
    raise typer.Exit(code)


def _print_status(status: dict[str, object], json_out: bool) -> None:
    if json_out:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
        return
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
