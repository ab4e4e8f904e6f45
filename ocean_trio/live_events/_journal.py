"""The journal: where an accepted live event is recorded before it is acknowledged.

Ingress appends and answers 2xx only once ``append`` returns; a worker calls ``complete``
once the event's entities are applied (or it ended otherwise). The journal is the source of
truth for what is pending: pipelines keep a bounded window of it in memory and page the
rest (``pending_page``), so a backlog of any size (a restart after an outage, a replay of
many dead letters) never has to fit in memory. Finished events stay as records for a while:
dead letters until purged or replayed, the others until pruned.
"""

from __future__ import annotations

import bisect
import collections
import enum
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import trio

from .._exceptions import DuplicateDeliveryError, JournalFullError
from ._event import WebhookEvent

DEDUP_WINDOW_SECONDS = 72 * 3600
"""GitHub's redelivery horizon: a delivery id seen within it is a duplicate."""


class EventStatus(enum.StrEnum):
    """Where an event stands; only ``PENDING`` events are processed (again, after a restart)."""

    PENDING = "pending"
    DONE = "done"
    NO_MATCH = "no_match"
    REJECTED = "rejected"
    DEAD = "dead"


PRUNED_STATUSES = (EventStatus.DONE, EventStatus.NO_MATCH, EventStatus.REJECTED)
"""Finished statuses deleted after the retention period (dead letters stay until purged)."""

DEFAULT_PURGE = (EventStatus.DEAD, EventStatus.REJECTED)
"""What ``events purge`` deletes unless told otherwise."""

UNPARSED: dict[str, Any] = {}
"""The ``payload`` of an entry read back from storage: parse ``body`` before processing it.

Compared by identity; never mutated.
"""


@attrs.frozen(eq=False)
class JournalEntry:
    """An accepted event and its position in the journal (``seq`` grows with arrival)."""

    seq: int
    event: WebhookEvent

    @property
    def size(self) -> int:
        """The body's size: what the entry costs in memory, roughly."""
        return len(self.event.body)

    @property
    def parsed(self) -> bool:
        """False for an entry read back from storage, whose payload is still ``body``."""
        return self.event.payload is not UNPARSED


Admit = Callable[[JournalEntry], None]
"""Called by the journal with each appended entry once committed, in ``seq`` order."""


@attrs.frozen(eq=False)
class JournalRecord:
    """A journaled event with where it stands: what ``events list`` and the admin API show."""

    seq: int
    event: WebhookEvent
    status: EventStatus
    error: str | None
    attempts: int
    updated_at: float

    def to_json(self, *, with_payload: bool = False) -> dict[str, object]:
        data: dict[str, object] = {
            "seq": self.seq,
            "trace_id": self.event.trace_id,
            "path": self.event.path,
            "status": self.status.value,
            "error": self.error,
            "attempts": self.attempts,
            "group_id": self.event.group_id,
            "delivery_id": self.event.delivery_id,
            "received_at": self.event.received_at,
            "updated_at": self.updated_at,
        }
        if with_payload:
            data["payload"] = self.event.payload
        return data


@attrs.frozen
class Replayed:
    """A dead (or rejected) event made pending again, at the tail: its old and new numbers."""

    old_seq: int
    seq: int
    path: str


@attrs.frozen
class ReplayResult:
    """What ``replay`` did: the events replayed, and the numbers it could not replay and why."""

    replayed: tuple[Replayed, ...] = ()
    missing: tuple[int, ...] = ()
    not_replayable: tuple[tuple[int, EventStatus], ...] = ()

    def problems(self) -> list[str]:
        """One line per number that was not replayed."""
        lines = [f"event {seq} does not exist" for seq in self.missing]
        lines += [
            f"event {seq} is {status.value}, not dead or rejected"
            for seq, status in self.not_replayable
        ]
        return lines


@attrs.frozen
class JournalStatistics:
    pending: int
    max_pending: int
    appended: int
    completed: int
    duplicates: int
    replayed: int


