"""Schema 1: scans, devices and what was found on each, as ``iotrate scan`` records them.

The same tables the hand-rolled SQLite migrations made (``schema_version`` 1); a database
made by them is stamped with this revision instead of being migrated again.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _scan_fk() -> sa.Column[str]:
    return sa.Column(
        "scan_id", sa.Text, sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False
    )


def _device_fk() -> sa.Column[int]:
    return sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("targets_key", sa.Text, nullable=False),
        sa.Column("targets_json", sa.Text, nullable=False),
        sa.Column("tool_version", sa.Text, nullable=False),
        sa.Column("discovery_mode", sa.Text),
        sa.Column("errors_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("result_json", sa.Text),
        sa.CheckConstraint("status IN ('running', 'complete', 'interrupted')", name="scans_status"),
    )
    op.create_index("scans_started", "scans", ["started_at"])
    op.create_index("scans_targets", "scans", ["targets_key", "started_at"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True),
        _scan_fk(),
        sa.Column("device_key", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("mac", sa.Text),
        sa.Column("vendor", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("category", sa.Text),
        sa.Column("firmware", sa.Text),
        sa.Column("names_json", sa.Text, nullable=False),
        sa.Column("device_json", sa.Text, nullable=False),
        sa.Column("stored_at", sa.Text, nullable=False),
        sa.UniqueConstraint("scan_id", "address", name="devices_scan_address"),
    )
    op.create_index("devices_key", "devices", ["device_key"])
    op.create_table(
        "services",
        _scan_fk(),
        _device_fk(),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("transport", sa.Text, nullable=False),
        sa.Column("protocol", sa.Text),
        sa.Column("banner", sa.Text),
        sa.Column("tls", sa.Integer),
        sa.Column("product", sa.Text),
        sa.Column("version", sa.Text),
    )
    op.create_table(
        "observations",
        _scan_fk(),
        _device_fk(),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
    )
    op.create_table(
        "findings",
        _scan_fk(),
        _device_fk(),
        sa.Column("check_id", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("port", sa.Integer),
        sa.Column("probe", sa.Text),
        sa.Column("confidence", sa.Text, nullable=False),
        sa.Column("finding_json", sa.Text, nullable=False),
    )
    op.create_table(
        "outcomes",
        _scan_fk(),
        _device_fk(),
        sa.Column("probe", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("port", sa.Integer),
        sa.Column("transport", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("duration_s", sa.Float),
        sa.Column("attempts", sa.Integer),
    )
    op.create_table(
        "ratings",
        _scan_fk(),
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("grade", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("scheme_id", sa.Text),
        sa.Column("scheme_version", sa.Text),
        sa.Column("coverage", sa.Float),
        sa.Column("rating_json", sa.Text, nullable=False),
    )
    for table in ("services", "observations", "findings", "outcomes"):
        op.create_index(f"{table}_device", table, ["device_id"])


def downgrade() -> None:
    for table in ("ratings", "outcomes", "findings", "observations", "services", "devices"):
        op.drop_table(table)
    op.drop_table("scans")
