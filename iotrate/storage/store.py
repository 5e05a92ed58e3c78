"""The one object callers open: every part of the history behind a single :class:`Store`."""

from __future__ import annotations

from .ingest import FleetIngest
from .queries import HistoryQueries


class Store(FleetIngest, HistoryQueries):
    """The history database: a path or ``sqlite:///`` URL (local), or ``postgresql://`` (a
    fleet's collector). Safe to read from another connection mid-scan (WAL on SQLite).

    Each concern lives in its own module on top of :class:`~.db.Database`: the scan writer
    (:mod:`.writer`), the fleet ingest built on it (:mod:`.ingest`) and the reads
    (:mod:`.queries`); this class only puts them together.
    """
