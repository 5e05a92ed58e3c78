"""``iotrate rate``: rate a saved scan result, optionally with a manufacturer declaration.

Rating is separate from scanning so that a lab can re-rate the same evidence under a new
scheme version or with the maker's declaration, without touching the device again. Registered
in :mod:`iotrate.cli.main`; exit codes as in :mod:`iotrate.cli.console`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from iotrate.cli.console import (
    EXIT_FAIL_UNDER,
    err,
    fail,
    grade_option,
    out,
    worst_at_or_below,
    write_json,
)
from iotrate.errors import IotrateError, RuntimeFailure, UsageError
from iotrate.models import Coverage, ScanResult
from iotrate.naming import display_name
from iotrate.reports.scope import scope_summary
from iotrate.reports.textfit import clean

# Heavy modules (the scheme and the declarations) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.


def rate_cmd(
    result_file: Annotated[
        Path,
        typer.Argument(
            metavar="RESULT_JSON",
            exists=True,
            dir_okay=False,
            help="A scan result as written by 'iotrate scan --json' or '-o'.",
        ),
    ],
    declarations: Annotated[
        list[Path] | None,
        typer.Option(
            "--declaration",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Manufacturer declaration (YAML) for the device it names; repeatable.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="Apply the --declaration to this device (id or address); a contradiction "
            "with what the scan saw needs --force.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Apply the --declaration to the --device even though what the scan saw "
            "contradicts it (recorded on the rating and label; the device cannot earn A).",
        ),
    ] = False,
    scheme_file: Annotated[
        Path | None,
        typer.Option(
            "--scheme",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Rating scheme YAML (default: current).",
        ),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="Judge support periods as of this date (default: the day of the scan).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rated result as JSON.")] = (
        False
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the rated result to FILE.")
    ] = None,
    fail_under: Annotated[
        str | None,
        typer.Option(
            "--fail-under",
            metavar="GRADE",
            callback=grade_option,
            help="Exit 1 if any device is rated at or below this grade (A-G).",
        ),
    ] = None,
) -> None:
    """Rate the devices in a saved scan result, A-G, and explain each grade."""
    from iotrate.declarations import assign_declarations, load_declaration
    from iotrate.rating import rate_result
    from iotrate.rating_schema.loader import load_scheme

    try:
        try:
            text = result_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {result_file}: {exc.strerror or exc}") from exc
        try:
            result = ScanResult.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/".join(str(p) for p in first["loc"]) or "(top level)"
            raise UsageError(
                f"{result_file} is not an iotrate scan result: {where}: {first['msg']}"
            ) from exc
        scheme = load_scheme(scheme_file)
        decls = [load_declaration(p) for p in declarations or []]
        if device is not None and not decls:
            raise UsageError("--device needs a --declaration")
        assigned = assign_declarations(result, decls, device, force=force)
        day = as_of.date() if as_of else None
        rated = rate_result(result, scheme, assigned, today=day)
    except IotrateError as exc:
        fail(exc)
    doc = rated.model_dump_json(indent=2)
    if output is not None:
        try:
            output.write_text(doc + "\n", encoding="utf-8")
        except OSError as exc:
            fail(RuntimeFailure(f"cannot write {output}: {exc.strerror or exc}"))
    if json_out:
        write_json(doc + "\n")
    else:
        out.print(rating_table(rated))
        stale = any(
            c.cap == "vulndb-stale" for d in rated.devices if d.rating for c in d.rating.caps
        )
        if stale:
            err.print(
                "iotrate: the vulnerability data of this scan is more than 90 days old or undated, "
                "which keeps devices out of A: run `iotrate db update` and scan again",
                markup=False,
                highlight=False,
            )
    if fail_under is not None:
        hits = worst_at_or_below(rated, fail_under)
        if hits:
            err.print(
                f"iotrate: {len(hits)} device(s) at or below {fail_under}: {', '.join(hits)}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(EXIT_FAIL_UNDER)


def rating_table(result: ScanResult) -> Table:
    """One row per device. Device strings go in as ``Text``, never markup: they are hostile."""
    scheme = next(
        (
            f"{d.rating.scheme_id} {d.rating.scheme_version}"
            for d in result.devices
            if d.rating and d.rating.scheme_id
        ),
        "?",
    )
    # The caption is a Text, never markup; the scope line says what the grades are based on.
    t = Table(
        title=f"iotrate rating ({scheme}) — automated assessment, not a certification",
        caption=Text(clean(f"Scan scope: {scope_summary(result.scope)}")),
    )
    for col, just in (
        ("Address", "left"),
        ("Device", "left"),
        ("Grade", "center"),
        ("Score", "right"),
        ("Coverage", "right"),
        ("Support until", "left"),
        ("Main reason", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for d in result.devices:
        r = d.rating
        what = display_name(d)
        if r is None:
            t.add_row(
                Text(clean(d.address)), Text(clean(what)), Text("–"), *(Text("") for _ in range(4))
            )
            continue
        cov = r.coverage
        # Cap reasons quote evidence (a certificate subject, a banner): device text.
        main = clean(r.caps[0].reason if r.caps else (r.reasons[0] if r.reasons else ""), 2000)
        if r.status == "insufficient_evidence":
            shown, main = "no grade", clean(r.reasons[0], 2000)
        else:
            shown = f"at best {r.grade}" if r.at_best and r.grade else (r.grade or "–")
        t.add_row(
            Text(clean(d.address)),
            Text(clean(what)),
            Text(shown),
            Text(f"{r.score:g}" if r.score is not None else "–"),
            Text(_coverage_cell(cov)),
            Text((r.support_until.isoformat() + " (declared)") if r.support_until else "unknown"),
            # The full explanation is in --json and the report; the table keeps one glance.
            Text(main if len(main) <= 140 else main[:139] + "…"),
        )
    return t


def _coverage_cell(cov: Coverage | None) -> str:
    """Topics tested (label rows) when the scheme counts them, then checks."""
    if cov is None:
        return "–"
    checks = f"{cov.checks_run}/{cov.checks_total}"
    return f"{cov.rows_tested or 0}/{cov.rows_total} topics, {checks}" if cov.rows_total else checks
