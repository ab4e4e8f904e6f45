"""The journal: where an accepted live event is recorded before it is acknowledged.

Ingress appends and answers 2xx only once ``append`` returns; a worker calls ``complete``
once the event's entities are applied (or it ended otherwise). On start-up, ``unfinished``
gives back what was accepted but not completed, in arrival order, to be processed again.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs
import trio

from .._exceptions import JournalFullError
from ._event import WebhookEvent


class EventStatus(enum.StrEnum):
    """Where an event stands; only ``PENDING`` events are replayed."""

    PENDING = "pending"
    DONE = "done"
    NO_MATCH = "no_match"
    REJECTED = "rejected"
    FAILED = "failed"


@attrs.frozen(eq=False)
class JournalEntry:
    """An accepted event and its position in the journal (``seq`` grows with arrival)."""

    seq: int
    event: WebhookEvent


@attrs.frozen
class JournalStatistics:
    pending: int
    max_pending: int
    appended: int
    completed: int


class Journal(Protocol):
    """What the live-events pipeline needs from an event store."""

    async def append(self, event: WebhookEvent) -> JournalEntry:
        """Record ``event``; return only once it is as durable as the backend makes it.

        Raises ``JournalFullError`` when ``max_pending`` events are already pending.
        """
        ...

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None
    ) -> None:
        """Mark ``entry`` finished with ``status``; it will not be replayed."""
        ...

    async def unfinished(self) -> list[JournalEntry]:
        """Pending entries in arrival order (replayed on start-up)."""
        ...

    def statistics(self) -> JournalStatistics: ...


class MemoryJournal:
    """Keeps pending events in memory only: Ocean's behaviour, lost on restart.

    Still bounded: at most ``max_pending`` events wait at once, beyond that ``append``
    refuses (and ingress answers 503) instead of growing without limit.
    """

    def __init__(self, *, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._pending: dict[int, JournalEntry] = {}
        self._next_seq = 1
        self._appended = 0
        self._completed = 0

    async def append(self, event: WebhookEvent) -> JournalEntry:
        await trio.lowlevel.checkpoint()
        if len(self._pending) >= self._max_pending:
            raise JournalFullError(
                f"{len(self._pending)} events are pending (limit {self._max_pending})"
            )
        entry = JournalEntry(self._next_seq, event)
        self._next_seq += 1
        self._pending[entry.seq] = entry
        self._appended += 1
        return entry

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None
    ) -> None:
        await trio.lowlevel.checkpoint()
        if self._pending.pop(entry.seq, None) is not None:
            self._completed += 1

    async def unfinished(self) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        return sorted(self._pending.values(), key=lambda e: e.seq)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            pending=len(self._pending),
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
        )
