"""The history schema at head, as the queries see it: the tables, the version numbers the
migrations are checked against, and how values are written into the columns.

The migrations (``iotrate/migrations``) build the schema; this module describes it, and Alembic's
environment compares the two.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

from iotrate.models import Target

#: The schema this iotrate writes: the number of the newest Alembic revision (``0005``).
SCHEMA_VERSION = 5
#: The revision a pre-Alembic database with ``schema_version`` N already has.
LEGACY_REVISIONS = ("0001", "0002")
#: The value the old counter is set to once Alembic manages the database: higher than any
#: hand-rolled migration count, so older iotrate releases refuse it as "newer".
LEGACY_PARKED = 1000
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# -- the schema at head (the migrations build it; this describes it for the queries) --------

metadata = MetaData()


def _scan_fk() -> Column[str]:
    return Column("scan_id", Text, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False)


def _scan_of_device() -> Column[str]:
    """A child row's scan: kept for queries; the device's own key already ties them."""
    return Column("scan_id", Text, nullable=False)


def _device_of_child() -> Column[int]:
    """A child row's device. No foreign key (migration 0005): the store writes a device's
    children in the device's own transaction and deletes them with it
    (:meth:`.writer.ScanWriter._drop`), and the per-row check cost the collector half of its
    database time."""
    return Column("device_id", Integer, nullable=False)


scans = Table(
    "scans",
    metadata,
    Column("id", Text, primary_key=True),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("status", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("targets_key", Text, nullable=False),
    Column("targets_json", Text, nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("discovery_mode", Text),
    Column("errors_json", Text, nullable=False, server_default="[]"),
    Column("result_json", Text),
    Column("options_json", Text),
    Column("site", Text, nullable=False, server_default="local"),
    Column("owner", Text),
    Column("agent_id", Text),
    CheckConstraint("status IN ('running', 'complete', 'interrupted')", name="scans_status"),
    Index("scans_started", "started_at"),
    Index("scans_targets", "targets_key", "started_at"),
    Index("scans_unfinished", "status", "targets_key", "started_at"),
    Index("scans_site", "site", "started_at"),
)
devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    _scan_fk(),
    Column("device_key", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("mac", Text),
    Column("vendor", Text),
    Column("model", Text),
    Column("category", Text),
    Column("firmware", Text),
    Column("names_json", Text, nullable=False),
    Column("device_json", Text, nullable=False),
    Column("stored_at", Text, nullable=False),
    # The idempotency key of a device within a scan: writing it again replaces it.
    UniqueConstraint("scan_id", "address", name="devices_scan_address"),
    Index("devices_key", "device_key"),
)
services = Table(
    "services",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("port", Integer, nullable=False),
    Column("transport", Text, nullable=False),
    Column("protocol", Text),
    Column("banner", Text),
    Column("tls", Integer),
    Column("product", Text),
    Column("version", Text),
    Index("services_device", "device_id"),
)
observations = Table(
    "observations",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("source", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("weight", Float, nullable=False),
    Index("observations_device", "device_id"),
)
findings = Table(
    "findings",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("check_id", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("port", Integer),
    Column("probe", Text),
    Column("confidence", Text, nullable=False),
    Column("finding_json", Text, nullable=False),
    Index("findings_device", "device_id"),
)
outcomes = Table(
    "outcomes",
    metadata,
    _scan_of_device(),
    _device_of_child(),
    Column("probe", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("port", Integer),
    Column("transport", Text),
    Column("reason", Text),
    Column("duration_s", Float),
    Column("attempts", Integer),
    Index("outcomes_device", "device_id"),
)
ratings = Table(
    "ratings",
    metadata,
    _scan_of_device(),
    Column("device_id", Integer, primary_key=True, autoincrement=False),
    Column("grade", Text),
    Column("score", Float),
    Column("scheme_id", Text),
    Column("scheme_version", Text),
    Column("coverage", Float),
    Column("rating_json", Text, nullable=False),
)


def targets_key(targets: list[Target]) -> str:
    """Scans of the same targets, in whatever order they were typed, compare with each other."""
    return " ".join(sorted(t.spec for t in targets))


def targets_json(targets: Sequence[Target]) -> str:
    return json.dumps([t.model_dump(mode="json") for t in targets])


def utc_text(value: datetime) -> str:
    """ISO text in UTC, so results from agents in other timezones still sort in time order."""
    return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
