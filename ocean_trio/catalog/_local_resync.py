"""A resync into the local catalog: diffing, freshness and reconciliation, all in SQL.

What a resync produced is recorded in the ``seen`` column (its id), so reconciliation is one
query whatever the catalog's size, and memory never holds the produced keys. An entity that
a live event wrote after the resync began (``live_at``) is never overwritten by it, and only
entities last written before the resync began can be reconciled away.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from ..resync._state import Reconciliation
from ..resync._target import ResyncRun, WriteCounts, deletion_refusal
from ._changes import EntityChanges, WriteOptions

_T = TypeVar("_T")

_MERGED = ("properties", "relations")
_CHUNK = 200  # keys per lookup (two parameters each: SQLite allows 32,766)


class Database(Protocol):
    """Where the statements run: the catalog's connection, on its worker thread."""

    async def run_sync(self, fn: Callable[[sqlite3.Connection], _T]) -> _T: ...


def merge_json(stored: str, new: str) -> str:
    """Port's merge upsert: properties and relations merged key by key, other fields replaced."""
    old_data, data = json.loads(stored), json.loads(new)
    for name in _MERGED:
        if isinstance(old_data.get(name), dict) and isinstance(data.get(name), dict):
            data[name] = {**old_data[name], **data[name]}
    return json.dumps({**old_data, **data}, ensure_ascii=False)


@asynccontextmanager
async def open_local_resync(database: Database, run: ResyncRun) -> AsyncIterator[LocalResync]:
    """The writer of ``run`` (nothing to release: its state lives in the rows)."""
    yield LocalResync(database, run)


class LocalResync:
    """``ResyncWriter`` for the local catalog."""

    def __init__(self, database: Database, run: ResyncRun) -> None:
        self._database = database
        self._run = run

    async def write(self, changes: EntityChanges) -> WriteCounts:
        searchable = [e for e in changes.upserts if not e.is_using_search_identifier]
        # Only Port resolves a search identifier: such entities are not stored here.
        unresolvable = len(changes.upserts) - len(searchable)
        rows = [(*e.key, json.dumps(e.to_port(), ensure_ascii=False)) for e in searchable]
        merge = changes.options.merge
        upserted, skipped = await self._database.run_sync(
            lambda db: _write(db, rows, merge=merge, run=self._run)
        )
        return WriteCounts(upserted=upserted, skipped=skipped + unresolvable)

    async def reconcile(self, threshold: float, options: WriteOptions) -> Reconciliation:
        # ``options`` matter to Port only: the local catalog has no dependents to cascade to.
        return await self._database.run_sync(lambda db: _reconcile(db, self._run, threshold))


def _write(
    db: sqlite3.Connection, rows: list[tuple[str, str, str]], *, merge: bool, run: ResyncRun
) -> tuple[int, int]:
    now = time.time()
    db.execute("BEGIN IMMEDIATE")
    try:
        stored = _stored(db, [(bp, ident) for bp, ident, _ in rows])
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        seen: list[tuple[Any, ...]] = []
        for blueprint, identifier, data in rows:
            old = stored.get((blueprint, identifier))
            if old is None:
                inserts.append((blueprint, identifier, data, now, now, run.id))
                continue
            old_data, live_at = old
            newer_live = live_at is not None and live_at >= run.started_at
            # The same text is the same entity, merged or not; comparing it first spares the
            # parsing and merging of every entity of a resync that changed nothing.
            if newer_live or data == old_data:
                seen.append((run.id, blueprint, identifier))
                continue
            target = merge_json(old_data, data) if merge else data
            if json.loads(target) == json.loads(old_data):
                seen.append((run.id, blueprint, identifier))
            else:
                updates.append((target, now, run.id, blueprint, identifier))
        db.executemany(
            "INSERT INTO entities (blueprint, identifier, data, created_at, updated_at, seen)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            inserts,
        )
        db.executemany(
            "UPDATE entities SET data = ?, updated_at = ?, seen = ?"
            " WHERE blueprint = ? AND identifier = ?",
            updates,
        )
        db.executemany("UPDATE entities SET seen = ? WHERE blueprint = ? AND identifier = ?", seen)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(inserts) + len(updates), len(seen)


def lookup_sql(keys: int) -> str:
    """The statement reading ``keys`` stored entities (two parameters each: blueprint,
    identifier). A join, not ``(blueprint, identifier) IN (VALUES ...)``: SQLite plans that
    one as a scan of the whole table per batch, so a resync grew quadratic with the catalog
    (100,000 entities: 39 s instead of 12); the join searches the primary key once per key."""
    values = ",".join("(?, ?)" for _ in range(keys))
    return (
        "SELECT e.blueprint, e.identifier, e.data, e.live_at"
        f" FROM (VALUES {values}) AS k"
        " JOIN entities AS e ON e.blueprint = k.column1 AND e.identifier = k.column2"
    )


def _stored(
    db: sqlite3.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, float | None]]:
    found: dict[tuple[str, str], tuple[str, float | None]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        parameters = [part for key in chunk for part in key]
        for blueprint, identifier, data, live_at in db.execute(lookup_sql(len(chunk)), parameters):
            found[(blueprint, identifier)] = (data, live_at)
    return found


def _reconcile(db: sqlite3.Connection, run: ResyncRun, threshold: float) -> Reconciliation:
    # Owned: everything in the catalog (it belongs to this integration) that existed before
    # the resync began; stale: of those, last written before it began and not produced by it.
    # Counting entities the resync changed keeps a resync that changes most of the catalog
    # from being refused for deleting the few gone (Ocean counts only the unchanged ones).
    db.execute("BEGIN IMMEDIATE")
    try:
        (owned,) = db.execute(
            "SELECT COUNT(*) FROM entities WHERE created_at < ?", (run.started_at,)
        ).fetchone()
        (stale,) = db.execute(
            "SELECT COUNT(*) FROM entities WHERE updated_at < ? AND seen IS NOT ?",
            (run.started_at, run.id),
        ).fetchone()
        reason = deletion_refusal(owned, stale, threshold)
        deleted = 0
        if stale and reason is None:
            deleted = db.execute(
                "DELETE FROM entities WHERE updated_at < ? AND seen IS NOT ?",
                (run.started_at, run.id),
            ).rowcount
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return Reconciliation(owned=owned, stale=stale, deleted=deleted, skipped_reason=reason)
