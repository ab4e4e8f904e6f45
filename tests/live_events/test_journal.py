"""Both journal backends: append, complete, replay order, dedup, limits, dead letters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import pytest
import trio

from ocean_trio._exceptions import DuplicateDeliveryError, JournalFullError
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import (
    DEDUP_WINDOW_SECONDS,
    EventStatus,
    Journal,
    JournalEntry,
)
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.live_events._sqlite_journal import SqliteJournal


class Opener(Protocol):
    def __call__(
        self, *, max_pending: int = ..., dedup_window_seconds: float = ...
    ) -> AbstractAsyncContextManager[Journal]: ...


@asynccontextmanager
async def running(journal: Journal) -> AsyncIterator[Journal]:
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        yield journal
        nursery.cancel_scope.cancel()


@pytest.fixture(params=["memory", "sqlite"])
def open_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    @asynccontextmanager
    async def opener(
        *, max_pending: int = 100, dedup_window_seconds: float = DEDUP_WINDOW_SECONDS
    ) -> AsyncIterator[Journal]:
        if request.param == "memory":
            async with running(
                MemoryJournal(max_pending=max_pending, dedup_window_seconds=dedup_window_seconds)
            ) as j:
                yield j
        else:
            async with (
                SqliteJournal.open(
                    tmp_path / "journal.sqlite3",
                    max_pending=max_pending,
                    dedup_window_seconds=dedup_window_seconds,
                ) as journal,
                running(journal) as j,
            ):
                yield j

    return opener


def _ignore(entry: JournalEntry) -> None:
    pass


async def pending(journal: Journal, path: str = "/webhook") -> list[JournalEntry]:
    """Every pending entry of ``path``, paged as a pipeline pages them."""
    found: list[JournalEntry] = []
    while page := await journal.pending_page(
        path, after=found[-1].seq if found else 0, limit=2, max_bytes=1 << 20
    ):
        found += page
    return found


def event(n: int, *, delivery: str | None = None, path: str = "/webhook") -> WebhookEvent:
    return WebhookEvent.from_body(
        path,
        f'{{"n": {n}}}'.encode(),
        {"n": n},
        {"x": "y"},
        group_id=f"g{n % 2}",
        delivery_id=delivery,
    )


async def test_pending_events_are_paged_back_in_arrival_order(open_journal: Opener) -> None:
    async with open_journal() as journal:
        entries = [await journal.append(event(n), _ignore) for n in range(5)]
        await journal.append(event(9, path="/other"), _ignore)
        await journal.complete(entries[1], EventStatus.DONE)
        await journal.complete(entries[3], EventStatus.NO_MATCH)
        await journal.flush()
        unfinished = await pending(journal)
        assert [json.loads(e.event.body)["n"] for e in unfinished] == [0, 2, 4]
        assert [e.seq for e in unfinished] == sorted(e.seq for e in unfinished)
        assert unfinished[0].event.group_id == "g0"
        assert unfinished[0].event.body == b'{"n": 0}'
        assert journal.statistics().pending == 4
        assert await journal.pending_counts() == {"/webhook": 3, "/other": 1}
        assert journal.last_seq == entries[-1].seq + 1


async def test_a_page_stops_at_its_byte_budget_but_holds_one_entry(open_journal: Opener) -> None:
    async with open_journal() as journal:
        for n in range(10, 14):  # bodies of 9 bytes
            await journal.append(event(n), _ignore)
        page = await journal.pending_page("/webhook", after=0, limit=10, max_bytes=20)
        assert len(page) == 2
        page = await journal.pending_page("/webhook", after=0, limit=10, max_bytes=1)
        assert len(page) == 1


async def test_admit_is_called_in_seq_order_before_append_returns(open_journal: Opener) -> None:
    admitted: list[int] = []
    returned: list[int] = []
    async with open_journal() as journal:

        async def append(n: int) -> None:
            entry = await journal.append(event(n), lambda e: admitted.append(e.seq))
            assert entry.seq in admitted
            returned.append(entry.seq)

        async with trio.open_nursery() as nursery:
            for n in range(20):  # concurrent: the SQLite journal commits them in groups
                nursery.start_soon(append, n)
    assert admitted == sorted(admitted)
    assert sorted(returned) == admitted


async def test_sqlite_events_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal.open(path, max_pending=10) as journal, running(journal):
        first = await journal.append(event(1, delivery="d-1"), _ignore)
        await journal.append(event(2), _ignore)
        await journal.complete(first, EventStatus.DONE)
        await journal.flush()
    async with SqliteJournal.open(path, max_pending=10) as journal, running(journal):
        [entry] = await pending(journal)
        assert not entry.parsed  # read back from storage: its body is parsed by the pipeline
        assert json.loads(entry.event.body) == {"n": 2}
        assert entry.event.headers == {"x": "y"}
        assert journal.statistics().pending == 1
        # dedup holds across the restart
        with pytest.raises(DuplicateDeliveryError) as duplicate:
            await journal.append(event(3, delivery="d-1"), _ignore)
        assert str(duplicate.value) == first.event.trace_id


async def test_a_delivery_id_counts_once_per_path_within_the_window(open_journal: Opener) -> None:
    async with open_journal() as journal:
        await journal.append(event(1, delivery="abc"), _ignore)
        with pytest.raises(DuplicateDeliveryError):
            await journal.append(event(2, delivery="abc"), _ignore)
        await journal.append(event(3, delivery="abc", path="/other"), _ignore)
        await journal.append(event(4), _ignore)
        await journal.append(event(5), _ignore)
        assert journal.statistics().duplicates == 1
        assert len(await pending(journal)) + len(await pending(journal, "/other")) == 4


async def test_an_expired_delivery_id_is_accepted_again(open_journal: Opener) -> None:
    # a negative window puts every earlier delivery outside it, without waiting for time to pass
    async with open_journal(dedup_window_seconds=-1.0) as journal:
        await journal.append(event(1, delivery="abc"), _ignore)
        await journal.append(event(2, delivery="abc"), _ignore)
        assert len(await pending(journal)) == 2


async def test_a_full_journal_refuses_until_events_complete(open_journal: Opener) -> None:
    async with open_journal(max_pending=2) as journal:
        first = await journal.append(event(1), _ignore)
        await journal.append(event(2), _ignore)
        with pytest.raises(JournalFullError, match="2 events are pending"):
            await journal.append(event(3), _ignore)
        await journal.complete(first, EventStatus.DONE)
        await journal.append(event(3), _ignore)


async def test_dead_letters_are_listed_replayed_and_purged(open_journal: Opener) -> None:
    async with open_journal() as journal:
        entries = [await journal.append(event(n), _ignore) for n in range(4)]
        await journal.complete(entries[0], EventStatus.DEAD, "handler failed: boom", attempts=4)
        await journal.complete(entries[1], EventStatus.REJECTED, "authentication failed")
        await journal.complete(entries[2], EventStatus.DONE)
        await journal.flush()
        [dead] = await journal.records(EventStatus.DEAD)
        assert (dead.seq, dead.error, dead.attempts) == (entries[0].seq, "handler failed: boom", 4)
        assert dead.to_json()["status"] == "dead"
        [rejected] = await journal.records(EventStatus.REJECTED)
        assert rejected.event.payload == {"n": 1}

        result = await journal.replay()
        [replayed] = result.replayed
        # appended again at the tail: a new number, the same event
        assert replayed.old_seq == entries[0].seq
        assert replayed.seq > entries[3].seq
        assert replayed.path == "/webhook"
        again = await pending(journal)
        assert [e.seq for e in again] == [entries[3].seq, replayed.seq]
        assert again[1].event.trace_id == entries[0].event.trace_id
        assert await journal.records(EventStatus.DEAD) == []
        assert journal.statistics().pending == 2
        # rejected ones are replayed only by number; unknown and other numbers are reported
        result = await journal.replay([entries[1].seq, entries[2].seq, 999])
        assert [r.old_seq for r in result.replayed] == [entries[1].seq]
        assert result.missing == (999,)
        assert result.not_replayable == ((entries[2].seq, EventStatus.DONE),)
        assert result.problems() == [
            "event 999 does not exist",
            f"event {entries[2].seq} is done, not dead or rejected",
        ]
        await journal.complete(again[1], EventStatus.DEAD, "again")
        await journal.flush()
        assert await journal.purge() == 1
        assert await journal.records(EventStatus.DEAD) == []


async def test_sqlite_prunes_old_finished_events_but_dead_letters(tmp_path: Path) -> None:
    async with SqliteJournal.open(
        tmp_path / "j.sqlite3", max_pending=10, retention_seconds=0.0
    ) as journal:
        async with running(journal):
            for status in EventStatus:
                if status is not EventStatus.PENDING:
                    entry = await journal.append(event(1), _ignore)
                    await journal.complete(entry, status, "x")
            await journal.append(event(2), _ignore)
            await journal.flush()
        async with running(journal):  # pruning runs when the writer starts
            statuses = [r.status for r in await journal.records()]
            assert statuses == [EventStatus.DEAD, EventStatus.PENDING]


async def test_sqlite_keeps_at_most_max_finished_events(tmp_path: Path) -> None:
    # Unauthenticated junk (rejected) cannot grow the journal past the cap, retention or not.
    path = tmp_path / "j.sqlite3"
    async with SqliteJournal.open(path, max_pending=100, max_finished=3) as journal:
        async with running(journal):
            for n in range(10):
                entry = await journal.append(event(n), _ignore)
                await journal.complete(entry, EventStatus.REJECTED, "authentication failed")
            dead = await journal.append(event(99), _ignore)
            await journal.complete(dead, EventStatus.DEAD, "x")
            await journal.flush()
        async with running(journal):
            records = await journal.records()
            assert [json.loads(r.event.body)["n"] for r in records] == [7, 8, 9, 99]


async def test_memory_journal_drops_old_finished_events_but_dead_letters() -> None:
    journal = MemoryJournal(max_pending=10, retention_seconds=0.0, max_records=5)
    for status in (EventStatus.REJECTED, EventStatus.NO_MATCH, EventStatus.DEAD):
        entry = await journal.append(event(1), _ignore)
        await journal.complete(entry, status)
    assert [r.status for r in await journal.records()] == [EventStatus.DEAD]
