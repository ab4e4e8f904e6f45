"""Resync requests that must not be lost: recorded before they are acknowledged.

A listener that acknowledges a trigger to its sender (a Kafka offset commit) first records
it here; a request stays until a resync that began after it has run (completed or failed),
so a crash or a shutdown in between makes the next start run it (at-least-once).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import trio

from .._sqlite import use_wal

_T = TypeVar("_T")


class RequestStore(Protocol):
    async def add(self, reason: str) -> int:
        """Record a request durably; its number."""
        ...

    async def pending(self) -> list[tuple[int, str]]:
        """``(number, reason)`` of the requests no resync has run for yet."""
        ...

    async def done(self, up_to: int) -> None:
        """A resync that began after request ``up_to`` has run: forget it and those before."""
        ...

    async def last(self) -> int:
        """The number of the last request recorded (0 if none)."""
        ...


class MemoryRequestStore:
    """For the memory journal: nothing survives a restart, so nothing is kept on disk."""

    def __init__(self) -> None:
        self._requests: list[tuple[int, str]] = []
        self._last = 0

    async def add(self, reason: str) -> int:
        await trio.lowlevel.checkpoint()
        self._last += 1
        self._requests.append((self._last, reason))
        return self._last

    async def pending(self) -> list[tuple[int, str]]:
        await trio.lowlevel.checkpoint()
        return list(self._requests)

    async def done(self, up_to: int) -> None:
        await trio.lowlevel.checkpoint()
        self._requests = [r for r in self._requests if r[0] > up_to]

    async def last(self) -> int:
        await trio.lowlevel.checkpoint()
        return self._last


class SqliteRequestStore:
    """Requests in a small SQLite file of the state folder (``resync.sqlite3``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[SqliteRequestStore]:
        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            use_wal(db)
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS resync_requests"
                " (id INTEGER PRIMARY KEY AUTOINCREMENT, reason TEXT NOT NULL, at REAL NOT NULL)"
            )
            return db

        db = await trio.to_thread.run_sync(connect)
        store = cls(db)
        try:
            yield store
        finally:
            with trio.CancelScope(
                shield=True
            ):  # local and quick; a thread call cannot be abandoned
                await store._call(db.close)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def add(self, reason: str) -> int:
        def insert() -> int:
            cursor = self._db.execute(
                "INSERT INTO resync_requests (reason, at) VALUES (?, ?)", (reason, time.time())
            )
            return int(cursor.lastrowid or 0)

        return await self._call(insert)

    async def pending(self) -> list[tuple[int, str]]:
        rows = await self._call(
            lambda: self._db.execute(
                "SELECT id, reason FROM resync_requests ORDER BY id"
            ).fetchall()
        )
        return [(int(i), str(r)) for i, r in rows]

    async def done(self, up_to: int) -> None:
        await self._call(
            lambda: self._db.execute("DELETE FROM resync_requests WHERE id <= ?", (up_to,))
        )

    async def last(self) -> int:
        (found,) = await self._call(
            lambda: self._db.execute("SELECT COALESCE(MAX(id), 0) FROM resync_requests").fetchone()
        )
        return int(found)
