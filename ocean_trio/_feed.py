"""``LiveFeed``: events as they are accepted and finished, broadcast over ``/live/feed``.

The feed is an ``EventMonitor``: each event is turned into JSON once, then offered to every
subscriber (the live page, ``ocean-trio events tail``). A subscriber's buffer is bounded;
when it is full the subscriber only counts what it missed, by status, and its client is
sent those counts instead: a slow client never slows ingestion, nor grows memory. Each
connection sends what gathered in batches, at most every ``BATCH_SECONDS``.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import quart
import trio

from ._version import __version__
from .live_events._journal import EventStatus, JournalEntry
from .live_events._monitor import Received
from .live_events._outcome import EventOutcome

if TYPE_CHECKING:
    from ._app import App

BATCH_SECONDS = 0.1  # a connection sends at most this often
STATS_SECONDS = 1.0  # and the counters this often
MAX_BATCH = 500  # events in one message
SUBSCRIBER_BUFFER = 2000  # events a subscriber holds for its client before counting drops
MAX_SUBSCRIBERS = 32  # connections at once; more are refused

_STATUSES = frozenset(s.value for s in EventStatus)


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
    """Broadcasts this process's accepted and finished events to its subscribers."""

    def __init__(self, *, buffer: int | None = None) -> None:
        self._buffer = buffer
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
            text = event_json("finished", entry, outcome, seconds)
            self._publish(entry.event.path, outcome.status.value, text)

    def _publish(self, path: str, status: str, text: str) -> None:
        for subscriber in self._subscribers:
            subscriber.offer(path, status, text)


def event_json(
    kind: str,
    entry: JournalEntry,
    outcome: EventOutcome | None = None,
    seconds: float | None = None,
) -> str:
    """One feed event (the contract in docs/operations.md), as JSON text."""
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
                "error": run.error,
            }
            for run in runs
        ],
        "duration_ms": None if seconds is None else round(seconds * 1000, 3),
        "latency_ms": None if outcome is None else round((now - event.received_at) * 1000, 3),
        "upserts": 0 if outcome is None else outcome.upserts,
        "deletes": 0 if outcome is None else outcome.deletes,
        "error": None if outcome is None else outcome.error,
        "at": now,
    }
    return json.dumps(data, separators=(",", ":"), default=str)


def feed_blueprint(app: App) -> quart.Blueprint:
    """``/live/feed``: the WebSocket streaming ``app.feed`` (see docs/operations.md)."""
    bp = quart.Blueprint("feed", __name__)

    @bp.websocket("/live/feed")
    async def feed() -> Any:
        args = quart.websocket.args
        paths = _values(args.getlist("path"))
        statuses = _values(args.getlist("status"))
        if statuses is not None and not statuses <= _STATUSES:
            unknown = ", ".join(sorted(statuses - _STATUSES))
            return _refuse(
                400, f"unknown status {unknown} (one of: {', '.join(sorted(_STATUSES))})"
            )
        if app.feed.subscribers >= MAX_SUBSCRIBERS:
            return _refuse(503, f"the feed has {MAX_SUBSCRIBERS} clients already; try later")
        if paths is not None:
            paths = frozenset("/" + p.strip("/") for p in paths)
        await quart.websocket.accept()
        with app.feed.subscribe(paths, statuses) as subscriber:
            await quart.websocket.send(json.dumps(_hello(app)))
            await _stream(app, subscriber)
        return None

    return bp


async def _stream(app: App, subscriber: Subscriber) -> None:
    next_stats = trio.current_time()
    while True:
        with trio.move_on_at(next_stats):
            await subscriber.wait()
        texts, dropped = subscriber.take(MAX_BATCH)
        if texts:
            await quart.websocket.send('{"type":"events","events":[' + ",".join(texts) + "]}")
        if dropped:
            message = {"type": "dropped", "events": sum(dropped.values()), "by_status": dropped}
            await quart.websocket.send(json.dumps(message))
        if trio.current_time() >= next_stats:
            await quart.websocket.send(json.dumps(feed_stats(app)))
            next_stats = trio.current_time() + STATS_SECONDS
        await trio.sleep(BATCH_SECONDS)  # what arrives meanwhile goes in the next batch


def _hello(app: App) -> dict[str, Any]:
    return {
        "type": "hello",
        "version": __version__,
        "role": app.settings.role,
        "processing": app.processing,
        "pid": os.getpid(),
        "paths": sorted(p.path for p in app.pipelines.values()),
        "admin": bool(app.settings.admin.token),
    }


def feed_stats(app: App) -> dict[str, Any]:
    """The counters a ``stats`` message carries."""
    finished: collections.Counter[str] = collections.Counter()
    accepted = 0
    for pipeline in app.pipelines.values():
        stats = pipeline.statistics()
        accepted += stats.accepted
        finished.update(stats.outcomes)
    return {
        "type": "stats",
        "accepted": accepted,
        "finished": dict(finished),
        "pending": app.journal.statistics().pending,
        "resync": app.resync_json(),
    }


def _values(raw: list[str]) -> frozenset[str] | None:
    values = frozenset(v.strip() for item in raw for v in item.split(",") if v.strip())
    return values or None


def _refuse(status: int, message: str) -> quart.Response:
    return quart.Response(
        json.dumps({"error": message}), status=status, content_type="application/json"
    )
