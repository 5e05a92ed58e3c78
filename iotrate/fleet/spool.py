"""The agent's spool: every message on disk until the broker has acknowledged it.

A message is written here (committed, ``synchronous=FULL``) before it is handed to the MQTT
client, and deleted only when the broker's PUBACK for it arrives. So a broker outage, a
network cut or the agent being killed loses nothing: whatever has no PUBACK is sent again, in
order, when the agent reconnects or starts again. That can deliver a message twice (PUBACK
lost on the way back); the collector's writes are idempotent for exactly that reason.

The spool also remembers the nonces of accepted commands (replay protection that survives
restarts) and a little state: the agent's id and the scan in progress.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from iotrate.errors import RuntimeFailure
from iotrate.privatefiles import create_private


def default_spool_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("iotrate") / "agent-spool.db"


class Spool:
    """Thread-safe: the scan adds messages while paho's thread acknowledges them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            create_private(path)  # findings and the command nonces: owner only
            self._db = sqlite3.connect(
                path, isolation_level=None, timeout=10, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    topic TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    queued_at REAL NOT NULL
                );
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_at REAL NOT NULL);
                """
            )
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFailure(f"cannot open the agent spool {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise RuntimeFailure(f"the agent spool {self.path} failed: {exc}") from exc

    def put(self, make: Callable[[int], tuple[str, bytes]]) -> int:
        """Queue one message; ``make(seq)`` builds its topic and payload with the sequence
        number it gets. Returns once the message is safely on disk."""
        with self._use() as db:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            seq = (int(row[0]) if row else 0) + 1
            topic, payload = make(seq)
            db.execute(
                "INSERT INTO outbox (seq, topic, payload, queued_at) VALUES (?, ?, ?, ?)",
                (seq, topic, payload, time.time()),
            )
            return seq

    def pending(self, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Queued messages with a sequence number above ``after``, oldest first."""
        with self._use() as db:
            rows = db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(int(s), str(t), bytes(p)) for s, t, p in rows]

    def done(self, seq: int) -> None:
        """The broker acknowledged the message: forget it."""
        with self._use() as db:
            db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def count(self) -> int:
        with self._use() as db:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def size_bytes(self) -> int:
        with self._use() as db:
            row = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        return int(row[0])

    def get(self, key: str) -> str | None:
        with self._use() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str | None) -> None:
        with self._use() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def first_use_of_nonce(self, nonce: str, now: float, window: float) -> bool:
        """Record a command's nonce; False if it was seen within the window (a replay)."""
        with self._use() as db:
            db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - 2 * window,))
            cur = db.execute(
                "INSERT INTO nonces (nonce, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (nonce, now),
            )
            return cur.rowcount == 1
