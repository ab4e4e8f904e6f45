"""Both journal backends: append, complete, replay order, dedup, limits, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from ocean_trio._exceptions import DuplicateDeliveryError, JournalFullError
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import EventStatus, Journal, MemoryJournal
from ocean_trio.live_events._sqlite_journal import SqliteJournal

Opener = Callable[..., "AsyncIterator[Journal]"]


@asynccontextmanager
async def running(journal: Journal) -> AsyncIterator[Journal]:
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        yield journal
        nursery.cancel_scope.cancel()


@pytest.fixture(params=["memory", "sqlite"])
def open_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    @asynccontextmanager
    async def opener(**options: float) -> AsyncIterator[Journal]:
        if request.param == "memory":
            async with running(
                MemoryJournal(max_pending=int(options.pop("max_pending", 100)), **options)
            ) as j:
                yield j
        else:
            async with (
                SqliteJournal.open(
                    tmp_path / "journal.sqlite3",
                    max_pending=int(options.pop("max_pending", 100)),
                    **options,
                ) as journal,
                running(journal) as j,
            ):
                yield j

    return opener


def event(n: int, *, delivery: str | None = None, path: str = "/webhook") -> WebhookEvent:
    return WebhookEvent.from_body(
        path,
        f'{{"n": {n}}}'.encode(),
        {"n": n},
        {"x": "y"},
        group_id=f"g{n % 2}",
        delivery_id=delivery,
    )


async def test_unfinished_events_come_back_in_arrival_order(open_journal: Opener) -> None:
    async with open_journal() as journal:
        entries = [await journal.append(event(n)) for n in range(5)]
        await journal.complete(entries[1], EventStatus.DONE)
        await journal.complete(entries[3], EventStatus.NO_MATCH)
        await journal.flush()
        unfinished = await journal.unfinished()
        assert [e.event.payload["n"] for e in unfinished] == [0, 2, 4]
        assert [e.seq for e in unfinished] == sorted(e.seq for e in unfinished)
        assert unfinished[0].event.group_id == "g0"
        assert unfinished[0].event.body == b'{"n": 0}'
        assert journal.statistics().pending == 3


async def test_sqlite_events_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal.open(path, max_pending=10) as journal, running(journal):
        first = await journal.append(event(1, delivery="d-1"))
        await journal.append(event(2))
        await journal.complete(first, EventStatus.DONE)
        await journal.flush()
    async with SqliteJournal.open(path, max_pending=10) as journal, running(journal):
        [entry] = await journal.unfinished()
        assert entry.event.payload == {"n": 2}
        assert entry.event.headers == {"x": "y"}
        assert journal.statistics().pending == 1
        # dedup holds across the restart
        with pytest.raises(DuplicateDeliveryError) as duplicate:
            await journal.append(event(3, delivery="d-1"))
        assert str(duplicate.value) == first.event.trace_id


async def test_a_delivery_id_counts_once_per_path_within_the_window(open_journal: Opener) -> None:
    async with open_journal() as journal:
        await journal.append(event(1, delivery="abc"))
        with pytest.raises(DuplicateDeliveryError):
            await journal.append(event(2, delivery="abc"))
        await journal.append(event(3, delivery="abc", path="/other"))
        await journal.append(event(4))
        await journal.append(event(5))
        assert journal.statistics().duplicates == 1
        assert len(await journal.unfinished()) == 4


async def test_an_expired_delivery_id_is_accepted_again(open_journal: Opener) -> None:
    # a negative window puts every earlier delivery outside it, without waiting for time to pass
    async with open_journal(dedup_window_seconds=-1.0) as journal:
        await journal.append(event(1, delivery="abc"))
        await journal.append(event(2, delivery="abc"))
        assert len(await journal.unfinished()) == 2


async def test_a_full_journal_refuses_until_events_complete(open_journal: Opener) -> None:
    async with open_journal(max_pending=2) as journal:
        first = await journal.append(event(1))
        await journal.append(event(2))
        with pytest.raises(JournalFullError, match="2 events are pending"):
            await journal.append(event(3))
        await journal.complete(first, EventStatus.DONE)
        await journal.append(event(3))


async def test_dead_letters_are_listed_replayed_and_purged(open_journal: Opener) -> None:
    async with open_journal() as journal:
        entries = [await journal.append(event(n)) for n in range(4)]
        await journal.complete(entries[0], EventStatus.DEAD, "handler failed: boom", attempts=4)
        await journal.complete(entries[1], EventStatus.REJECTED, "authentication failed")
        await journal.complete(entries[2], EventStatus.DONE)
        await journal.flush()
        [dead] = await journal.records(EventStatus.DEAD)
        assert (dead.seq, dead.error, dead.attempts) == (entries[0].seq, "handler failed: boom", 4)
        assert dead.to_json()["status"] == "dead"
        [rejected] = await journal.records(EventStatus.REJECTED)
        assert rejected.event.payload == {"n": 1}

        replayed = await journal.replay()
        assert [e.seq for e in replayed] == [entries[0].seq]
        assert [e.seq for e in await journal.unfinished()] == [entries[0].seq, entries[3].seq]
        assert await journal.records(EventStatus.DEAD) == []
        # rejected ones are replayed only by id
        assert [e.seq for e in await journal.replay([entries[1].seq])] == [entries[1].seq]
        await journal.complete(replayed[0], EventStatus.DEAD, "again")
        await journal.flush()
        assert await journal.purge() == 1
        assert await journal.records(EventStatus.DEAD) == []


async def test_sqlite_prunes_old_finished_events(tmp_path: Path) -> None:
    async with SqliteJournal.open(
        tmp_path / "j.sqlite3", max_pending=10, retention_seconds=0.0
    ) as journal:
        async with running(journal):
            done = await journal.append(event(1))
            await journal.complete(done, EventStatus.DONE)
            dead = await journal.append(event(2))
            await journal.complete(dead, EventStatus.DEAD, "x")
            await journal.flush()
        async with running(journal):  # pruning runs when the writer starts
            assert [r.status for r in await journal.records()] == [EventStatus.DEAD]
