"""``iotrate db``: the vulnerability dataset behind the update-status check.

``iotrate db update FILE…`` merges CVE JSON 5 records, NVD API 2.0 answers, the CISA KEV
catalog and tables in the ``embedded_components.csv`` layout into the dataset, offline: a lab
fetches the files however its network policy allows, then runs this. ``iotrate db info`` says
what the dataset holds. Registered in :mod:`iotrate.cli.main`; exit codes as documented there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from iotrate import vulndb
from iotrate.cli.console import SafeConsole, fail
from iotrate.errors import IotrateError, RuntimeFailure

db_app = typer.Typer(
    help="The vulnerability dataset used by the update-status check (offline refresh).",
    no_args_is_help=True,
)
_out = SafeConsole(soft_wrap=True, highlight=False)


@db_app.command("update")
def update_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE…",
            help="CVE JSON 5 records (or folders of them), NVD API 2.0 JSON, the CISA KEV "
            "catalog (known_exploited_vulnerabilities.json) or an embedded_components.csv table.",
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Dataset to update (default: $IOTRATE_VULN_DIR, else the one shipped with "
            "iotrate). An empty DIR is first seeded with the shipped dataset.",
        ),
    ] = None,
) -> None:
    """Merge vulnerability records into the dataset, without any network access."""
    target = data_dir or vulndb.data_dir()
    try:
        seeded = vulndb.seed_directory(target) if data_dir is not None else False
        if not os.access(target, os.W_OK):
            raise RuntimeFailure(
                f"{target} is not writable; pass --data-dir DIR and set IOTRATE_VULN_DIR=DIR"
            )
        report = vulndb.update_dataset(files, target)
    except IotrateError as exc:
        fail(exc)
    except OSError as exc:
        fail(RuntimeFailure(f"cannot update the dataset in {target}: {exc}"))
    if seeded:
        _out.print(f"seeded {target} with the shipped dataset")
    added, updated = sorted(set(report.added)), sorted(set(report.updated) - set(report.added))
    _out.print(
        f"dataset {target}: read {report.files} files; {len(added)} CVEs added, "
        f"{len(updated)} updated, {len(set(report.removed))} removed"
    )
    if report.kev_entries is not None:
        _out.print(f"CISA KEV catalog {report.kev_version}: {report.kev_entries} entries")
    for line in report.skipped:
        _out.print(f"skipped {line}")


@db_app.command("info")
def info_cmd(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", metavar="DIR", help="Dataset to describe.")
    ] = None,
) -> None:
    """What the dataset holds: components, CVEs, KEV catalog version, last refresh."""
    try:
        db = vulndb.load(data_dir)
    except IotrateError as exc:
        fail(exc)
    total = sum(len({r.cve_id for r in rows}) for rows in db.cves.values())
    _out.print(f"dataset {data_dir or vulndb.data_dir()}")
    _out.print(
        f"{total} CVEs over {len(db.cves)} components; KEV catalog "
        f"{db.meta.get('kev_catalog_version', 'none')} ({len(db.kev)} entries); "
        f"last refresh {db.meta.get('updated', 'unknown')}"
    )
    for comp in db.components.values():
        if not comp.tracked:
            continue
        ids = {r.cve_id for r in db.cves.get(comp.id, [])}
        kev = sum(1 for i in ids if i in db.kev)
        latest = f", newest known {comp.latest}" if comp.latest else ""
        _out.print(f"  {comp.id}: {len(ids)} CVEs ({kev} known exploited){latest}")
