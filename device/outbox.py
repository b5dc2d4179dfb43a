"""The outbox: messages wait here, on disk, until the broker has acknowledged them.

AWSIoTPythonSDK's own offline queue lives in memory and holds a handful of messages, dropping the
rest; a kit that is offline for hours (or restarts meanwhile) must lose nothing. So every message
is first written to this SQLite file and removed only after its PUBACK. The file also keeps the
kit's sequence counter, so sequence numbers never repeat across restarts, and the ids of the
latest commands handled, so a command delivered twice is acted on once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HANDLED_COMMANDS_KEPT = 1000  # far more than can arrive within a command's lifetime


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    topic: str
    payload: str


class Outbox:
    def __init__(self, path: str | Path, *, max_messages: int):
        self.path = Path(path)
        self.max_messages = max_messages
        self.dropped = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # WAL with full sync: a message that put() returned for survives a power cut.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload TEXT NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS handled_commands (number INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT NOT NULL UNIQUE)"
        )

    def next_sequence(self) -> int:
        """The next sequence number of this kit: 1, 2, 3, ... for its whole life on this disk."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM counters WHERE name = 'sequence'").fetchone()
            value = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES ('sequence', ?)", (value,))
            self._db.execute("COMMIT")
            return value

    def put(self, topic: str, payload: str, *, handled_command: str | None = None) -> None:
        """Keep a message until it is acknowledged. When the outbox is full, the oldest message
        makes room, and that loss is logged: the bound protects the Pi's SD card.
        `handled_command`: the id of the command this message answers, remembered with it in one
        transaction (see `command_handled`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO messages (topic, payload) VALUES (?, ?)", (topic, payload))
            if handled_command is not None:
                self._remember(handled_command)
            (count,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
            excess = count - self.max_messages
            if excess > 0:
                self._db.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)", (excess,)
                )
            self._db.execute("COMMIT")
        if excess > 0:
            self.dropped += excess
            log.warning(
                "Outbox full (%d messages): dropped the oldest %d unsent message(s); %d dropped so far.",
                self.max_messages,
                excess,
                self.dropped,
            )

    def command_handled(self, command_id: str) -> bool:
        """Whether the command `command_id` was handled before (answered, or dropped as expired)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM handled_commands WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def command_remember(self, command_id: str) -> None:
        """Remember a command handled without an answer (an expired one)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._remember(command_id)
            self._db.execute("COMMIT")

    def _remember(self, command_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO handled_commands (id) VALUES (?)", (command_id,))
        self._db.execute(
            "DELETE FROM handled_commands WHERE number <= (SELECT MAX(number) FROM handled_commands) - ?",
            (HANDLED_COMMANDS_KEPT,),
        )

    def oldest(self, limit: int = 100) -> list[QueuedMessage]:
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload FROM messages ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [QueuedMessage(*row) for row in rows]

    def remove(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
