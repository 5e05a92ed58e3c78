"""Schema 4: the child tables' ``scan_id`` no longer has a foreign key of its own.

Services, observations, findings, outcomes and ratings hang off their device, which hangs off
its scan: deleting a scan still deletes everything below it, through ``device_id``. The direct
reference to the scan was redundant and doubled the foreign-key work of every row, which is
most of what a PostgreSQL collector spends per device (a device has some fifty such rows).
The column stays, for queries by scan.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHILDREN = ("services", "observations", "findings", "outcomes", "ratings")


def _tables_before() -> dict[str, sa.Table]:
    """The child tables as revision 0003 left them, with their constraints named, for
    SQLite's rebuild (its own constraints have no names, and reflecting them loses ON DELETE)."""
    meta = sa.MetaData()

    def keys(name: str, device_pk: bool = False) -> list[sa.Column[Any] | sa.Constraint]:
        return [
            sa.Column("scan_id", sa.Text, nullable=False),
            sa.Column("device_id", sa.Integer, nullable=False,
                      primary_key=device_pk, autoincrement=False),
            sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], ondelete="CASCADE",
                                    name=f"{name}_scan_id_fkey"),
            sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                    name=f"{name}_device_id_fkey"),
        ]  # fmt: skip

    text, num, integer = sa.Text, sa.Float, sa.Integer
    return {
        "services": sa.Table(
            "services", meta, *keys("services"),
            sa.Column("port", integer, nullable=False),
            sa.Column("transport", text, nullable=False),
            sa.Column("protocol", text), sa.Column("banner", text), sa.Column("tls", integer),
            sa.Column("product", text), sa.Column("version", text),
        ),
        "observations": sa.Table(
            "observations", meta, *keys("observations"),
            sa.Column("source", text, nullable=False), sa.Column("field", text, nullable=False),
            sa.Column("value", text, nullable=False), sa.Column("rule", text, nullable=False),
            sa.Column("weight", num, nullable=False),
        ),
        "findings": sa.Table(
            "findings", meta, *keys("findings"),
            sa.Column("check_id", text, nullable=False),
            sa.Column("severity", text, nullable=False),
            sa.Column("title", text, nullable=False), sa.Column("port", integer),
            sa.Column("probe", text), sa.Column("confidence", text, nullable=False),
            sa.Column("finding_json", text, nullable=False),
        ),
        "outcomes": sa.Table(
            "outcomes", meta, *keys("outcomes"),
            sa.Column("probe", text, nullable=False), sa.Column("status", text, nullable=False),
            sa.Column("port", integer), sa.Column("transport", text), sa.Column("reason", text),
            sa.Column("duration_s", num), sa.Column("attempts", integer),
        ),
        "ratings": sa.Table(
            "ratings", meta, *keys("ratings", device_pk=True),
            sa.Column("grade", text), sa.Column("score", num), sa.Column("scheme_id", text),
            sa.Column("scheme_version", text), sa.Column("coverage", num),
            sa.Column("rating_json", text, nullable=False),
        ),
    }  # fmt: skip


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a constraint: each table is rebuilt from the definition above,
        # its rows copied, its index made again.
        for name, table in _tables_before().items():
            with op.batch_alter_table(name, copy_from=table, recreate="always") as batch:
                batch.drop_constraint(f"{name}_scan_id_fkey", type_="foreignkey")
            if name != "ratings":
                op.create_index(f"{name}_device", name, ["device_id"])
        return
    for name in CHILDREN:
        op.drop_constraint(f"{name}_scan_id_fkey", name, type_="foreignkey")


def downgrade() -> None:
    for table in CHILDREN:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"{table}_scan_id_fkey", "scans", ["scan_id"], ["id"], ondelete="CASCADE"
            )
