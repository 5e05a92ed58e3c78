"""Schema 2: what ``iotrate scan --resume`` needs, and the site a scan belongs to.

The same columns the hand-rolled SQLite migration 2 added; a database made by it is stamped.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The options as the CLI recorded them (JSON, interpreted by the CLI, not the store).
    op.add_column("scans", sa.Column("options_json", sa.Text))
    # Which site (fleet mode) the scan belongs to; a single-user database is all 'local'.
    op.add_column("scans", sa.Column("site", sa.Text, nullable=False, server_default="local"))
    # Which process writes a running scan (opaque token), so a scan left 'running' by a
    # killed process can be told from one still in progress.
    op.add_column("scans", sa.Column("owner", sa.Text))
    op.create_index("scans_unfinished", "scans", ["status", "targets_key", "started_at"])


def downgrade() -> None:
    op.drop_index("scans_unfinished", "scans")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("owner")
        batch.drop_column("site")
        batch.drop_column("options_json")
