"""SQLite set-up for the files several processes open at once (journal, catalog, resync
requests): switching a new file to WAL."""

from __future__ import annotations

import sqlite3
import time

WAL_SECONDS = 30.0
"""How long to retry the switch: the busy timeout the connections use."""
_RETRY_SECONDS = 0.005


def use_wal(db: sqlite3.Connection, *, seconds: float = WAL_SECONDS) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to ``seconds`` while the file is busy.

    A file still in rollback-journal mode (just created) needs an exclusive lock to switch,
    and while another connection holds its write lock SQLite answers SQLITE_BUSY at once,
    without the busy handler: what processes opening one new file together run into. Call
    it on a worker thread (it sleeps between tries).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(_RETRY_SECONDS)
