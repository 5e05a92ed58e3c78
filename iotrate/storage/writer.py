"""Writing a scan as it goes: its row first (status ``running``), then each device in its own
transaction the moment its pipeline is done, then the final result. A scan stopped by Ctrl-C,
a crash or ``kill -9`` keeps every device it had finished.

Everything a device said reaches SQL only as a bound parameter (or a COPY row): the scanner
talks to hostile software and must not let it write the queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, delete, insert, select, text, update

from iotrate.models import Device, ScanResult, Target, ToolInfo, utcnow

from .db import Database
from .records import ScanStatus, address_order
from .schema import (
    devices,
    findings,
    observations,
    outcomes,
    ratings,
    scans,
    services,
    targets_json,
    targets_key,
    utc_text,
)


def _no_nul(row: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL text cannot hold NUL, which a device may well send: written as ``\\x00``,
    the way banners show control bytes (the exact JSON keeps the original, escaped)."""
    return {
        k: v.replace("\x00", "\\x00") if isinstance(v, str) and "\x00" in v else v
        for k, v in row.items()
    }


def _no_nul_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        v.replace("\x00", "\\x00") if isinstance(v, str) and "\x00" in v else v for v in row
    )


# The columns of the bulk-written tables, in the order their rows are built.
_CHILD_COLUMNS: dict[Table, tuple[str, ...]] = {
    devices: ("id", "scan_id", "device_key", "address", "mac", "vendor", "model", "category",
              "firmware", "names_json", "device_json", "stored_at"),
    services: ("scan_id", "device_id", "port", "transport", "protocol", "banner", "tls",
               "product", "version"),
    observations: ("scan_id", "device_id", "source", "field", "value", "rule", "weight"),
    findings: ("scan_id", "device_id", "check_id", "severity", "title", "port", "probe",
               "confidence", "finding_json"),
    outcomes: ("scan_id", "device_id", "probe", "status", "port", "transport", "reason",
               "duration_s", "attempts"),
    ratings: ("scan_id", "device_id", "grade", "score", "scheme_id", "scheme_version",
              "coverage", "rating_json"),
}  # fmt: skip


def _child_rows(scan_id: str, dev_id: int, d: Device) -> dict[Table, list[tuple[Any, ...]]]:
    """A device's rows in the child tables, as tuples in :data:`_CHILD_COLUMNS` order.
    ``str()`` of a StrEnum member is its value, without the enum machinery's cost."""
    r = d.rating
    return {
        services: [
            (scan_id, dev_id, s.port, str(s.transport), s.protocol, s.banner,
             None if s.tls is None else int(s.tls), s.product, s.version)
            for s in d.services
        ],
        observations: [
            (scan_id, dev_id, e.source, e.field, e.value, e.rule, e.weight)
            for e in (d.identity.evidence if d.identity is not None else [])
        ],
        findings: [
            (scan_id, dev_id, f.check, str(f.severity), f.title, f.port, f.probe,
             str(f.confidence), f.model_dump_json())
            for f in d.findings
        ],
        outcomes: [
            (scan_id, dev_id, o.probe, str(o.status), o.port,
             None if o.transport is None else str(o.transport), o.reason, o.duration_s,
             o.attempts)
            for o in d.outcomes
        ],
        ratings: []
        if r is None
        else [
            (scan_id, dev_id, r.grade, r.score, r.scheme_id, r.scheme_version,
             None if r.coverage is None else r.coverage.fraction, r.model_dump_json())
        ],
    }  # fmt: skip


