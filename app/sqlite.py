"""The one way snapshop opens its small SQLite files (profiles, judgements, query sets)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# SQLite integers are signed 64-bit: a larger Python int raises OverflowError in the driver,
# so a route that passes a number to SQLite bounds it with this (a 422, not a 500).
MAX_INTEGER = 2**63 - 1


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, the schema applied, the folder created.

    One connection is shared by the API's threads (``check_same_thread=False``); each owner
    serialises its calls with a lock. Autocommit leaves transactions explicit
    (``SqliteFile.transaction``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(schema)
    return db


class SqliteFile:
    """Base of the small SQLite-backed stores: one shared connection, calls under one lock."""

    schema = ""  # each store's CREATE statements

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path, self.schema)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, in one ``BEGIN IMMEDIATE`` transaction.

        Committed when the block ends, rolled back (and the error re-raised) when it raises.
        IMMEDIATE takes the write lock at once, so two writers never interleave their reads
        and writes (e.g. both computing the same next version number).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()
