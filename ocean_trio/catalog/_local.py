"""``LocalCatalog``: the embedded default sink, entities in SQLite keyed by blueprint + identifier."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from .._entity import Entity, identifier_key
from ._changes import EntityChanges

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    blueprint TEXT NOT NULL,
    identifier TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (blueprint, identifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blueprints (
    identifier TEXT PRIMARY KEY,
    data TEXT NOT NULL
) WITHOUT ROWID;
"""

_MERGED = ("properties", "relations")


@attrs.frozen
class CatalogStatistics:
    writes: int
    upserts: int
    deletes: int
    skipped_search_identifiers: int


class LocalCatalog:
    """The catalog in one SQLite file (WAL); every call runs on a worker thread, one at a time.

    ``apply`` writes a whole batch in one transaction, so a batch is all-or-nothing. Upserts
    follow Port's semantics: with ``merge`` the properties and relations are merged key by
    key into the stored entity, without it the entity is replaced.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._limiter = trio.CapacityLimiter(1)
        self._writes = 0
        self._upserts = 0
        self._deletes = 0
        self._skipped = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[LocalCatalog]:
        """Open (creating if needed) the catalog at ``path``; closed on exit."""

        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            return db

        db = await trio.to_thread.run_sync(connect)
        catalog = cls(db, path)
        try:
            yield catalog
        finally:
            with trio.CancelScope(shield=True):
                await catalog._call(db.close)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    # --- writes -----------------------------------------------------------------------------

    async def apply(self, batch: list[EntityChanges]) -> None:
        """Apply every change set of ``batch`` in order, in one transaction."""
        await self._call(lambda: self._apply_sync(batch))
        self._writes += 1

    def _apply_sync(self, batch: list[EntityChanges]) -> None:
        now = time.time()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for changes in batch:
                for entity in changes.upserts:
                    if entity.is_using_search_identifier:
                        self._skipped += 1
                        continue
                    self._upsert(entity, merge=changes.options.merge, now=now)
                for entity in changes.deletes:
                    blueprint, identifier = entity.key
                    db.execute(
                        "DELETE FROM entities WHERE blueprint = ? AND identifier = ?",
                        (blueprint, identifier),
                    )
                    self._deletes += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _upsert(self, entity: Entity, *, merge: bool, now: float) -> None:
        blueprint, identifier = entity.key
        data = entity.to_port()
        row = self._db.execute(
            "SELECT data FROM entities WHERE blueprint = ? AND identifier = ?",
            (blueprint, identifier),
        ).fetchone()
        if row is not None and merge:
            stored = json.loads(row[0])
            for name in _MERGED:
                if isinstance(stored.get(name), dict) and isinstance(data.get(name), dict):
                    data[name] = {**stored[name], **data[name]}
            data = {**stored, **data}
        self._db.execute(
            "INSERT INTO entities (blueprint, identifier, data, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (blueprint, identifier)"
            " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            (blueprint, identifier, json.dumps(data, ensure_ascii=False), now, now),
        )
        self._upserts += 1

    async def upsert_blueprints(self, blueprints: Sequence[Mapping[str, Any]]) -> None:
        """Store blueprint definitions (from ``blueprints.json``) by identifier."""
        rows = [(str(b["identifier"]), json.dumps(b)) for b in blueprints if "identifier" in b]

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO blueprints (identifier, data) VALUES (?, ?)"
                    " ON CONFLICT (identifier) DO UPDATE SET data = excluded.data",
                    rows,
                )

        await self._call(write)

    # --- reads ------------------------------------------------------------------------------

    async def list_entities(
        self, blueprint: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Entities in Port's JSON shape plus ``createdAt``/``updatedAt``, by blueprint and id."""
        sql = "SELECT data, created_at, updated_at FROM entities"
        args: list[Any] = []
        if blueprint is not None:
            sql += " WHERE blueprint = ?"
            args.append(blueprint)
        sql += " ORDER BY blueprint, identifier LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
        rows = await self._call(lambda: self._db.execute(sql, args).fetchall())
        return [_entity_json(*row) for row in rows]

    async def get_entity(self, blueprint: str, identifier: Any) -> dict[str, Any] | None:
        """One entity, or ``None`` when the catalog does not hold it."""
        row = await self._call(
            lambda: self._db.execute(
                "SELECT data, created_at, updated_at FROM entities"
                " WHERE blueprint = ? AND identifier = ?",
                (blueprint, identifier_key(identifier)),
            ).fetchone()
        )
        return None if row is None else _entity_json(*row)

    async def blueprint_counts(self) -> dict[str, int]:
        """How many entities each blueprint holds."""
        rows = await self._call(
            lambda: self._db.execute(
                "SELECT blueprint, COUNT(*) FROM entities GROUP BY blueprint ORDER BY blueprint"
            ).fetchall()
        )
        return {blueprint: count for blueprint, count in rows}

    async def list_blueprints(self) -> list[dict[str, Any]]:
        """The stored blueprint definitions, by identifier."""
        rows = await self._call(
            lambda: self._db.execute("SELECT data FROM blueprints ORDER BY identifier").fetchall()
        )
        return [json.loads(data) for (data,) in rows]

    def statistics(self) -> CatalogStatistics:
        return CatalogStatistics(self._writes, self._upserts, self._deletes, self._skipped)


def _entity_json(data: str, created_at: float, updated_at: float) -> dict[str, Any]:
    entity: dict[str, Any] = json.loads(data)
    entity["createdAt"] = _iso(created_at)
    entity["updatedAt"] = _iso(updated_at)
    return entity


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
