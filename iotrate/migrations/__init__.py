"""Alembic migrations of the history schema, shared by the local SQLite store and PostgreSQL.

They run from :class:`iotrate.storage.Store` when a database is opened (no ``alembic.ini``);
revision ``NNNN`` is schema version N. Never edit a released revision: add the next one.
"""
