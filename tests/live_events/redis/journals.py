"""Helpers for the redis journal's tests: events, a running journal, what its reader reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import coredis
import trio

from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import JournalEntry
from ocean_trio.live_events._redis_journal import RedisJournal

from .conftest import RedisServer

PATH = "/hook"


def event(
    n: int = 0, *, path: str = PATH, group: str | None = None, delivery: str | None = None
) -> WebhookEvent:
    """Event number ``n`` (its body says ``n``), with an optional group and delivery id."""
    payload = {"n": n}
    return WebhookEvent.from_body(
        path,
        json.dumps(payload).encode(),
        payload,
        {"x-test": str(n)},
        group_id=group,
        delivery_id=delivery,
    )


def number(entry: JournalEntry) -> int:
    """The ``n`` of an entry read back (unparsed) from the journal."""
    body: dict[str, Any] = json.loads(entry.event.body)
    return int(body["n"])


def never(entry: JournalEntry) -> None:
    raise AssertionError(f"the redis journal admitted {entry} itself")


class Reads:
    """The reader's reports (``appended_elsewhere``): the high local seq, and the most held."""

    def __init__(self, journal: RedisJournal) -> None:
        self._journal = journal
        self.high = 0
        self.most_held = 0
        self._event = trio.Event()

    def __call__(self, high: int) -> None:
        assert high > self.high, "reports grow"
        self.high = high
        self.most_held = max(self.most_held, self._journal.held)
        self._event.set()
        self._event = trio.Event()

    async def wait_for(self, high: int) -> None:
        """Wait until the reader reported local seq ``high``."""
        while self.high < high:
            await self._event.wait()


@asynccontextmanager
async def running(
    server: RedisServer,
    instance_id: str = "one",
    *,
    watch: bool = True,
    max_pending: int = 1000,
    max_in_memory: int = 1000,
    paths: frozenset[str] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[RedisJournal, Reads]]:
    """A journal on ``server`` whose ``run`` goes on for the block (watched unless told)."""
    async with RedisJournal.open(
        server.settings(**settings),
        instance_id=instance_id,
        max_pending=max_pending,
        dedup_window_seconds=3600,
        max_in_memory=max_in_memory,
        paths=paths,
    ) as journal:
        reads = Reads(journal)
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            if watch:
                journal.watch(reads)
            yield journal, reads
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    """A plain client, to look at (or tamper with) what the journal keeps in Redis."""
    async with coredis.Redis.from_url(server.url, decode_responses=False) as client:
        yield client


async def page(journal: RedisJournal, path: str = PATH, after: int = 0) -> list[JournalEntry]:
    return await journal.pending_page(path, after=after, limit=10_000, max_bytes=1 << 30)
