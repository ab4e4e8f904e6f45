"""``LiveFeed``: events as they are accepted and finished, broadcast over ``/live/feed``.

The feed is an ``EventMonitor``: each event is turned into JSON once, then offered to every
subscriber (the live page, ``ocean-trio events tail``). A subscriber's buffer is bounded;
when it is full the subscriber only counts what it missed, by status, and its client is
sent those counts instead: a slow client never slows ingestion, nor grows memory. The
WebSocket route is ``_feed_web``.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from .live_events._journal import JournalEntry
from .live_events._monitor import Received
from .live_events._outcome import EventOutcome

SUBSCRIBER_BUFFER = 2000  # events a subscriber holds for its client before counting drops


class Subscriber:
    """One client's view of the feed: its filters, its bounded buffer, what it dropped."""

    def __init__(
        self, paths: frozenset[str] | None, statuses: frozenset[str] | None, limit: int
    ) -> None:
        self._paths = paths
        self._statuses = statuses
        self._limit = limit
        self._buffer: collections.deque[str] = collections.deque()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._ready = trio.Event()

    def offer(self, path: str, status: str, text: str) -> None:
        """Buffer one event's JSON (if it passes the filters), or count it as dropped."""
        if self._paths is not None and path not in self._paths:
            return
        if self._statuses is not None and status not in self._statuses:
            return
        if len(self._buffer) < self._limit:
            self._buffer.append(text)
        else:
            self._dropped[status] += 1
        self._ready.set()

    async def wait(self) -> None:
        """Until something was offered since the last ``take``."""
        await self._ready.wait()

    def take(self, limit: int) -> tuple[list[str], dict[str, int]]:
        """Up to ``limit`` buffered events, and the drops counted since the last take."""
        count = min(limit, len(self._buffer))
        texts = [self._buffer.popleft() for _ in range(count)]
        dropped = dict(self._dropped)
        self._dropped.clear()
        if not self._buffer:
            self._ready = trio.Event()
        return texts, dropped


class LiveFeed:
    """Broadcasts this process's accepted and finished events to its subscribers.

    ``mask`` is applied to error texts: the feed needs no token, and a processor's error may
    quote a secret of the settings."""

    def __init__(
        self, *, buffer: int | None = None, mask: Callable[[str], str] | None = None
    ) -> None:
        self._buffer = buffer
        self._mask = mask
        self._subscribers: set[Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextmanager
    def subscribe(
        self, paths: frozenset[str] | None = None, statuses: frozenset[str] | None = None
    ) -> Iterator[Subscriber]:
        """A subscriber for the block's duration (filters: ``None`` lets everything through)."""
        subscriber = Subscriber(paths, statuses, self._buffer or SUBSCRIBER_BUFFER)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    # --- EventMonitor ------------------------------------------------------------------------

    def received(self, path: str, result: Received) -> None:
        pass  # refusals are counted by the metrics; the feed shows journaled events

    def accepted(self, entry: JournalEntry) -> None:
        if self._subscribers:
            self._publish(entry.event.path, "pending", event_json("accepted", entry))

    def finished(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        if self._subscribers:
            text = event_json("finished", entry, outcome, seconds, mask=self._mask)
            self._publish(entry.event.path, outcome.status.value, text)

    def _publish(self, path: str, status: str, text: str) -> None:
        for subscriber in self._subscribers:
            subscriber.offer(path, status, text)


def event_json(
    kind: str,
    entry: JournalEntry,
    outcome: EventOutcome | None = None,
    seconds: float | None = None,
    *,
    mask: Callable[[str], str] | None = None,
) -> str:
    """One feed event (the contract in docs/operations.md), as JSON text; ``mask`` is
    applied to its error texts."""

    def error(text: str | None) -> str | None:
        return text if text is None or mask is None else mask(text)

    event = entry.event
    now = time.time()
    runs = outcome.runs if outcome is not None else ()
    data: dict[str, Any] = {
        "kind": kind,
        "seq": entry.seq,
        "trace_id": event.trace_id,
        "delivery_id": event.delivery_id,
        "path": event.path,
        "status": "pending" if outcome is None else outcome.status.value,
        "processors": sorted({run.processor for run in runs}),
        "runs": [
            {
                "processor": run.processor,
                "kind": run.kind,
                "status": run.status.value,
                "attempts": run.attempts,
                "error": error(run.error),
            }
            for run in runs
        ],
        "duration_ms": None if seconds is None else round(seconds * 1000, 3),
        "latency_ms": None if outcome is None else round((now - event.received_at) * 1000, 3),
        "upserts": 0 if outcome is None else outcome.upserts,
        "deletes": 0 if outcome is None else outcome.deletes,
        "error": None if outcome is None else error(outcome.error),
        "at": now,
    }
    return json.dumps(data, separators=(",", ":"), default=str)