class ScanWriter(Database):
    """A scan's rows, written as the scan runs; the device rows are shared with the fleet
    ingest, which writes what agents send the same way."""

    def begin_scan(
        self,
        scan_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        *,
        options: Mapping[str, Any] | None = None,
        site: str = "local",
        owner: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """The scan's row, before the first packet, so even a scan killed early is listed.

        ``options`` is what a later ``--resume`` needs to run the rest the same way; ``owner``
        names the process writing the scan, so a resume can tell a dead writer from a live one.
        """
        with self._tx() as c:
            c.execute(
                insert(scans),
                {
                    "id": scan_id,
                    "started_at": utc_text(started_at),
                    "status": "running",
                    "policy": policy,
                    "targets_key": targets_key(targets),
                    "targets_json": targets_json(targets),
                    "tool_version": ToolInfo().version,
                    "options_json": None
                    if options is None
                    else json.dumps(dict(options), sort_keys=True),
                    "site": site,
                    "owner": owner,
                    "agent_id": agent_id,
                },
            )

    def reopen_scan(self, scan_id: str, owner: str, expected_owner: str | None) -> bool:
        """Take over an unfinished scan for ``--resume``: back to ``running``, written by
        ``owner``, its provisional result dropped so a second interruption rebuilds it from
        the device rows. Compare-and-set on the previous owner, so of two resumes started at
        once only one wins; returns whether this one did."""
        with self._tx() as c:
            cur = c.execute(
                update(scans)
                .where(
                    scans.c.id == scan_id,
                    scans.c.status != "complete",
                    scans.c.owner.is_not_distinct_from(expected_owner),
                )
                .values(status="running", owner=owner, finished_at=None, result_json=None)
            )
            return cur.rowcount == 1

    def record_device(self, scan_id: str, device: Device) -> None:
        """One device, committed on its own: what is stored stays stored if the scan dies."""
        with self._tx() as c:
            self._insert_devices(c, scan_id, [device])

    def finish_scan(self, result: ScanResult, status: ScanStatus = "complete") -> None:
        """Replace the provisional device rows with the final (correlated, rated) ones and keep
        the whole result, in one transaction so a reader never sees half of each."""
        with self._tx() as c:
            if self._scan_row(c, result.scan_id) is None:
                self._placeholder(c, result.scan_id, result.started_at, "local", None, result)
            self._finish(c, result, status)

    def _finish(self, c: Connection, result: ScanResult, status: ScanStatus) -> None:
        final = {d.address: d for d in result.devices}
        stored = {
            r.address: r.device_json
            for r in c.execute(
                select(devices.c.address, devices.c.device_json).where(
                    devices.c.scan_id == result.scan_id
                )
            )
        }
        # A provisional row that already says exactly what the final result says stays:
        # most devices come out of correlation and rating unchanged, and rewriting them
        # would double the work of every scan.
        self._drop(c, result.scan_id, [a for a in stored if a not in final])
        changed = [d for a, d in final.items() if stored.get(a) != d.model_dump_json()]
        self._insert_devices(c, result.scan_id, changed)
        c.execute(
            update(scans)
            .where(scans.c.id == result.scan_id)
            .values(
                status=status,
                finished_at=utc_text(result.finished_at or utcnow()),
                discovery_mode=result.discovery_mode,
                errors_json=json.dumps(result.errors),
                result_json=result.model_dump_json(),
            )
        )

    def _scan_row(self, c: Connection, scan_id: str) -> Row[Any, Any, Any] | None:
        return c.execute(
            select(scans.c.site, scans.c.agent_id, scans.c.status).where(scans.c.id == scan_id)
        ).first()

    def _placeholder(
        self,
        c: Connection,
        scan_id: str,
        started_at: datetime,
        site: str,
        agent_id: str | None,
        result: ScanResult | None = None,
    ) -> None:
        """A scan row for writes that arrive without its start (a finish without begin, or a
        fleet device message that overtook its scan's start message)."""
        c.execute(
            insert(scans),
            {
                "id": scan_id,
                "started_at": utc_text(started_at),
                "status": "running",
                "policy": result.policy if result else "unknown",
                "targets_key": targets_key(result.targets) if result else "",
                "targets_json": targets_json(result.targets if result else []),
                "tool_version": result.tool.version if result else "unknown",
                "site": site,
                "agent_id": agent_id,
            },
        )

    def _drop(self, c: Connection, scan_id: str, addresses: Sequence[str]) -> None:
        """Delete devices of a scan by address, and their rows in the child tables, which no
        foreign key ties to them any more (migration 0005). One statement when none of them
        was stored yet, as for every device a collector receives once."""
        for i in range(0, len(addresses), 500):
            ids = list(
                c.execute(
                    delete(devices)
                    .where(
                        devices.c.scan_id == scan_id,
                        devices.c.address.in_(addresses[i : i + 500]),
                    )
                    .returning(devices.c.id)
                ).scalars()
            )
            if ids:
                for table in _CHILD_COLUMNS:
                    if table is not devices:
                        c.execute(delete(table).where(table.c.device_id.in_(ids)))

    def _insert_devices(self, c: Connection, scan_id: str, devs: Sequence[Device]) -> None:
        """Devices of one scan, each replacing any row of the same address (the scan's device
        key) and its child rows; a few statements per call, not per row."""
        latest = {d.address: d for d in devs}
        if not latest:
            return
        self._drop(c, scan_id, list(latest))
        now = utc_text(utcnow())
        jsons = {a: d.model_dump_json() for a, d in latest.items()}
        rows = [
            {
                "scan_id": scan_id,
                "device_key": d.id,
                "address": d.address,
                "mac": d.mac,
                "vendor": d.vendor,
                "model": d.model,
                "category": d.category,
                "firmware": d.firmware,
                "names_json": json.dumps(d.names),
                "device_json": jsons[d.address],
                "stored_at": now,
            }
            for d in latest.values()
        ]
        # A NUL anywhere in a device shows in its JSON as \u0000; only then is every value
        # of its rows looked at (see _no_nul).
        nul = {a for a, j in jsons.items() if "\\u0000" in j}
        rows = [_no_nul(r) if r["address"] in nul else r for r in rows]
        if self.dialect == "postgresql":
            # Ids drawn from the table's own sequence first, so the rows can go by COPY.
            ids = list(
                c.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('devices', 'id'))"
                        " FROM generate_series(1, :n)"
                    ),
                    {"n": len(rows)},
                ).scalars()
            )
            self._bulk_insert(
                c,
                devices,
                [
                    (dev_id, *(r[k] for k in _CHILD_COLUMNS[devices][1:]))
                    for dev_id, r in zip(ids, rows, strict=True)
                ],
            )
        else:
            ids = [
                r[0]
                for r in c.execute(
                    insert(devices).returning(devices.c.id, sort_by_parameter_order=True), rows
                )
            ]
        children: dict[Table, list[tuple[Any, ...]]] = {
            t: [] for t in _CHILD_COLUMNS if t is not devices
        }
        for dev_id, d in zip(ids, latest.values(), strict=True):
            rows_of = _child_rows(scan_id, dev_id, d)
            if d.address in nul:
                rows_of = {t: [_no_nul_row(r) for r in rs] for t, rs in rows_of.items()}
            for table, rs in rows_of.items():
                children[table] += rs
        for table, params in children.items():
            if params:
                self._bulk_insert(c, table, params)

    def _bulk_insert(self, c: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Many rows at once: COPY on PostgreSQL (a device has dozens of findings, outcomes
        and observations; one INSERT per row would cap the collector far below its target),
        an executemany elsewhere. Values travel as data in both, never as SQL text; table and
        column names are the schema's own."""
        columns = _CHILD_COLUMNS[table]
        if self.dialect != "postgresql":
            c.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
            return
        names = ", ".join(columns)
        cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()


class Recorder:
    """Records one scan while it runs: the glue between ``run_scan``'s ``on_device`` hook and
    a :class:`~iotrate.storage.Store` (or none, with ``--no-history``, when it still keeps the
    finished devices in memory so an interrupted scan can print what it has)."""

    def __init__(
        self,
        store: ScanWriter | None,
        scan_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        prepare: Callable[[Device], Device] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        site: str = "local",
        owner: str | None = None,
        resumed: Sequence[Device] | None = None,
    ) -> None:
        """``resumed``: the devices a resumed scan already has; its row exists (reopened by
        :meth:`ScanWriter.reopen_scan`), so none is begun, and the partial result keeps them."""
        self.store = store
        self.scan_id = scan_id
        self.started_at = started_at
        self.targets = targets
        self.policy = policy
        self.prepare = prepare
        self.devices: list[Device] = list(resumed or ())
        if store is not None and resumed is None:
            store.begin_scan(
                scan_id, started_at, targets, policy, options=options, site=site, owner=owner
            )

    def __call__(self, device: Device) -> None:
        if self.prepare is not None:
            device = self.prepare(device)
        self.devices.append(device)
        if self.store is not None:
            self.store.record_device(self.scan_id, device)

    def finish(self, result: ScanResult) -> None:
        if self.store is not None:
            self.store.finish_scan(result, "complete")

    def partial(self) -> ScanResult:
        """The result so far: the devices finished before the scan was stopped."""
        return ScanResult(
            scan_id=self.scan_id,
            started_at=self.started_at,
            finished_at=utcnow(),
            policy=self.policy,
            targets=self.targets,
            devices=sorted(self.devices, key=lambda d: address_order(d.address)),
            errors=["scan interrupted: devices still in progress were not stored"],
        )

    def interrupt(self) -> ScanResult:
        """The partial result, stored with status interrupted."""
        result = self.partial()
        if self.store is not None:
            self.store.finish_scan(result, "interrupted")
        return result
