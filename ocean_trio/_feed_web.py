"""``/live/feed``: the WebSocket streaming the app's ``LiveFeed`` (the contract: docs/operations.md).

Each connection sends what gathered for it in batches, at most every ``BATCH_SECONDS``, and
the counters every ``STATS_SECONDS``.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any

import quart
import trio

from ._app import WEBHOOK_PREFIX, App
from ._feed import Subscriber
from ._version import __version__
from .live_events._journal import EventStatus

BATCH_SECONDS = 0.1  # a connection sends at most this often
STATS_SECONDS = 1.0  # and the counters this often
MAX_BATCH = 500  # events in one message
MAX_SUBSCRIBERS = 32  # connections at once; more are refused
GOING_AWAY = 1001  # the close code when the app stops (RFC 6455)

_STATUSES = frozenset(s.value for s in EventStatus)


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
            paths = frozenset(_webhook_path(p) for p in paths)
        await quart.websocket.accept()
        with app.feed.subscribe(paths, statuses) as subscriber:
            await quart.websocket.send(json.dumps(_hello(app)))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stream, app, subscriber)
                # Shutdown does not wait for feed clients: they are told to come back later.
                await app.stopping.wait()
                nursery.cancel_scope.cancel()
        await quart.websocket.close(GOING_AWAY, "the integration is stopping")
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


def _webhook_path(given: str) -> str:
    """A pipeline's path (``/webhook``) from ``webhook``, ``/webhook`` or ``/integration/webhook``."""
    path = "/" + given.strip("/")
    prefixed = path.startswith(WEBHOOK_PREFIX + "/")
    return path[len(WEBHOOK_PREFIX) :] if prefixed else path


def _values(raw: list[str]) -> frozenset[str] | None:
    values = frozenset(v.strip() for item in raw for v in item.split(",") if v.strip())
    return values or None


def _refuse(status: int, message: str) -> quart.Response:
    return quart.Response(
        json.dumps({"error": message}), status=status, content_type="application/json"
    )
