"""Alembic's environment: migrate the connection the store hands over, in its transaction.

The store opens the connection, takes the migration lock and begins the transaction, so a
migration is all or nothing and two processes opening a fresh database never race. For writing
a new revision by hand, ``alembic -x url=sqlite:///scratch.db ...`` also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from iotrate.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///path.db ...")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
