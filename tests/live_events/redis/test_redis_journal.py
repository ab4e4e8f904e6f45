"""The redis journal against a real redis-server: append, dedup, backpressure, paging,
completion, dead letters and replay, per-group order, bounded reads, Redis going away."""

from __future__ import annotations

import pytest
import trio

from ocean_trio import DuplicateDeliveryError, JournalFullError, JournalUnavailableError
from ocean_trio.live_events._journal import EventStatus, Journal, Replayed
from ocean_trio.live_events._redis_entries import RedisKeys, entry_parts
from ocean_trio.live_events._redis_journal import RedisJournal

from .conftest import RedisServer
from .journals import PATH, event, never, number, page, raw_client, running

SECONDS = 10  # every wait here takes well under a second; this is for a loaded CI machine


async def test_append_page_and_complete_round_trip(redis_server: RedisServer) -> None:
    async with running(redis_server) as (journal, reads), raw_client(redis_server) as redis:
        protocol: Journal = journal  # mypy checks that it is one
        assert protocol.last_seq == 0
        appended = [await journal.append(event(n), never) for n in range(3)]
        assert [entry.seq for entry in appended] == [1, 2, 3]  # the global seq
        await journal.append(event(9, path="/other"), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(4)
        entries = await page(journal)
        assert [number(e) for e in entries] == [0, 1, 2]
        assert [e.event.trace_id for e in entries] == [e.event.trace_id for e in appended]
        assert not entries[0].parsed
        assert entries[0].event.headers == {"x-test": "0"}
        assert [e.seq for e in await page(journal, after=entries[0].seq)] == [
            e.seq for e in entries[1:]
        ]
        assert await journal.pending_counts() == {PATH: 3, "/other": 1}
        for entry in entries:
            await journal.complete(entry, EventStatus.DONE)
        await journal.flush()
        assert await page(journal) == []
        assert await journal.pending_counts() == {"/other": 1}
        assert int(await redis.get("test:pending") or 0) == 1
        keys = RedisKeys("test", 16)
        lengths = [await redis.xlen(keys.stream(shard)) for shard in range(16)]
        assert sum(lengths) == 1  # acknowledged entries are deleted, not just acked
        stats = journal.statistics()
        assert (stats.appended, stats.completed, stats.pending) == (4, 3, 1)


async def test_dedup_is_atomic_across_instances(redis_server: RedisServer) -> None:
    async with (
        running(redis_server, "a", watch=False) as (a, _),
        running(redis_server, "b", watch=False) as (b, _),
    ):
        first = await a.append(event(1, delivery="d-1"), never)
        with pytest.raises(DuplicateDeliveryError) as raised:
            await b.append(event(2, delivery="d-1"), never)
        assert str(raised.value) == first.event.trace_id
        # The same delivery id on another path is another delivery.
        await b.append(event(3, path="/other", delivery="d-1"), never)

        stored: list[str] = []
        duplicates: list[str] = []

        async def deliver(journal: RedisJournal, n: int) -> None:
            try:
                entry = await journal.append(event(n, delivery="d-2"), never)
            except DuplicateDeliveryError as error:
                duplicates.append(str(error))
            else:
                stored.append(entry.event.trace_id)

        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(deliver, a if n % 2 else b, n)
        assert len(stored) == 1
        assert duplicates == stored * 39
        assert a.statistics().duplicates + b.statistics().duplicates == 40


async def test_append_refuses_beyond_max_pending_across_instances(
    redis_server: RedisServer,
) -> None:
    async with (
        running(redis_server, "a", watch=False, max_pending=3) as (a, _),
        running(redis_server, "b", max_pending=3) as (b, reads),
    ):
        for n in range(3):
            await (a if n % 2 else b).append(event(n), never)
        with pytest.raises(JournalFullError, match="3 events are pending"):
            await a.append(event(3), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(3)
        await b.complete((await page(b))[0], EventStatus.DONE)
        await b.flush()
        await a.append(event(4), never)  # room again
        with pytest.raises(JournalFullError):
            await b.append(event(5), never)


async def test_dead_letter_records_replay_and_purge(redis_server: RedisServer) -> None:
    async with running(redis_server) as (journal, reads):
        appended = [await journal.append(event(n), never) for n in range(3)]
        with trio.fail_after(SECONDS):
            await reads.wait_for(3)
        first, second, third = await page(journal)
        await journal.complete(first, EventStatus.DONE)
        await journal.complete(second, EventStatus.DEAD, "handler failed: boom", 4)
        await journal.flush()

        (dead,) = await journal.records(EventStatus.DEAD)
        assert (dead.seq, dead.status, dead.error, dead.attempts) == (
            appended[1].seq,
            EventStatus.DEAD,
            "handler failed: boom",
            4,
        )
        assert dead.event.trace_id == second.event.trace_id
        assert dead.event.payload == {"n": 1}
        every = await journal.records()
        assert [(r.seq, r.status) for r in every] == [
            (2, EventStatus.DEAD),
            (3, EventStatus.PENDING),
        ]

        result = await journal.replay([2, 3, 99])
        assert result.replayed == (Replayed(2, 4, PATH),)  # a new global seq, at the tail
        assert result.missing == (99,)
        assert result.not_replayable == ((3, EventStatus.PENDING),)
        assert await journal.records(EventStatus.DEAD) == []
        with trio.fail_after(SECONDS):
            await reads.wait_for(4)  # read again, as a new entry
        (again,) = await page(journal, after=third.seq)
        assert again.event.trace_id == second.event.trace_id
        assert number(again) == 1

        await journal.complete(again, EventStatus.DEAD, "still failing", 1)
        await journal.complete(third, EventStatus.DEAD, "failed too", 1)
        await journal.flush()
        assert [r.seq for r in await journal.records(EventStatus.DEAD)] == [3, 4]
        assert await journal.purge() == 2
        assert await journal.records() == []
        assert journal.statistics().pending == 0


async def test_a_group_stays_in_one_shard_in_order(redis_server: RedisServer) -> None:
    groups = [f"issue-{g}" for g in range(6)]
    async with running(redis_server) as (journal, reads), raw_client(redis_server) as redis:
        for n in range(60):
            await journal.append(event(n, group=groups[n % 6]), never)
        keys = RedisKeys("test", 16)
        shards_of: dict[str, set[int]] = {}
        for shard in range(16):
            for entry in await redis.xrange(keys.stream(shard)):
                group = entry_parts(entry)[1][b"group_id"].decode()
                shards_of.setdefault(group, set()).add(shard)
        assert all(len(shards) == 1 for shards in shards_of.values()), shards_of
        assert len(set().union(*shards_of.values())) > 1  # groups do spread over shards
        with trio.fail_after(SECONDS):
            await reads.wait_for(60)
        entries = await page(journal)
        for group in groups:
            read = [number(e) for e in entries if e.event.group_id == group]
            assert read == sorted(read)
            assert len(read) == 10


async def test_reads_stay_within_max_in_memory(redis_server: RedisServer) -> None:
    async with running(redis_server, max_in_memory=5) as (journal, reads):
        for n in range(30):
            await journal.append(event(n, group=str(n)), never)  # over many shards
        done = 0
        with trio.fail_after(SECONDS):
            while done < 30:
                await reads.wait_for(done + 1)
                for entry in await page(journal):
                    await journal.complete(entry, EventStatus.DONE)
                    done += 1
        assert reads.most_held == 5
        await journal.flush()
        assert journal.statistics().pending == 0


async def test_redis_down_then_back(redis_server: RedisServer) -> None:
    async with running(redis_server) as (journal, reads):
        await journal.append(event(1), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(1)
        redis_server.stop()
        with pytest.raises(JournalUnavailableError, match=r"127\.0\.0\.1"):
            await journal.append(event(2), never)
        redis_server.start()  # same port, empty (it kept nothing: no persistence)
        accepted = await journal.append(event(3), never)
        with trio.fail_after(SECONDS):
            # The reader recreates the group and takes the shards again on its own.
            await reads.wait_for(2)
        (held_before, read_after) = await page(journal)
        assert number(held_before) == 1  # read before the outage, still held here
        assert read_after.event.trace_id == accepted.event.trace_id
        await journal.complete(read_after, EventStatus.DONE)
        await journal.flush()
        assert journal.statistics().pending == 0


async def test_an_entry_written_by_someone_else_is_a_dead_letter_not_a_crash(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server) as (journal, reads), raw_client(redis_server) as redis:
        await journal.append(event(1), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(1)
        shard = RedisKeys("test", 16).shard_of(event(0))
        await redis.xadd(f"test:shard:{shard}", {"eventId": "x"})
        await journal.append(event(2), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(2)
        await journal.flush()
        (dead,) = await journal.records(EventStatus.DEAD)
        assert "not a journal entry" in (dead.error or "")
        assert [number(e) for e in await page(journal)] == [1, 2]


async def test_an_event_for_a_path_without_processors_here_is_a_dead_letter(
    redis_server: RedisServer,
) -> None:
    # Another version of the integration, with a path this one lacks, appended it: it must
    # not wait in this instance's memory for ever (it would fill max_in_memory).
    async with running(redis_server, paths=frozenset({PATH}), max_in_memory=2) as (
        journal,
        reads,
    ):
        for n in range(4):  # in the shard of group g, before event 9
            await journal.append(event(n, path="/elsewhere", group="g"), never)
        await journal.append(event(9, group="g"), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(1)
        assert [number(e) for e in await page(journal)] == [9]
        await journal.flush()
        dead = await journal.records(EventStatus.DEAD)
        assert [d.event.path for d in dead] == ["/elsewhere"] * 4
        assert all("no processors for /elsewhere" in (d.error or "") for d in dead)
