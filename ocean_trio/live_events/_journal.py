"""The journal: where an accepted live event is recorded before it is acknowledged.

Ingress appends and answers 2xx only once ``append`` returns; a worker calls ``complete``
once the event's entities are applied (or it ended otherwise). On start-up, ``unfinished``
gives back what was accepted but not completed, in arrival order, to be processed again.
Finished events that did not succeed stay as records (dead letters, rejections) until purged.
"""

from __future__ import annotations

import collections
import enum
import json
import time
from collections.abc import Sequence
from typing import Protocol

import attrs
import trio

from .._exceptions import DuplicateDeliveryError, JournalFullError
from ._event import WebhookEvent

DEDUP_WINDOW_SECONDS = 72 * 3600
"""GitHub's redelivery horizon: a delivery id seen within it is a duplicate."""


class EventStatus(enum.StrEnum):
    """Where an event stands; only ``PENDING`` events are replayed on start-up."""

    PENDING = "pending"
    DONE = "done"
    NO_MATCH = "no_match"
    REJECTED = "rejected"
    DEAD = "dead"
    FAILED = "dead"  # the handler's word for it: failed events are dead letters


KEPT_STATUSES = (EventStatus.DEAD, EventStatus.REJECTED)
"""Finished statuses kept until purged: dead letters, and rejections for audit."""


_PARKED: dict[str, object] = {}  # stands for a payload dropped while queued (identity-checked)


@attrs.frozen(eq=False)
class JournalEntry:
    """An accepted event and its position in the journal (``seq`` grows with arrival)."""

    seq: int
    event: WebhookEvent

    def parked(self) -> JournalEntry:
        """This entry without its parsed payload, which is rebuilt from ``body`` when unparked.

        A queued event then costs about its body in memory instead of body plus a parsed
        object several times larger: a backlog of durable events stays small.
        """
        if not self.event.body:
            return self
        return JournalEntry(self.seq, attrs.evolve(self.event, payload=_PARKED))

    def unparked(self) -> JournalEntry:
        """The entry with its payload parsed again (itself if it was not parked)."""
        if self.event.payload is not _PARKED:
            return self
        return JournalEntry(self.seq, attrs.evolve(self.event, payload=json.loads(self.event.body)))


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
class JournalStatistics:
    pending: int
    max_pending: int
    appended: int
    completed: int
    duplicates: int


class Journal(Protocol):
    """What the live-events pipeline, ingress and operators need from an event store."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background work (group commits, pruning) until cancelled."""
        ...

    async def append(self, event: WebhookEvent) -> JournalEntry:
        """Record ``event``; return only once it is as durable as the backend makes it.

        Raises ``JournalFullError`` when ``max_pending`` events are already pending, and
        ``DuplicateDeliveryError`` when its delivery id was seen on its path in the window.
        """
        ...

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        """Mark ``entry`` finished with ``status``; it will not be replayed."""
        ...

    async def flush(self) -> None:
        """Wait until every ``complete`` made so far is recorded."""
        ...

    async def unfinished(self) -> list[JournalEntry]:
        """Pending entries in arrival order (replayed on start-up)."""
        ...

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        """Journaled events, oldest first, optionally of one status."""
        ...

    async def replay(self, seqs: Sequence[int] | None = None) -> list[JournalEntry]:
        """Make dead or rejected events pending again (all dead ones when ``seqs`` is None)."""
        ...

    async def purge(self, statuses: Sequence[EventStatus] = KEPT_STATUSES) -> int:
        """Delete finished events of ``statuses``; returns how many went."""
        ...

    def statistics(self) -> JournalStatistics: ...


class MemoryJournal:
    """Keeps events in memory only: Ocean's behaviour, lost on restart.

    Still bounded: at most ``max_pending`` events wait at once (beyond that ``append``
    refuses and ingress answers 503), at most ``max_records`` dead or rejected events are
    kept, and at most ``max_deliveries`` delivery ids are remembered for dedup.
    """

    def __init__(
        self,
        *,
        max_pending: int,
        dedup_window_seconds: float = DEDUP_WINDOW_SECONDS,
        max_records: int = 1000,
        max_deliveries: int = 100_000,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._window = dedup_window_seconds
        self._max_deliveries = max_deliveries
        self._pending: dict[int, JournalEntry] = {}
        self._kept: collections.OrderedDict[int, JournalRecord] = collections.OrderedDict()
        self._max_records = max_records
        self._deliveries: collections.OrderedDict[tuple[str, str], tuple[float, str]] = (
            collections.OrderedDict()
        )
        self._next_seq = 1
        self._appended = 0
        self._completed = 0
        self._duplicates = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def append(self, event: WebhookEvent) -> JournalEntry:
        await trio.lowlevel.checkpoint()
        if len(self._pending) >= self._max_pending:
            raise JournalFullError(
                f"{len(self._pending)} events are pending (limit {self._max_pending})"
            )
        if event.delivery_id is not None:
            self._check_delivery(event)
        entry = JournalEntry(self._next_seq, event)
        self._next_seq += 1
        self._pending[entry.seq] = entry
        self._appended += 1
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
        if status in KEPT_STATUSES:
            self._kept[entry.seq] = JournalRecord(
                entry.seq, entry.event, status, error, attempts, time.time()
            )
            while len(self._kept) > self._max_records:
                self._kept.popitem(last=False)

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def unfinished(self) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        return sorted(self._pending.values(), key=lambda e: e.seq)

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        await trio.lowlevel.checkpoint()
        pending = [
            JournalRecord(e.seq, e.event, EventStatus.PENDING, None, 0, e.event.received_at)
            for e in self._pending.values()
        ]
        found = sorted([*pending, *self._kept.values()], key=lambda r: r.seq)
        return [r for r in found if status is None or r.status is status][:limit]

    async def replay(self, seqs: Sequence[int] | None = None) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        chosen = [
            s
            for s, r in self._kept.items()
            if (seqs is None and r.status is EventStatus.DEAD) or (seqs is not None and s in seqs)
        ]
        entries = []
        for seq in chosen:
            record = self._kept.pop(seq)
            entry = JournalEntry(seq, record.event)
            self._pending[seq] = entry
            entries.append(entry)
        return entries

    async def purge(self, statuses: Sequence[EventStatus] = KEPT_STATUSES) -> int:
        await trio.lowlevel.checkpoint()
        gone = [s for s, r in self._kept.items() if r.status in statuses]
        for seq in gone:
            del self._kept[seq]
        return len(gone)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            pending=len(self._pending),
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
            duplicates=self._duplicates,
        )
