"""Reading the history back: the scan list, one scan's result, a device's grade over time,
and the brief device rows the dashboard lists by the thousand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select

from iotrate.errors import UsageError
from iotrate.models import Device, ScanResult, Target, ToolInfo

from .db import Database
from .records import (
    DeviceBrief,
    DeviceRecord,
    ScanRecord,
    ScanStatus,
    ScanSummary,
    address_order,
)
from .schema import devices, findings, parse_time, ratings, scans


class HistoryQueries(Database):
    """The read side of the store: what ``iotrate history``, ``diff``, ``--resume`` and the
    dashboard ask."""

    def scans(self) -> list[ScanSummary]:
        """Every stored scan, oldest first, with a count of devices per grade."""
        rows = self._query(
            select(
                scans.c.id,
                scans.c.started_at,
                scans.c.finished_at,
                scans.c.status,
                scans.c.policy,
                scans.c.targets_json,
                scans.c.site,
                func.count(devices.c.id).label("devices"),
            )
            .select_from(scans.outerjoin(devices, devices.c.scan_id == scans.c.id))
            .group_by(scans.c.id)
            .order_by(scans.c.started_at, scans.c.id)
        )
        grade = func.coalesce(ratings.c.grade, "?")
        grades: dict[str, dict[str, int]] = {}
        for g in self._query(
            select(devices.c.scan_id, grade.label("grade"), func.count().label("n"))
            .select_from(devices.outerjoin(ratings, ratings.c.device_id == devices.c.id))
            .group_by(devices.c.scan_id, grade)
        ):
            grades.setdefault(g["scan_id"], {})[g["grade"]] = g["n"]
        return [
            ScanSummary(
                scan_id=r["id"],
                started_at=datetime.fromisoformat(r["started_at"]),
                finished_at=parse_time(r["finished_at"]),
                status=r["status"],
                policy=r["policy"],
                targets=[t["spec"] for t in json.loads(r["targets_json"])],
                devices=r["devices"],
                grades=dict(sorted(grades.get(r["id"], {}).items())),
                site=r["site"],
            )
            for r in rows
        ]

    def unfinished_scans(self, key: str | None = None) -> list[str]:
        """Scans left ``running`` or ``interrupted``, newest first, optionally only those of
        one :func:`~.schema.targets_key`: the candidates for ``iotrate scan --resume``."""
        stmt = select(scans.c.id).where(scans.c.status.in_(("running", "interrupted")))
        if key is not None:
            stmt = stmt.where(scans.c.targets_key == key)
        rows = self._query(stmt.order_by(scans.c.started_at.desc(), scans.c.id.desc()))
        return [str(r["id"]) for r in rows]

    def scan_record(self, scan_id: str) -> ScanRecord:
        """The scan's own row (no devices) with its JSON columns decoded."""
        scan_id = self.resolve(scan_id)
        (row,) = self._query(select(scans).where(scans.c.id == scan_id))
        return ScanRecord(
            scan_id=row["id"],
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=parse_time(row["finished_at"]),
            status=row["status"],
            policy=row["policy"],
            targets_key=row["targets_key"],
            targets=[Target.model_validate(t) for t in json.loads(row["targets_json"])],
            options=None if row["options_json"] is None else json.loads(row["options_json"]),
            site=row["site"],
            owner=row["owner"],
            errors=json.loads(row["errors_json"]),
            agent_id=row["agent_id"],
        )

    def stored_addresses(self, scan_id: str) -> set[str]:
        """Addresses whose device is committed in this scan: what a resume must not redo."""
        rows = self._query(select(devices.c.address).where(devices.c.scan_id == scan_id))
        return {str(r["address"]) for r in rows}

    def load_devices(self, scan_id: str) -> list[Device]:
        """The committed devices of a scan, in the order they were stored."""
        return [
            Device.model_validate_json(d["device_json"])
            for d in self._query(
                select(devices.c.device_json)
                .where(devices.c.scan_id == scan_id)
                .order_by(devices.c.id)
            )
        ]

    def resolve(self, ref: str) -> str:
        """A full scan id or a unique prefix of one (as ``iotrate history`` prints them),
        in any letter case."""
        escaped = ref.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            select(scans.c.id)
            .where((scans.c.id == ref) | func.lower(scans.c.id).like(escaped + "%", escape="\\"))
            .order_by(scans.c.id)
        )
        ids = [r["id"] for r in rows]
        if ref in ids:
            return ref
        if len(ids) == 1 and ref:
            return str(ids[0])
        if not ids or not ref:
            raise UsageError(f"no stored scan {ref!r} in {self.path} (see 'iotrate history')")
        raise UsageError(f"scan id {ref!r} is ambiguous: it starts {len(ids)} stored scans")

    def load_scan(self, scan_id: str) -> ScanResult:
        """The stored result: the exact JSON of a finished scan, or for a scan that never
        finished (killed), a result rebuilt from the devices it had committed."""
        scan_id = self.resolve(scan_id)
        (row,) = self._query(select(scans).where(scans.c.id == scan_id))
        if row["result_json"]:
            return ScanResult.model_validate_json(row["result_json"])
        # In address order, as a scan's result lists them, whatever order they were stored in.
        devs = sorted(self.load_devices(scan_id), key=lambda d: address_order(d.address))
        return ScanResult(
            tool=ToolInfo(version=row["tool_version"]),
            scan_id=scan_id,
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=parse_time(row["finished_at"]),
            discovery_mode=row["discovery_mode"],
            policy=row["policy"],
            targets=[Target.model_validate(t) for t in json.loads(row["targets_json"])],
            devices=devs,
            errors=json.loads(row["errors_json"]),
        )

    def status(self, scan_id: str) -> ScanStatus:
        rows = self._query(select(scans.c.status).where(scans.c.id == self.resolve(scan_id)))
        status: ScanStatus = rows[0]["status"]
        return status

    def previous_pair(self) -> tuple[str, str]:
        """The latest complete scan and the complete scan of the same targets before it: the
        default 'what changed since last time'. Interrupted scans are left out because their
        missing devices would read as devices gone."""
        rows = self._query(
            select(scans.c.id, scans.c.targets_key)
            .where(scans.c.status == "complete")
            .order_by(scans.c.started_at.desc(), scans.c.id.desc())
        )
        if not rows:
            raise UsageError(f"no complete scan stored in {self.path}")
        latest = rows[0]
        for r in rows[1:]:
            if r["targets_key"] == latest["targets_key"]:
                return str(r["id"]), str(latest["id"])
        raise UsageError(
            f"only one complete scan of {latest['targets_key'] or 'these targets'} is stored; "
            "scan again, or name two scans"
        )

    def device_briefs(self, scan_ids: Sequence[str]) -> list[DeviceBrief]:
        """The devices of these scans, in the order they were stored, without their JSON."""
        out: list[DeviceBrief] = []
        ids = list(dict.fromkeys(scan_ids))
        for i in range(0, len(ids), 200):
            chunk = ids[i : i + 200]
            found: dict[int, list[tuple[str, str]]] = {}
            for device_id, check, severity in self._tuples(
                select(findings.c.device_id, findings.c.check_id, findings.c.severity)
                .select_from(findings.join(devices, devices.c.id == findings.c.device_id))
                .where(devices.c.scan_id.in_(chunk))
            ):
                found.setdefault(device_id, []).append((check, severity))
            for r in self._query(
                select(
                    devices.c.id,
                    devices.c.scan_id,
                    devices.c.device_key,
                    devices.c.address,
                    devices.c.mac,
                    devices.c.vendor,
                    devices.c.model,
                    devices.c.category,
                    devices.c.names_json,
                    ratings.c.grade,
                    ratings.c.score,
                )
                .select_from(devices.outerjoin(ratings, ratings.c.device_id == devices.c.id))
                .where(devices.c.scan_id.in_(chunk))
                .order_by(devices.c.id)
            ):
                out.append(
                    DeviceBrief(
                        scan_id=r["scan_id"],
                        device_key=r["device_key"],
                        address=r["address"],
                        mac=r["mac"],
                        vendor=r["vendor"],
                        model=r["model"],
                        category=r["category"],
                        names=json.loads(r["names_json"]),
                        grade=r["grade"],
                        score=r["score"],
                        findings=found.get(r["id"], []),
                    )
                )
        return out

    def device_history(self, ref: str) -> list[DeviceRecord]:
        """One device's grade over time, found by its key (MAC, else address) or address."""
        n_findings = (
            select(func.count())
            .select_from(findings)
            .where(findings.c.device_id == devices.c.id)
            .scalar_subquery()
        )
        rows = self._query(
            select(
                scans.c.id,
                scans.c.started_at,
                scans.c.status,
                devices.c.device_key,
                devices.c.address,
                ratings.c.grade,
                ratings.c.score,
                n_findings.label("findings"),
            )
            .select_from(
                devices.join(scans, scans.c.id == devices.c.scan_id).outerjoin(
                    ratings, ratings.c.device_id == devices.c.id
                )
            )
            .where((func.lower(devices.c.device_key) == ref.lower()) | (devices.c.address == ref))
            .order_by(scans.c.started_at, scans.c.id)
        )
        return [
            DeviceRecord(
                scan_id=r["id"],
                started_at=datetime.fromisoformat(r["started_at"]),
                status=r["status"],
                device_key=r["device_key"],
                address=r["address"],
                grade=r["grade"],
                score=r["score"],
                findings=r["findings"],
            )
            for r in rows
        ]
