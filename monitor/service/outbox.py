"""A small durable outbox for alerts decided but not yet delivered (SQLite, stdlib).

Every alert is written here when it is decided and deleted when the broker acknowledged
it; what is left when the daemon stops (broker down, frozen, past the grace period) is
delivered after the next start, in the order it was decided, with the alert's own `id`
(consumers de-duplicate on it). One daemon per file: the database is opened in exclusive
locking mode, so a second daemon on the same file cannot use it (`OutboxError`; the daemon
then serves without an outbox and logs ``outbox_unavailable``, as for an unwritable path).

It also keeps the open alerts (`service.ledger`), changed in the same transaction as the
alerts that change them: a restart knows which alerts its consumers were shown open.

Durability: WAL with ``synchronous=NORMAL`` survives a crash of the daemon; a power loss
may lose the last transactions (``FULL`` would cost an fsync per alert burst).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import MonitorError
from monitor.service.ledger import LedgerChange

__all__ = ["Outbox", "OutboxError", "StoredAlert"]

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    urgent INTEGER NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS open_alerts (
    patient TEXT NOT NULL,
    key TEXT NOT NULL,
    event BLOB NOT NULL,
    PRIMARY KEY (patient, key)
)
""",
)


class OutboxError(MonitorError):
    """The outbox file cannot be used (locked by another daemon, not a database, no room)."""


@dataclass(slots=True)
class StoredAlert:
    """An alert waiting for delivery.

    Attributes:
        seq: Its row in the outbox (decision order); None while not stored.
        id: The alert's stable id.
        topic: Where it is published.
        payload: The JSON to publish.
        urgent: Technical or system-wide: published before physiological alerts.
    """

    seq: int | None
    id: str
    topic: str
    payload: bytes
    urgent: bool


class Outbox:
    """The SQLite file of undelivered alerts.

    Args:
        path: The database file; its folder is created.

    Raises:
        OutboxError: On open, when the file is locked by another process or is not a
            database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=0.5, isolation_level=None)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN EXCLUSIVE")  # takes the lock now, kept until close
            for table in _SCHEMA:
                self._db.execute(table)
            self._db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"alert outbox {path} cannot be used: {exc}") from exc

    def add(self, alerts: Iterable[StoredAlert], opened: Iterable[LedgerChange] = ()) -> None:
        """Store alerts and the open alerts' changes in one transaction, setting each
        alert's `seq`."""
        self._db.execute("BEGIN")
        try:
            for alert in alerts:
                cur = self._db.execute(
                    "INSERT INTO alerts (id, topic, payload, urgent) VALUES (?, ?, ?, ?)",
                    (alert.id, alert.topic, alert.payload, int(alert.urgent)),
                )
                alert.seq = cur.lastrowid
            for patient, key, event in opened:
                if event is None:
                    self._db.execute(
                        "DELETE FROM open_alerts WHERE patient = ? AND key = ?", (patient, key)
                    )
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO open_alerts (patient, key, event) VALUES (?, ?, ?)",
                        (patient, key, event),
                    )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget delivered (or deliberately dropped) alerts."""
        self._db.executemany("DELETE FROM alerts WHERE seq = ?", [(s,) for s in seqs])

    def pending(self) -> list[StoredAlert]:
        """Every stored alert, in the order they were decided."""
        rows = self._db.execute(
            "SELECT seq, id, topic, payload, urgent FROM alerts ORDER BY seq"
        ).fetchall()
        return [StoredAlert(s, i, t, bytes(p), bool(u)) for s, i, t, p, u in rows]

    def open_alerts(self) -> list[tuple[str, str, bytes]]:
        """The open alerts kept: (patient or "", key, the latest event's JSON)."""
        rows = self._db.execute(
            "SELECT patient, key, event FROM open_alerts ORDER BY patient, key"
        ).fetchall()
        return [(p, k, bytes(e)) for p, k, e in rows]

    def count(self) -> int:
        """How many alerts are stored."""
        return int(self._db.execute("SELECT count(*) FROM alerts").fetchone()[0])

    def close(self) -> None:
        """Close the file (and release the lock)."""
        self._db.close()
