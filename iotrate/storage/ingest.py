"""Fleet ingestion (the collector): scans that agents send as start, device and end messages.

Each write is idempotent, so a message the broker delivers twice changes nothing the second
time; a scan belongs to the site and agent that started it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from iotrate.errors import IotrateError
from iotrate.models import Device, ScanResult, Target, utcnow

from .records import ScanStatus
from .schema import devices, scans, targets_json, targets_key, utc_text
from .writer import ScanWriter


class ForeignScan(IotrateError):
    """A fleet message about a scan that another site or agent owns: never merged into it."""


class FleetIngest(ScanWriter):
    """The collector's writes: the scan writer's device rows, claimed per site and agent."""

    def _claim(
        self, c: Connection, scan_id: str, site: str, agent_id: str | None
    ) -> Row[Any, Any, Any] | None:
        row = self._scan_row(c, scan_id)
        if row is not None and (
            row.site != site or (row.agent_id is not None and row.agent_id != agent_id)
        ):
            raise ForeignScan(
                f"scan {scan_id} belongs to site {row.site!r}, not {site!r} (agent {agent_id})"
            )
        return row

    def ingest_start(
        self,
        *,
        scan_id: str,
        site: str,
        agent_id: str,
        started_at: datetime,
        targets: list[Target],
        policy: str,
        tool_version: str,
        options: Mapping[str, Any] | None = None,
    ) -> bool:
        """A fleet scan's start: its row, or the row a device message made before it filled
        in. A scan that has already ended is left alone; returns whether anything changed."""
        with self._tx() as c:
            row = self._claim(c, scan_id, site, agent_id)
            if row is None:
                self._placeholder(c, scan_id, started_at, site, agent_id)
            elif row.status != "running":
                return False
            c.execute(
                update(scans)
                .where(scans.c.id == scan_id)
                .values(
                    started_at=utc_text(started_at),
                    policy=policy,
                    targets_key=targets_key(targets),
                    targets_json=targets_json(targets),
                    tool_version=tool_version,
                    options_json=None
                    if options is None
                    else json.dumps(dict(options), sort_keys=True),
                    agent_id=agent_id,
                )
            )
            return True

    def ingest_devices(
        self,
        scan_id: str,
        devs: Sequence[Device],
        *,
        site: str,
        agent_id: str,
        received_at: datetime,
    ) -> bool:
        """Devices of a running fleet scan, each replacing its earlier version. Ignored once
        the scan's end is stored: its final devices win over a late or redelivered one."""
        with self._tx() as c:
            row = self._claim(c, scan_id, site, agent_id)
            if row is None:
                self._placeholder(c, scan_id, received_at, site, agent_id)
            elif row.status != "running":
                return False
            self._insert_devices(c, scan_id, devs)
            return True

    def ingest_end(
        self,
        result: ScanResult,
        status: ScanStatus,
        *,
        site: str,
        agent_id: str,
        addresses: Sequence[str] | None,
    ) -> None:
        """A fleet scan's end: its status and everything the result says besides its devices.
        The devices are the rows the device messages stored (the agent re-sends any the end
        of the scan changed), less those not in ``addresses`` (None: keep them all); the
        result is rebuilt from them when loaded, so an end message stays small however large
        the network."""
        with self._tx() as c:
            if self._claim(c, result.scan_id, site, agent_id) is None:
                self._placeholder(c, result.scan_id, result.started_at, site, agent_id, result)
            if addresses is not None:
                keep = set(addresses)
                stored = c.execute(
                    select(devices.c.address).where(devices.c.scan_id == result.scan_id)
                ).scalars()
                self._drop(c, result.scan_id, [a for a in stored if a not in keep])
            c.execute(
                update(scans)
                .where(scans.c.id == result.scan_id)
                .values(
                    status=status,
                    finished_at=utc_text(result.finished_at or utcnow()),
                    discovery_mode=result.discovery_mode,
                    errors_json=json.dumps(result.errors),
                    result_json=None,
                    started_at=utc_text(result.started_at),
                    policy=result.policy,
                    targets_key=targets_key(result.targets),
                    targets_json=targets_json(result.targets),
                    tool_version=result.tool.version,
                )
            )
