"""The ``iotrate`` application: the global options, and every command group registered from
its own module. Command modules share only :mod:`iotrate.cli.console`; none imports this one.

Exit codes (documented in README.md): see :mod:`iotrate.cli.console`.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from iotrate import __version__
from iotrate.cli.ble import ble_app
from iotrate.cli.console import EXIT_OK, SafeFormatter, err, out
from iotrate.cli.db import db_app
from iotrate.cli.fleet import register as register_fleet
from iotrate.cli.history import diff_cmd, history_cmd, show_cmd
from iotrate.cli.identify import identify_cmd
from iotrate.cli.lab import lab_app
from iotrate.cli.rate import rate_cmd
from iotrate.cli.report import keys_app, label_cmd, report_cmd, sign_cmd, verify_cmd
from iotrate.cli.scan import scan, schema
from iotrate.cli.serve import serve_cmd

app = typer.Typer(
    help="Rate connected devices' cyber-security from A to G, like an energy label.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


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
    logging.basicConfig(level=level, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))


# The order of registration is the order of ``iotrate --help``.
app.command("scan")(scan)
app.command("schema")(schema)
app.add_typer(lab_app, name="lab")
app.command("rate")(rate_cmd)
app.command("label")(label_cmd)
app.command("report")(report_cmd)
app.add_typer(keys_app, name="keys")
app.command("sign")(sign_cmd)
app.command("verify")(verify_cmd)
app.command("identify")(identify_cmd)
app.add_typer(db_app, name="db")
app.command("history")(history_cmd)
app.command("show")(show_cmd)
app.command("diff")(diff_cmd)
register_fleet(app)
app.command("serve")(serve_cmd)
app.add_typer(ble_app, name="ble")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("iotrate: interrupted", markup=False)
        sys.exit(130)
