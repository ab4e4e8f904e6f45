"""``ShardLeases``: which shards of the ``redis`` journal this instance reads, by leases in Redis.

A shard is read by one instance at a time, so the events of a group (all in one shard)
are processed in order across instances. Each live instance keeps a heartbeat and holds
at most ceil(shards / live instances) leases; one not renewed in time expires, and another
instance takes its shard over at its next tick.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable

import trio

from .._log import LogLimiter
from ._redis_connection import REDIS_ERRORS
from ._redis_scripts import RedisScripts

logger = logging.getLogger("ocean_trio.journal")

TICKS_PER_LEASE = 3
"""Leases are renewed this many times per ``lease_seconds``: two renewals may fail in a row."""


class ShardLeases:
    """Takes, renews, spreads and gives up this instance's shard leases; ``run`` keeps them.

    ``holding(shard)`` says how many unfinished entries of a shard this instance still has,
    ``reading(shard)`` whether a read covering it is in flight: a shard to hand over is only
    released once it has neither (so two instances never process one shard at once). ``gained`` and ``lost`` are called as shards come and go, and
    ``changed`` after every tick.
    """

    def __init__(
        self,
        scripts: RedisScripts,
        *,
        instance_id: str,
        shards: int,
        lease_seconds: float,
        holding: Callable[[int], int],
        reading: Callable[[int], bool],
        gained: Callable[[int], None],
        lost: Callable[[int], None],
        changed: Callable[[], None],
    ) -> None:
        self._scripts = scripts
        self._id = instance_id
        self._shards = shards
        self._lease = lease_seconds
        self._ttl_ms = max(1, int(lease_seconds * 1000))
        self._holding = holding
        self._reading = reading
        self._gained = gained
        self._lost = lost
        self._changed = changed
        self._owned: dict[int, float] = {}  # shard -> when our lease ends, on trio's clock
        self._draining: set[int] = set()
        self._start = zlib.crc32(instance_id.encode()) % shards
        self._event = trio.Event()
        self._log = LogLimiter(logger)
        self.live = 0

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._owned)

    def readable(self) -> list[int]:
        """Owned shards to read from: leased for a while still, and not being handed over."""
        now = trio.current_time()
        return [
            shard
            for shard, ends in sorted(self._owned.items())
            if shard not in self._draining and now < ends
        ]

    async def wait_owned(self, predicate: Callable[[frozenset[int]], bool]) -> None:
        """Wait until the owned shards satisfy ``predicate`` (checked after each change)."""
        while not predicate(self.owned):
            await self._event.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick every ``lease_seconds / 3`` until cancelled; ``started()`` after the first tick."""
        await self._tick()
        task_status.started()
        while True:
            await trio.sleep(self._lease / TICKS_PER_LEASE)
            await self._tick()

    async def leave(self) -> None:
        """Give every lease up and leave the live instances (a clean stop: no wait for expiry)."""
        owned = sorted(self._owned)
        self._owned.clear()
        self._draining.clear()
        await self._scripts.release(self._id, owned, leave=True)

    async def _tick(self) -> None:
        try:
            sent = trio.current_time()
            self.live = await self._scripts.heartbeat(self._id, self._ttl_ms)
            if self._owned:
                shards = sorted(self._owned)
                kept = await self._scripts.renew(self._id, shards, self._ttl_ms)
                for shard, renewed in zip(shards, kept, strict=True):
                    if renewed:
                        self._owned[shard] = sent + self._lease
                    else:
                        self._lose(shard, "it expired and another instance may hold it")
            await self._spread(math.ceil(self._shards / max(1, self.live)), sent)
        except REDIS_ERRORS as error:
            self._log.error(
                "unreachable",
                "shard leases: Redis failed (%r); %d lease(s) held until they expire",
                error,
                len(self._owned),
            )
        finally:
            now = trio.current_time()
            for shard, ends in list(self._owned.items()):
                if now >= ends:
                    self._lose(shard, "it could not be renewed in time")
            self._event.set()
            self._event = trio.Event()
            self._changed()

    async def _spread(self, quota: int, sent: float) -> None:
        extra = len(self._owned) - quota
        if extra > 0:
            # Shards being handed over are not read; one is released once it holds no
            # unfinished entry and no read that began before still covers it.
            idle = sorted(
                shard
                for shard in self._draining
                if self._holding(shard) == 0 and not self._reading(shard)
            )[:extra]
            if idle:
                await self._scripts.release(self._id, idle, leave=False)
                for shard in idle:
                    del self._owned[shard]
                    self._draining.discard(shard)
                logger.info(
                    "released shard(s) %s to spread %d shards over %d instances",
                    idle,
                    self._shards,
                    self.live,
                )
            # Hand over next those holding the fewest unfinished entries (so, soonest idle).
            candidates = sorted(
                self._owned,
                key=lambda shard: (self._holding(shard), shard not in self._draining, -shard),
            )
            self._draining = set(candidates[: extra - len(idle)])
            return
        self._draining.clear()
        if extra < 0:
            candidates = [
                shard
                for shard in ((self._start + k) % self._shards for k in range(self._shards))
                if shard not in self._owned
            ]
            taken = await self._scripts.acquire(self._id, candidates, -extra, self._ttl_ms)
            for shard in taken:
                self._owned[shard] = sent + self._lease
                self._gained(shard)
            if taken:
                logger.info("took the lease of shard(s) %s", sorted(taken))

    def _lose(self, shard: int, why: str) -> None:
        del self._owned[shard]
        self._draining.discard(shard)
        logger.error(
            "lost the lease of shard %d (%s): stopped reading it; its unfinished events go to"
            " its next owner",
            shard,
            why,
        )
        self._lost(shard)
