"""``SqliteJournal``: the durable default journal, in SQLite (WAL) with group commit.

Several processes of one machine may share the file (ingress processes appending, one
processing process completing): SQLite serialises their write transactions, the pending
count is kept by triggers, and a process learns of others' appends from the table's
high-water mark, read in each of its own commits and by ``look_elsewhere``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from .._exceptions import DuplicateDeliveryError, JournalFullError, JournalUnavailableError
from .._sqlite import use_wal
from ._event import WebhookEvent
from ._journal import (
    DEDUP_WINDOW_SECONDS,
    DEFAULT_PURGE,
    PRUNED_STATUSES,
    Admit,
    AppendedElsewhere,
    EventStatus,
    JournalEntry,
    JournalRecord,
    JournalStatistics,
    Replayed,
    ReplayResult,
    stored_payload,
)

logger = logging.getLogger("ocean_trio.journal")

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    path TEXT NOT NULL,
    group_id TEXT,
    delivery_id TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_status ON events (status, seq);
CREATE INDEX IF NOT EXISTS events_pending ON events (path, seq) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS deliveries (
    path TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (path, delivery_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (seen_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS pending_added AFTER INSERT ON events WHEN NEW.status = 'pending'
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'pending'; END;
CREATE TRIGGER IF NOT EXISTS pending_left AFTER UPDATE OF status ON events
WHEN OLD.status = 'pending' AND NEW.status != 'pending'
BEGIN UPDATE counters SET value = value - 1 WHERE name = 'pending'; END;
CREATE TRIGGER IF NOT EXISTS pending_deleted AFTER DELETE ON events WHEN OLD.status = 'pending'
BEGIN UPDATE counters SET value = value - 1 WHERE name = 'pending'; END;
"""
# The pending count, kept by the triggers above for every process sharing the file; set
# from the table when the file is opened (the counter is new in files of older versions).
_COUNT_PENDING = (
    "INSERT INTO counters (name, value) VALUES ('pending',"
    " (SELECT COUNT(*) FROM events WHERE status = 'pending'))"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_PENDING = "SELECT value FROM counters WHERE name = 'pending'"
# The highest seq ever given out, by any process (AUTOINCREMENT never reuses one).
_HIGH = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"
BUSY_TIMEOUT_MS = 30_000  # how long a write waits for another process's transaction

# A delivery id counts once per window: a row older than the window is taken over.
_CLAIM_DELIVERY = (
    "INSERT INTO deliveries (path, delivery_id, seen_at, trace_id) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (path, delivery_id) DO UPDATE SET seen_at = excluded.seen_at,"
    " trace_id = excluded.trace_id WHERE deliveries.seen_at < ?"
)
_INSERT_EVENT = (
    "INSERT INTO events (trace_id, path, group_id, delivery_id, headers, body, received_at,"
    " status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)"
)
_COMPLETE = "UPDATE events SET status = ?, error = ?, attempts = ?, updated_at = ? WHERE seq = ?"
_SELECT = (
    "SELECT seq, trace_id, path, group_id, delivery_id, headers, body, received_at, status,"
    " error, attempts, updated_at FROM events"
)
_PENDING_PAGE = _SELECT + " WHERE status = 'pending' AND path = ? AND seq > ? ORDER BY seq"
_PRUNED = ", ".join(f"'{s.value}'" for s in PRUNED_STATUSES)
# A replay appends copies of the chosen rows at the tail (new seqs, pending), then drops them.
_REPLAY_COPY = (
    "INSERT INTO events (trace_id, path, group_id, delivery_id, headers, body, received_at,"
    " status, updated_at) SELECT trace_id, path, group_id, delivery_id, headers, body,"
    " received_at, 'pending', ? FROM events WHERE {where} ORDER BY seq"
)


@attrs.define(eq=False)
class _Append:
    event: WebhookEvent
    admit: Admit
    done: trio.Event = attrs.field(factory=trio.Event)
    seq: int | None = None
    duplicate_of: str | None = None
    error: BaseException | None = None


_Complete = tuple[str, str | None, int, float, int]


class SqliteJournal:
    """Events in one SQLite file: acknowledged only once committed, replayed after a crash.

    Appends wait in a bounded channel; a writer task commits everything that arrived while
    the previous commit ran in one transaction on a worker thread (group commit), so the
    cost of durability is shared by all events arriving together. Completions ride along in
    the same transactions without being waited for: a crash before they commit replays the
    event (at-least-once). Finished events other than dead letters are pruned after
    ``retention_seconds``, and beyond ``max_finished`` of them, oldest first.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        *,
        max_pending: int,
        pending: int,
        dedup_window_seconds: float,
        retention_seconds: float,
        max_finished: int,
        queue_size: int,
        last_seq: int,
        on_append: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self.path = path
        self._max_pending = max_pending
        # Pending events: as of this process's last commit (every process's), plus appends
        # in flight here, minus completions queued here.
        self._committed_pending = pending
        self._appending = 0
        self._window = dedup_window_seconds
        self._retention = retention_seconds
        self._max_finished = max_finished
        self._last_seq = last_seq
        self._replayed = 0
        self._limiter = trio.CapacityLimiter(1)
        self._send, self._recv = trio.open_memory_channel[_Append | _Complete](queue_size)
        self._appended = 0
        self._completed = 0
        self._duplicates = 0
        self._written = trio.Event()  # set while no completion waits to be written
        self._written.set()
        self._queued = 0
        self._on_append = on_append
        self._elsewhere: AppendedElsewhere | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        max_pending: int,
        dedup_window_seconds: float = DEDUP_WINDOW_SECONDS,
        retention_seconds: float = 24 * 3600,
        max_finished: int = 100_000,
        queue_size: int = 4096,
        on_append: Callable[[], None] | None = None,
    ) -> AsyncIterator[SqliteJournal]:
        """Open (creating if needed) the journal at ``path``; closed on exit.

        ``on_append`` is called after each commit that appended events (to wake the
        processing process when it is another one).
        """

        def connect() -> tuple[sqlite3.Connection, int, int]:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                path,
                check_same_thread=False,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            use_wal(db)
            # FULL: a commit reaches the disk before the 2xx goes out (NORMAL may lose the
            # last commits on power loss, which would break the acknowledgement's promise).
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)  # IF NOT EXISTS: safe beside another process opening it
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(_COUNT_PENDING)
            (pending,) = db.execute(_PENDING).fetchone()
            (last,) = db.execute(_HIGH).fetchone()
            return db, int(pending), int(last)

        db, pending, last_seq = await trio.to_thread.run_sync(connect)
        journal = cls(
            db,
            path,
            max_pending=max_pending,
            pending=pending,
            dedup_window_seconds=dedup_window_seconds,
            retention_seconds=retention_seconds,
            max_finished=max_finished,
            queue_size=queue_size,
            last_seq=last_seq,
            on_append=on_append,
        )
        try:
            yield journal
        finally:
            # Shielded so the file is closed even on cancellation; closing SQLite is local and
            # quick, and a thread call cannot be abandoned anyway, so no deadline.
            with trio.CancelScope(shield=True):
                await journal._call(db.close)

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    @property
    def failure(self) -> None:
        return None  # a failing local disk fails its calls; nothing to report between them

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def _pending(self) -> int:
        return self._committed_pending + self._appending - self._queued

    def watch(self, appended_elsewhere: AppendedElsewhere) -> None:
        self._elsewhere = appended_elsewhere

    async def look_elsewhere(self) -> None:
        """Learn of events other processes appended (or replayed) since this one last looked."""

        def read() -> tuple[int, int]:
            (high,) = self._db.execute(_HIGH).fetchone()
            (pending,) = self._db.execute(_PENDING).fetchone()
            return int(high), int(pending)

        high, self._committed_pending = await self._call(read)
        self._seen(high)

    def _seen(self, high: int) -> None:
        if high > self._last_seq:
            self._last_seq = high
            if self._elsewhere is not None:
                self._elsewhere(high)

    # --- the writer -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit queued appends and completions in groups; prune now and then."""
        await self._call(self._prune_sync)
        next_prune = trio.current_time() + 60.0
        task_status.started()
        while True:
            batch: list[_Append | _Complete] = []
            with trio.move_on_at(next_prune):
                batch.append(await self._recv.receive())
            while True:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if batch:
                await self._commit(batch)
            if trio.current_time() >= next_prune:
                await self._call(self._prune_sync)
                next_prune = trio.current_time() + 60.0

    async def _commit(self, batch: list[_Append | _Complete]) -> None:
        appends = [r for r in batch if isinstance(r, _Append)]
        completes = [r for r in batch if not isinstance(r, _Append)]
        try:
            # Not abandoned on cancellation: a commit in flight finishes, so its result is known.
            high, self._committed_pending = await self._call(
                lambda: self._write_sync(appends, completes)
            )
            # Others' appends below this commit's: the pipelines page them in before these.
            self._seen(high)
        except Exception as error:
            logger.error("journal commit of %d records failed: %r", len(batch), error)
            for request in appends:
                request.error = error
        finally:
            self._queued -= len(completes)
            for request in appends:
                if request.seq is not None:
                    # In seq order, before any appender wakes: pipelines rely on it.
                    self._last_seq = max(self._last_seq, request.seq)
                    request.admit(JournalEntry(request.seq, request.event))
                request.done.set()
            if self._queued == 0:
                self._written.set()
        if self._on_append is not None and any(r.seq is not None for r in appends):
            self._on_append()

    def _write_sync(self, appends: list[_Append], completes: list[_Complete]) -> tuple[int, int]:
        """Commit ``appends`` and ``completes`` in one transaction; the high-water mark
        before them and the pending count after."""
        db = self._db
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            (high,) = db.execute(_HIGH).fetchone()
            for request in appends:
                event = request.event
                if event.delivery_id is not None:
                    claimed = db.execute(
                        _CLAIM_DELIVERY,
                        (event.path, event.delivery_id, now, event.trace_id, now - self._window),
                    ).rowcount
                    if not claimed:
                        (request.duplicate_of,) = db.execute(
                            "SELECT trace_id FROM deliveries WHERE path = ? AND delivery_id = ?",
                            (event.path, event.delivery_id),
                        ).fetchone()
                        continue
                request.seq = db.execute(
                    _INSERT_EVENT,
                    (
                        event.trace_id,
                        event.path,
                        event.group_id,
                        event.delivery_id,
                        json.dumps(event.headers),
                        event.body,
                        event.received_at,
                        now,
                    ),
                ).lastrowid
            if completes:
                db.executemany(_COMPLETE, completes)
            (pending,) = db.execute(_PENDING).fetchone()
            db.execute("COMMIT")
            return int(high), int(pending)
        except BaseException:
            db.execute("ROLLBACK")
            for request in appends:
                request.seq = request.duplicate_of = None
            raise

    def _prune_sync(self) -> None:
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            old = self._db.execute(
                f"DELETE FROM events WHERE status IN ({_PRUNED}) AND updated_at < ?",
                (now - self._retention,),
            ).rowcount
            (finished,) = self._db.execute(
                f"SELECT COUNT(*) FROM events WHERE status IN ({_PRUNED})"
            ).fetchone()
            excess = self._db.execute(
                f"DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                f" WHERE status IN ({_PRUNED}) ORDER BY seq LIMIT ?)",
                (max(0, finished - self._max_finished),),
            ).rowcount
            self._db.execute("DELETE FROM deliveries WHERE seen_at < ?", (now - self._window,))
        if old or excess:
            logger.info(
                "pruned %d finished events older than %gs and %d beyond the %d kept",
                old,
                self._retention,
                excess,
                self._max_finished,
            )

    # --- the journal interface --------------------------------------------------------------

    async def append(self, event: WebhookEvent, admit: Admit) -> JournalEntry:
        if self._pending >= self._max_pending:
            # Other processes may have finished events since this one last committed.
            (self._committed_pending,) = await self._call(
                lambda: self._db.execute(_PENDING).fetchone()
            )
            if self._pending >= self._max_pending:
                raise JournalFullError(
                    f"{self._pending} events are pending (limit {self._max_pending})"
                )
        request = _Append(event, admit)
        self._appending += 1
        try:
            # Cancelled while queued or committing: the outcome is unknown to the sender,
            # who gets no 2xx and will retry; a committed copy is replayed (at-least-once).
            await self._send.send(request)
            await request.done.wait()
        finally:
            self._appending -= 1
        if request.seq is None:
            if request.duplicate_of is not None:
                self._duplicates += 1
                raise DuplicateDeliveryError(request.duplicate_of)
            raise JournalUnavailableError(
                f"the journal could not record the event: {request.error!r}"
            )
        self._appended += 1
        return JournalEntry(request.seq, event)

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        if self._queued == 0:
            self._written = trio.Event()
        self._queued += 1
        self._completed += 1
        await self._send.send((status.value, error, attempts, time.time(), entry.seq))

    async def flush(self) -> None:
        await self._written.wait()

    async def pending_page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool = True
    ) -> list[JournalEntry]:
        def read() -> list[JournalEntry]:
            # Row by row, so bodies beyond the budget are never read.
            page: list[JournalEntry] = []
            size = 0
            for row in self._db.execute(_PENDING_PAGE, (path, after)):
                record = _record(row, parse=False)
                body_size = len(record.event.body)
                if (page or not at_least_one) and (
                    len(page) >= limit or size + body_size > max_bytes
                ):
                    break
                page.append(JournalEntry(record.seq, record.event))
                size += body_size
            return page

        return await self._call(read)

    async def pending_counts(self) -> dict[str, int]:
        rows = await self._call(
            lambda: self._db.execute(
                "SELECT path, COUNT(*) FROM events WHERE status = 'pending' GROUP BY path"
            ).fetchall()
        )
        return {str(path): int(count) for path, count in rows}

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        sql, args = _SELECT, []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(status.value)
        sql += " ORDER BY seq LIMIT ?"
        # Parsed in the thread too: an admin listing may hold big bodies.
        return await self._call(
            lambda: [_record(row) for row in self._db.execute(sql, (*args, limit))]
        )

    async def record(self, seq: int) -> JournalRecord | None:
        def read() -> JournalRecord | None:
            row = self._db.execute(_SELECT + " WHERE seq = ?", (seq,)).fetchone()
            return None if row is None else _record(row)

        return await self._call(read)

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        def reappend() -> tuple[ReplayResult, int, int]:
            db = self._db
            with db:
                db.execute("BEGIN IMMEDIATE")
                missing: list[int] = []
                refused: list[tuple[int, EventStatus]] = []
                if seqs is None:
                    where, args = "status = 'dead'", []
                else:
                    wanted = sorted(set(seqs))
                    marks = ",".join("?" * len(wanted))
                    found = dict(
                        db.execute(
                            f"SELECT seq, status FROM events WHERE seq IN ({marks})", wanted
                        ).fetchall()
                    )
                    missing = [s for s in wanted if s not in found]
                    refused = [
                        (s, EventStatus(found[s]))
                        for s in wanted
                        if s in found and found[s] not in ("dead", "rejected")
                    ]
                    where = f"status IN ('dead', 'rejected') AND seq IN ({marks})"
                    args = wanted
                old = [
                    seq
                    for (seq,) in db.execute(
                        f"SELECT seq FROM events WHERE {where} ORDER BY seq", args
                    )
                ]
                (before,) = db.execute(_HIGH).fetchone()
                db.execute(_REPLAY_COPY.format(where=where), [time.time(), *args])
                new = db.execute(
                    "SELECT seq, path FROM events WHERE seq > ? ORDER BY seq", (before,)
                ).fetchall()
                db.execute(f"DELETE FROM events WHERE {where}", args)
                (pending,) = db.execute(_PENDING).fetchone()
            replayed = tuple(Replayed(o, s, p) for o, (s, p) in zip(old, new, strict=True))
            return ReplayResult(replayed, tuple(missing), tuple(refused)), int(before), pending

        result, before, self._committed_pending = await self._call(reappend)
        # The replayed events, and others' appends below them, reach the pipelines.
        self._seen(max([before, *(r.seq for r in result.replayed)]))
        self._replayed += len(result.replayed)
        return result

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        def delete() -> int:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                marks = ",".join("?" * len(statuses))
                return int(
                    self._db.execute(
                        f"DELETE FROM events WHERE status IN ({marks})",
                        [s.value for s in statuses],
                    ).rowcount
                )

        return await self._call(delete)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            pending=self._pending,
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
            duplicates=self._duplicates,
            replayed=self._replayed,
        )


def _record(row: Any, *, parse: bool = True) -> JournalRecord:
    (seq, trace_id, path, group_id, delivery_id, headers, body, received_at) = row[:8]
    status, error, attempts, updated_at = row[8:]
    body = bytes(body)
    event = WebhookEvent(
        trace_id=trace_id,
        payload=stored_payload(body, parse=parse),
        headers=json.loads(headers),
        path=path,
        body=body,
        received_at=received_at,
        group_id=group_id,
        delivery_id=delivery_id,
    )
    return JournalRecord(seq, event, EventStatus(status), error, attempts, updated_at)
