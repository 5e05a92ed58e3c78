"""Fleet mode: agents on many networks publish scan results to an MQTT broker; a collector
stores them in one database (PostgreSQL, or SQLite) through :class:`iotrate.storage.Store`.

iotrate does not run its own distributed system: the broker carries and queues messages, the
database keeps them. What iotrate adds is a spool that holds every message until the broker
has acknowledged it, a versioned message schema, and writes that are idempotent, so the
broker's at-least-once delivery never turns into duplicate rows. See ``docs/fleet.md``.
"""