class Journal(Protocol):
    """What the live-events pipeline, ingress and operators need from an event store."""

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` given out so far (0 for an empty journal)."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background work (group commits, pruning) until cancelled."""
        ...

    async def append(self, event: WebhookEvent, admit: Admit) -> JournalEntry:
        """Record ``event``; return only once it is as durable as the backend makes it.

        ``admit`` is called with the entry once committed, before this returns, in ``seq``
        order across concurrent appends. Raises ``JournalFullError`` when ``max_pending``
        events are already pending, and ``DuplicateDeliveryError`` when its delivery id was
        seen on its path within the window.
        """
        ...

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        """Mark ``entry`` finished with ``status``; it will not be processed again."""
        ...

    async def flush(self) -> None:
        """Wait until every ``complete`` made so far is recorded."""
        ...

    async def pending_page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool = True
    ) -> list[JournalEntry]:
        """Pending entries of ``path`` with ``seq > after``, in order: at most ``limit`` of them,
        and no more bodies than ``max_bytes`` in all, except that with ``at_least_one`` the
        first entry comes whatever its size (a window must take any single event).

        Entries may come back unparsed (``entry.parsed`` is False).
        """
        ...

    async def pending_counts(self) -> dict[str, int]:
        """How many events are pending, by path."""
        ...

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        """Journaled events, oldest first, optionally of one status."""
        ...

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        """Append dead or rejected events again, at the tail, as pending.

        ``seqs=None`` replays every dead event. A replayed event keeps its trace id, body
        and headers and gets a new ``seq``; numbers that are unknown or not dead/rejected
        are reported, not replayed.
        """
        ...

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        """Delete finished events of ``statuses``; returns how many went."""
        ...

    def statistics(self) -> JournalStatistics: ...


class MemoryJournal:
    """Keeps events in memory only: Ocean's behaviour, lost on restart.

    Still bounded: at most ``max_pending`` events wait at once (beyond that ``append``
    refuses and ingress answers 503), at most ``max_records`` finished events are kept, and
    at most ``max_deliveries`` delivery ids are remembered for dedup.
    """

    def __init__(
        self,
        *,
        max_pending: int,
        dedup_window_seconds: float = DEDUP_WINDOW_SECONDS,
        retention_seconds: float = 24 * 3600.0,
        max_records: int = 1000,
        max_deliveries: int = 100_000,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._window = dedup_window_seconds
        self._retention = retention_seconds
        self._max_deliveries = max_deliveries
        self._pending: dict[int, JournalEntry] = {}
        # Per path, the seqs appended (increasing), for paging; compacted as events finish.
        self._order: dict[str, list[int]] = collections.defaultdict(list)
        self._path_pending: collections.Counter[str] = collections.Counter()
        self._finished: collections.OrderedDict[int, JournalRecord] = collections.OrderedDict()
        self._max_records = max_records
        self._deliveries: collections.OrderedDict[tuple[str, str], tuple[float, str]] = (
            collections.OrderedDict()
        )
        self._next_seq = 1
        self._appended = 0
        self._completed = 0
        self._duplicates = 0
        self._replayed = 0

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def append(self, event: WebhookEvent, admit: Admit) -> JournalEntry:
        await trio.lowlevel.checkpoint()
        if len(self._pending) >= self._max_pending:
            raise JournalFullError(
                f"{len(self._pending)} events are pending (limit {self._max_pending})"
            )
        if event.delivery_id is not None:
            self._check_delivery(event)
        entry = self._add(event)
        self._appended += 1
        admit(entry)
        return entry

    def _add(self, event: WebhookEvent) -> JournalEntry:
        entry = JournalEntry(self._next_seq, event)
        self._next_seq += 1
        self._pending[entry.seq] = entry
        self._order[event.path].append(entry.seq)
        self._path_pending[event.path] += 1
        return entry

    def _check_delivery(self, event: WebhookEvent) -> None:
        assert event.delivery_id is not None
        now = time.time()
        while self._deliveries:
            key, (seen, _) = next(iter(self._deliveries.items()))
            if seen >= now - self._window and len(self._deliveries) < self._max_deliveries:
                break
            del self._deliveries[key]
        key = (event.path, event.delivery_id)
        seen_by = self._deliveries.get(key)
        if seen_by is not None:
            self._duplicates += 1
            raise DuplicateDeliveryError(seen_by[1])
        self._deliveries[key] = (now, event.trace_id)

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        await trio.lowlevel.checkpoint()
        if self._pending.pop(entry.seq, None) is None:
            return
        self._completed += 1
        now = time.time()
        self._finished[entry.seq] = JournalRecord(
            entry.seq, entry.event, status, error, attempts, now
        )
        self._prune(now)
        path = entry.event.path
        self._path_pending[path] -= 1
        order = self._order[path]
        if len(order) > 64 and len(order) > 2 * self._path_pending[path]:
            order[:] = [seq for seq in order if seq in self._pending]

    def _prune(self, now: float) -> None:
        # Oldest first: past the retention, or over the count, except dead letters
        # (kept until purged, within the count).
        cutoff = now - self._retention
        for seq, record in list(self._finished.items()):
            over = len(self._finished) > self._max_records
            if not over and record.updated_at >= cutoff:
                break
            if over or record.status in PRUNED_STATUSES:
                del self._finished[seq]

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def pending_page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool = True
    ) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        order = self._order.get(path, [])
        page: list[JournalEntry] = []
        size = 0
        for seq in order[bisect.bisect_right(order, after) :]:
            entry = self._pending.get(seq)
            if entry is None:
                continue
            if (page or not at_least_one) and (len(page) >= limit or size + entry.size > max_bytes):
                break
            page.append(entry)
            size += entry.size
        return page

    async def pending_counts(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        return {path: n for path, n in self._path_pending.items() if n}

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        await trio.lowlevel.checkpoint()
        pending = [
            JournalRecord(e.seq, e.event, EventStatus.PENDING, None, 0, e.event.received_at)
            for e in self._pending.values()
        ]
        found = sorted([*pending, *self._finished.values()], key=lambda r: r.seq)
        return [r for r in found if status is None or r.status is status][:limit]

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        await trio.lowlevel.checkpoint()
        replayable = (EventStatus.DEAD, EventStatus.REJECTED)
        if seqs is None:
            chosen = [s for s, r in self._finished.items() if r.status is EventStatus.DEAD]
            missing: list[int] = []
            refused: list[tuple[int, EventStatus]] = []
        else:
            wanted = sorted(set(seqs))
            chosen = [
                s for s in wanted if s in self._finished and self._finished[s].status in replayable
            ]
            missing = [s for s in wanted if s not in self._finished and s not in self._pending]
            refused = [(s, EventStatus.PENDING) for s in wanted if s in self._pending]
            refused += [
                (s, self._finished[s].status)
                for s in wanted
                if s in self._finished and self._finished[s].status not in replayable
            ]
        replayed = []
        for seq in chosen:
            record = self._finished.pop(seq)
            entry = self._add(record.event)
            replayed.append(Replayed(seq, entry.seq, record.event.path))
        self._replayed += len(replayed)
        return ReplayResult(tuple(replayed), tuple(missing), tuple(sorted(refused)))

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        await trio.lowlevel.checkpoint()
        gone = [s for s, r in self._finished.items() if r.status in statuses]
        for seq in gone:
            del self._finished[seq]
        return len(gone)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            pending=len(self._pending),
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
            duplicates=self._duplicates,
            replayed=self._replayed,
        )
