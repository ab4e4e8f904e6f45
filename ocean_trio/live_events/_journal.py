"""The journal: where an accepted live event is recorded before it is acknowledged.

Ingress appends and answers 2xx only once ``append`` returns; a worker calls ``complete``
once the event's entities are applied (or it ended otherwise). The journal is the source of
truth for what is pending: pipelines keep a bounded window of it in memory and page the
rest (``pending_page``), so a backlog of any size (a restart after an outage, a replay of
many dead letters) never has to fit in memory. Finished events stay as records for a while:
dead letters until purged or replayed, the others until pruned.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import trio

from ._event import WebhookEvent
from ._headers import mask_headers

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


def stored_payload(body: bytes, *, parse: bool) -> dict[str, Any]:
    """The payload of a body read back from storage: ``UNPARSED`` (the pipeline parses it
    with the ingress's limits), or parsed for display (``{}`` if it cannot be)."""
    if not parse:
        return UNPARSED
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


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

AppendedElsewhere = Callable[[int], None]
"""Called by the journal with a ``seq``: pending events numbered up to it may exist that
were not admitted in this process (a replay, or another process appended them); pipelines
page them in from the journal. Called before any ``Admit`` of a higher ``seq``.
"""


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
            data["headers"] = mask_headers(self.event.headers)
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

    @property
    def failure(self) -> str | None:
        """Why the journal cannot record events now (its server is unreachable), else None."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background work (group commits, pruning) until cancelled."""
        ...

    def watch(self, appended_elsewhere: AppendedElsewhere) -> None:
        """Report replays, and events appended by other processes, to ``appended_elsewhere``
        from now on. Only the processing side watches."""
        ...

    async def look_elsewhere(self) -> None:
        """Look now for events other processes appended (one of them said it did)."""
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

    async def record(self, seq: int) -> JournalRecord | None:
        """The event numbered ``seq`` as it stands, payload parsed; None if not kept."""
        ...

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        """Append dead or rejected events again, at the tail, as pending.

        ``seqs=None`` replays every dead event. A replayed event keeps its trace id, body
        and headers and gets a new ``seq``; numbers that are unknown or not dead/rejected
        are reported, not replayed. The replayed events reach the watcher (``watch``).
        """
        ...

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        """Delete finished events of ``statuses``; returns how many went."""
        ...

    def statistics(self) -> JournalStatistics: ...
