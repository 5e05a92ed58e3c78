"""Schema 5: the child tables' ``device_id`` no longer has a foreign key either.

Services, observations, findings, outcomes and ratings are only ever written by the store,
together with their device and in the same transaction, and the store deletes them itself
(by device id) whenever it deletes or replaces a device. The per-row reference check was
then pure cost: some fifty checks per device, half of what a PostgreSQL collector's database
spent per device. The column and its index stay.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHILDREN = ("services", "observations", "findings", "outcomes", "ratings")


def _tables_before() -> dict[str, sa.Table]:
    """The child tables as revision 0004 left them, with the device's key named, for
    SQLite's rebuild (its own constraints have no names, and reflecting them loses ON DELETE)."""
    meta = sa.MetaData()

    def keys(name: str, device_pk: bool = False) -> list[sa.Column[Any] | sa.Constraint]:
        return [
            sa.Column("scan_id", sa.Text, nullable=False),
            sa.Column("device_id", sa.Integer, nullable=False,
                      primary_key=device_pk, autoincrement=False),
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
                batch.drop_constraint(f"{name}_device_id_fkey", type_="foreignkey")
            if name != "ratings":
                op.create_index(f"{name}_device", name, ["device_id"])
        return
    for name in CHILDREN:
        op.drop_constraint(f"{name}_device_id_fkey", name, type_="foreignkey")


def downgrade() -> None:
    for table in CHILDREN:
        # Rows of devices deleted by hand in the meantime would fail the new key.
        child = sa.table(table, sa.column("device_id"))
        parent = sa.table("devices", sa.column("id"))
        op.execute(sa.delete(child).where(child.c.device_id.not_in(sa.select(parent.c.id))))
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"{table}_device_id_fkey", "devices", ["device_id"], ["id"], ondelete="CASCADE"
            )
