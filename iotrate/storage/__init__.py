"""Scan history: one schema in SQLite (one machine) or PostgreSQL (a fleet's collector).

A scan is recorded as it goes — its row first (status ``running``), then each device in its
own transaction the moment its pipeline is done, then the final result — so a scan stopped by
Ctrl-C, a crash or ``kill -9`` keeps every device it had finished. The finished result is also
kept whole as JSON, because the columns are for querying and comparing, while reports and
``iotrate diff`` need the exact result back.

Everything a device said (names, banners, titles) reaches SQL only as a bound parameter: the
scanner talks to hostile software and must not let it write the queries. The queries are
SQLAlchemy Core, so the same code runs on both databases; timestamps are ISO 8601 text in UTC in
both, which sorts in time order and reads back without a timezone surprise.

The parts: :mod:`.schema` (tables and versions), :mod:`.db` (engine, transactions, migration),
:mod:`.writer` (a scan as it runs, and :class:`Recorder`), :mod:`.ingest` (fleet messages),
:mod:`.queries` (history and dashboard reads), :mod:`.records` (what the reads return), and
:class:`Store`, which puts them together. The names below are what the rest of iotrate uses.
"""

from __future__ import annotations

from .db import database_url, default_path, is_url
from .ingest import ForeignScan
from .records import DeviceBrief, DeviceRecord, ScanRecord, ScanStatus, ScanSummary
from .schema import SCHEMA_VERSION, metadata, targets_key
from .store import Store
from .writer import Recorder

__all__ = [
    "SCHEMA_VERSION",
    "DeviceBrief",
    "DeviceRecord",
    "ForeignScan",
    "Recorder",
    "ScanRecord",
    "ScanStatus",
    "ScanSummary",
    "Store",
    "database_url",
    "default_path",
    "is_url",
    "metadata",
    "targets_key",
]
