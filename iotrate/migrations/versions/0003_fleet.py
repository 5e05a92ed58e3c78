"""Schema 3: fleet mode — which agent sent a scan, and sites listed without a full scan.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The agent that ran the scan (its id from the message envelope); NULL for local scans.
    op.add_column("scans", sa.Column("agent_id", sa.Text))
    # The dashboard lists scans per site, newest first.
    op.create_index("scans_site", "scans", ["site", "started_at"])
    if op.get_bind().dialect.name == "postgresql":
        # The JSON columns hold tens of kB per device; PostgreSQL's default compression
        # (pglz) costs the collector more CPU than all the rest of a write. lz4 is built into
        # PostgreSQL 14+ as packaged by Debian and Ubuntu.
        for table, column in (
            ("devices", "device_json"),
            ("findings", "finding_json"),
            ("ratings", "rating_json"),
            ("scans", "result_json"),
        ):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_index("scans_site", "scans")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("agent_id")
