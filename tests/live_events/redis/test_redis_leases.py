"""Shard leases of the redis journal against a real redis-server: shards spread evenly over
live instances and never overlap; a dead instance's shards are taken over within a lease,
its unfinished entries first; entries stuck elsewhere are taken back, poison ones dead."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from ocean_trio.live_events._journal import EventStatus
from ocean_trio.live_events._redis_entries import RedisKeys
from ocean_trio.live_events._redis_journal import RedisJournal
from ocean_trio.live_events._redis_leases import TICKS_PER_LEASE

from .conftest import RedisServer
from .journals import event, never, number, page, raw_client, running

SECONDS = 10
LEASE = 0.6  # the tests' lease_seconds (conftest and instance.py)
TICK = LEASE / 3
ALL = frozenset(range(16))
KEYS = RedisKeys("test", 16)
ROOT = Path(__file__).resolve().parents[3]


def spread(journals: Sequence[RedisJournal]) -> bool:
    """Every shard owned, by one instance each, none owning more than its share.

    Asserts on the way that no shard is ever owned twice.
    """
    owned = [journal.owned_shards for journal in journals]
    assert sum(map(len, owned)) == len(frozenset().union(*owned)), owned
    share = math.ceil(16 / len(journals))
    return frozenset().union(*owned) == ALL and all(len(o) <= share for o in owned)


@pytest.mark.slow
async def test_shards_spread_over_two_then_three_instances(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        journals: list[RedisJournal] = []
        closers: list[Callable[[], Awaitable[None]]] = []
        for name in ("a", "b", "c"):
            inner = AsyncExitStack()
            journal, _ = await inner.enter_async_context(running(redis_server, name))
            stack.push_async_callback(inner.aclose)
            journals.append(journal)
            closers.append(inner.aclose)
            with trio.fail_after(SECONDS):
                await journal.wait_owned(lambda _: spread(journals))
            sizes = sorted(len(j.owned_shards) for j in journals)
            assert sizes in {1: [[16]], 2: [[8, 8]], 3: [[4, 6, 6], [5, 5, 6]]}[len(journals)]
        await closers.pop()()  # c stops: it gives its shards up, a and b share them again
        journals.pop()
        with trio.fail_after(SECONDS):
            await journals[0].wait_owned(lambda _: spread(journals))
        assert sorted(len(j.owned_shards) for j in journals) == [8, 8]


async def test_a_stopped_instance_hands_its_shards_and_unfinished_entries_over(
    redis_server: RedisServer,
) -> None:
    async with running(redis_server, "b") as (b, reads):
        async with running(redis_server, "a") as (a, a_reads):
            with trio.fail_after(SECONDS):
                await b.wait_owned(lambda _: spread([a, b]))
            shard = min(a.owned_shards)
            group = next(f"g{n}" for n in range(1000) if KEYS.shard_for(f"g{n}", "/hook") == shard)
            for n in range(3):
                await b.append(event(n, group=group), never)  # appended anywhere, read by a
            with trio.fail_after(SECONDS):
                await a_reads.wait_for(3)  # a holds them and never finishes them
        stopped = trio.current_time()
        async with raw_client(redis_server) as redis:
            # Given up as it stopped, not left to expire.
            holders = [await redis.get(KEYS.lease(shard)) for shard in range(16)]
            assert b"a" not in holders
            assert await redis.zscore(KEYS.instances, "a") is None
        with trio.fail_after(SECONDS):
            await b.wait_owned(lambda shards: shards == ALL)
        # a gave its leases up as it stopped: b took them at its next tick, not at expiry.
        assert trio.current_time() - stopped < LEASE
        with trio.fail_after(SECONDS):
            await reads.wait_for(3)
        assert [number(e) for e in await page(b)] == [0, 1, 2]


@pytest.mark.slow
async def test_a_shard_is_handed_over_only_once_its_entries_are_finished(
    redis_server: RedisServer,
) -> None:
    groups: dict[int, str] = {}
    for n in range(1000):
        groups.setdefault(KEYS.shard_for(f"g{n}", "/hook"), f"g{n}")
    async with running(redis_server, "a") as (a, a_reads):
        with trio.fail_after(SECONDS):
            await a.wait_owned(lambda shards: shards == ALL)
        for shard in range(16):
            await a.append(event(shard, group=groups[shard]), never)
        with trio.fail_after(SECONDS):
            await a_reads.wait_for(16)  # a holds an unfinished entry in every shard
        async with running(redis_server, "b") as (b, _):
            ticks = 0

            def nothing_handed_over(_: frozenset[int]) -> bool:
                nonlocal ticks
                ticks += 1
                assert b.owned_shards == frozenset(), "b took a shard a still works on"
                return ticks > 2 * TICKS_PER_LEASE

            with trio.fail_after(SECONDS):
                await a.wait_owned(nothing_handed_over)  # two leases' worth of a's ticks
            entries = {number(entry): entry for entry in await page(a)}
            for shard in (3, 7):
                await a.complete(entries[shard], EventStatus.DONE)
            with trio.fail_after(SECONDS):
                await b.wait_owned(lambda shards: shards == {3, 7})
            assert a.owned_shards == ALL - {3, 7}


class Lines:
    """The lines a child process prints, one at a time."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def until(self, wanted: Callable[[str], bool]) -> str:
        while True:
            while b"\n" not in self._buffer:
                chunk = await self._stream.receive_some()
                if not chunk:
                    raise EOFError("the instance exited")
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\n")
            line = raw.decode()
            if wanted(line):
                return line


def reads_at_least(count: int) -> Callable[[str], bool]:
    return lambda line: line.startswith("read ") and int(line.split()[1]) >= count


@pytest.mark.slow
async def test_a_killed_instance_shards_are_taken_over_its_pending_entries_first(
    redis_server: RedisServer,
) -> None:
    command = [sys.executable, "-m", "tests.live_events.redis.instance", redis_server.url, "dies"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert process.stdout is not None
        lines = Lines(process.stdout)
        with trio.fail_after(SECONDS):
            await lines.until(lambda line: line == "owned " + " ".join(map(str, range(16))))
        async with running(redis_server, "appender", watch=False) as (appender, _):
            for n in range(5):
                await appender.append(event(n, group="g"), never)
            for n in range(100, 105):
                await appender.append(event(n, group=f"other-{n}"), never)
            with trio.fail_after(SECONDS):
                await lines.until(reads_at_least(10))  # all read there, none finished
            async with running(redis_server, "takes-over") as (heir, reads):
                with trio.fail_after(SECONDS):
                    await heir.wait_owned(lambda shards: len(shards) == 8)  # handed over
                assert KEYS.shard_for("g", "/hook") not in heir.owned_shards  # held there
                process.kill()
                await process.wait()
                killed = trio.current_time()
                for n in range(5, 8):
                    await appender.append(event(n, group="g"), never)
                with trio.fail_after(SECONDS):
                    await heir.wait_owned(lambda shards: shards == ALL)
                # Its leases expire within LEASE of its last renewal; the heir's next tick
                # takes them (the slack is for a loaded machine).
                assert trio.current_time() - killed < LEASE + TICK + 0.6
                with trio.fail_after(SECONDS):
                    await reads.wait_for(13)
                entries = await page(heir, path="/hook")
                assert [number(e) for e in entries if e.event.group_id == "g"] == list(range(8))
                assert sorted(number(e) for e in entries if e.event.group_id != "g") == list(
                    range(100, 105)
                )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
