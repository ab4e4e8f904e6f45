"""``use_wal``: a new SQLite file switched to WAL while another connection writes it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ocean_trio._sqlite import use_wal


def _writer_holding_the_lock(path: Path) -> sqlite3.Connection:
    """A connection on a new rollback-journal file, in a write transaction."""
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    return writer


class _Spy:
    """A connection whose ``execute`` is replaced (sqlite3.Connection's cannot be)."""

    def __init__(self, db: sqlite3.Connection, execute: object) -> None:
        self._db = db
        self.execute = execute


def test_the_switch_fails_at_once_without_retries(tmp_path: Path) -> None:
    # Why use_wal exists: SQLite does not wait (busy timeout) for this lock.
    writer = _writer_holding_the_lock(tmp_path / "db.sqlite3")
    opener = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, timeout=30)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        opener.execute("PRAGMA journal_mode=WAL")
    assert time.monotonic() - started < 1.0
    writer.close()
    opener.close()


def test_the_switch_waits_until_the_writer_commits(tmp_path: Path) -> None:
    writer = _writer_holding_the_lock(tmp_path / "db.sqlite3")
    opener = sqlite3.connect(
        tmp_path / "db.sqlite3", isolation_level=None, timeout=30, check_same_thread=False
    )
    tried = threading.Event()
    original = opener.execute

    def execute(sql: str) -> sqlite3.Cursor:
        try:
            return original(sql)
        finally:
            tried.set()

    done = threading.Thread(target=use_wal, args=(_Spy(opener, execute),))
    done.start()
    assert tried.wait(10)  # it has tried (and been refused) at least once
    assert done.is_alive()
    writer.execute("COMMIT")
    done.join(10)
    assert not done.is_alive()
    assert opener.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    writer.close()
    opener.close()


def test_the_switch_gives_up_after_its_time(tmp_path: Path) -> None:
    writer = _writer_holding_the_lock(tmp_path / "db.sqlite3")
    opener = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, timeout=30)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(opener, seconds=0.2)
    assert time.monotonic() - started >= 0.2
    writer.close()
    opener.close()
