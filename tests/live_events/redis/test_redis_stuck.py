"""Entries left pending by another consumer (a crashed instance, a ghost) against a real
redis-server: taken back after the stuck timeout, or at a take-over; one delivered more than
``pel_max_requeue_count`` times becomes a dead letter instead (a poison event)."""

from __future__ import annotations

import pytest
import trio

from ocean_trio.live_events._journal import EventStatus
from ocean_trio.live_events._redis_entries import GROUP, RedisKeys, entry_parts

from .conftest import RedisServer
from .journals import event, never, number, page, raw_client, running

SECONDS = 10
STREAM = RedisKeys("test", 16).stream(RedisKeys("test", 16).shard_for("g", "/hook"))


@pytest.mark.slow
async def test_entries_stuck_elsewhere_are_taken_back_poison_ones_dead(
    redis_server: RedisServer,
) -> None:
    async with (
        running(
            redis_server, max_in_memory=1, pel_stuck_timeout_seconds=0.2, pel_max_requeue_count=3
        ) as (journal, reads),
        raw_client(redis_server) as redis,
    ):
        await journal.append(event(0, group="g"), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(1)  # held: no room for more, the reader waits
        poison = await journal.append(event(1, group="g"), never)
        await journal.append(event(2, group="g"), never)
        # A ghost consumer reads both and never finishes; the first was delivered 4 times.
        reply = await redis.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=2)
        assert reply is not None
        ids = [entry_parts(entry)[0] for entry in reply[STREAM.encode()]]
        await redis.xclaim(STREAM, GROUP, "ghost", 0, ids[:1], retrycount=4)

        (first,) = await page(journal)
        await journal.complete(first, EventStatus.DONE)  # room for one: the scan goes on
        with trio.fail_after(SECONDS):
            await reads.wait_for(2)
        (taken_back,) = await page(journal, after=first.seq)
        assert number(taken_back) == 2
        await journal.flush()
        (dead,) = await journal.records(EventStatus.DEAD)
        assert dead.seq == poison.seq
        assert dead.error is not None
        assert "delivered 4 times without finishing" in dead.error
        assert "pel_max_requeue_count = 3" in dead.error


@pytest.mark.parametrize("deliveries", [3, 4])
async def test_a_take_over_dead_letters_an_entry_delivered_too_often(
    redis_server: RedisServer, deliveries: int
) -> None:
    # A crash loop: every instance that took this entry died on it, ``deliveries`` times.
    async with raw_client(redis_server) as redis:
        async with running(redis_server, "appender", watch=False) as (appender, _):
            poison = await appender.append(event(1, group="g"), never)
            await appender.append(event(2, group="g"), never)
        await redis.xgroup_create(STREAM, GROUP, "0")
        reply = await redis.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=2)
        assert reply is not None
        ids = [entry_parts(entry)[0] for entry in reply[STREAM.encode()]]
        await redis.xclaim(STREAM, GROUP, "crashed", 0, ids[:1], retrycount=deliveries)
        async with running(redis_server, "heir", pel_max_requeue_count=3) as (heir, reads):
            with trio.fail_after(SECONDS):
                await reads.wait_for(1)
            await heir.flush()
            numbers = [number(e) for e in await page(heir)]
            dead = await heir.records(EventStatus.DEAD)
    if deliveries > 3:
        assert numbers == [2]
        assert [record.seq for record in dead] == [poison.seq]
    else:
        assert numbers == [1, 2]  # within the limit: processed once more
        assert dead == []
