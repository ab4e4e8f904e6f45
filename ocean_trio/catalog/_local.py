"""``LocalCatalog``: the embedded default sink, entities in SQLite keyed by blueprint + identifier."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from .._entity import identifier_key
from .._sqlite import use_wal
from ..resync._target import ResyncRun, ResyncWriter
from ._changes import EntityChanges
from ._local_resync import merge_json, open_local_resync

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
CREATE INDEX IF NOT EXISTS entities_by_update ON entities (updated_at);
"""
# Added after the first release: catalogs created before get them on open.
# live_at: when a live event (or register_raw) last wrote the entity; seen: the last resync
# that produced it. Reconciliation and "a resync never overwrites a newer live write" use them.
_COLUMNS = {"live_at": "REAL", "seen": "INTEGER"}


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
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            use_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            # Several processes open one catalog at once (the split topology, instances
            # sharing a catalog file): the schema is created and migrated under the write
            # lock, so no two of them see a column missing and both add it.
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                present = {row[1] for row in db.execute("PRAGMA table_info(entities)")}
                for column, kind in _COLUMNS.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE entities ADD COLUMN {column} {kind}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                db.close()
                raise
            db.create_function("ocean_merge", 2, merge_json, deterministic=True)
            return db

        db = await trio.to_thread.run_sync(connect)
        catalog = cls(db, path)
        try:
            yield catalog
        finally:
            # Shielded so the file is closed even on cancellation; closing SQLite is local and
            # quick, and a thread call cannot be abandoned anyway, so no deadline.
            with trio.CancelScope(shield=True):
                await catalog._call(db.close)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def run_sync(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn(connection)`` on the catalog's worker thread, after every call before it."""
        return await self._call(lambda: fn(self._db))

    def open_resync(self, run: ResyncRun) -> AbstractAsyncContextManager[ResyncWriter]:
        """A resync's writes and reconciliation (``ResyncTarget``), in SQL."""
        return open_local_resync(self, run)

    # --- writes -----------------------------------------------------------------------------

    async def apply(self, batch: list[EntityChanges]) -> None:
        """Apply every change set of ``batch`` in order, in one transaction.

        Rows are serialised here, on the event loop (a few microseconds each), so the worker
        thread runs SQLite's C code and holds the GIL as little as possible.
        """
        runs = _statements(batch, time.time())
        await self._call(lambda: self._write_sync(runs))
        self._writes += 1
        for changes in batch:
            self._upserts += len(changes.upserts)
            self._deletes += len(changes.deletes)
            self._skipped += sum(e.is_using_search_identifier for e in changes.upserts)

    def _write_sync(self, runs: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in runs:
                db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def is_transient(self, error: Exception) -> bool:
        """Locked or busy database, disk full, I/O errors: retried by the applier."""
        return isinstance(error, sqlite3.OperationalError | OSError)

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
        self,
        blueprint: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        search: str | None = None,
    ) -> list[dict[str, Any]]:
        """Entities in Port's JSON shape plus ``createdAt``/``updatedAt``, by blueprint and id.

        ``search`` keeps the entities whose identifier or title contains it, ignoring case
        (SQLite's ``LIKE``: ASCII letters only).
        """
        sql = "SELECT data, created_at, updated_at FROM entities"
        conditions: list[str] = []
        args: list[Any] = []
        if blueprint is not None:
            conditions.append("blueprint = ?")
            args.append(blueprint)
        if search:
            pattern = "%" + _escape_like(search) + "%"
            conditions.append(
                "(identifier LIKE ? ESCAPE '\\' OR json_extract(data, '$.title') LIKE ? ESCAPE '\\')"
            )
            args += [pattern, pattern]
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
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


# Live writes (events, register_raw): they also record when a live event last wrote the entity.
_UPSERT = (
    "INSERT INTO entities (blueprint, identifier, data, created_at, updated_at, live_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (blueprint, identifier) DO UPDATE SET"
    " updated_at = excluded.updated_at, live_at = excluded.live_at, "
)
_MERGE_UPSERT = _UPSERT + "data = ocean_merge(data, excluded.data)"
_REPLACE_UPSERT = _UPSERT + "data = excluded.data"
_DELETE = "DELETE FROM entities WHERE blueprint = ? AND identifier = ?"


def _statements(batch: list[EntityChanges], now: float) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The batch as few ``executemany`` runs: consecutive operations of one kind share one."""
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []

    def add(sql: str, row: tuple[Any, ...]) -> None:
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(row)
        else:
            runs.append((sql, [row]))

    for changes in batch:
        upsert = _MERGE_UPSERT if changes.options.merge else _REPLACE_UPSERT
        for entity in changes.upserts:
            if not entity.is_using_search_identifier:
                data = json.dumps(entity.to_port(), ensure_ascii=False)
                add(upsert, (*entity.key, data, now, now, now))
        for entity in changes.deletes:
            add(_DELETE, entity.key)
    return runs


def _escape_like(text: str) -> str:
    """``text`` matched literally by ``LIKE ... ESCAPE '\\'``: its ``%``, ``_`` and ``\\`` escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _entity_json(data: str, created_at: float, updated_at: float) -> dict[str, Any]:
    entity: dict[str, Any] = json.loads(data)
    entity["createdAt"] = _iso(created_at)
    entity["updatedAt"] = _iso(updated_at)
    return entity


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
