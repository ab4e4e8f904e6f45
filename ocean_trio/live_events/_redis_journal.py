"""``RedisJournal``: the journal in Redis Streams (coredis), shared by several instances.

An append is one Lua script: refuse when full, drop a duplicate delivery, number the
event and add it to its shard's stream. Processing instances split the shards through
leases (``ShardLeases``); each reads its shards into a bounded local buffer that its
pipelines page from, and acknowledges an entry (XACK + XDEL) only once it is finished:
done, or moved to the dead-letter stream. Nothing is acknowledged on failure.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import cast

import coredis
import coredis.exceptions
import trio
from coredis.response.types import StreamEntry, StreamPendingExt

from .._exceptions import DuplicateDeliveryError, JournalFullError, JournalUnavailableError
from .._log import LogLimiter
from ._event import WebhookEvent
from ._journal import (
    DEFAULT_PURGE,
    Admit,
    EventStatus,
    JournalEntry,
    JournalRecord,
    JournalStatistics,
    ReplayResult,
)
from ._redis_buffer import ReadBuffer
from ._redis_connection import REDIS_ERRORS, open_redis
from ._redis_dead_letters import DeadLetters
from ._redis_entries import (
    GROUP,
    MalformedEntryError,
    RedisKeys,
    decode_event,
    entry_parts,
    event_fields,
    pending_parts,
)
from ._redis_leases import ShardLeases
from ._redis_scripts import Completion, RedisScripts
from ._redis_settings import RedisJournalSettings, public_url

logger = logging.getLogger("ocean_trio.journal")

COMPLETE_BATCH = 256  # completions acknowledged per script call
STUCK_PAGE = 100  # pending entries looked at per XPENDING (Ocean's pel_xautoclaim_count)
STOP_SECONDS = 2.0  # on stop: write the last completions and give the leases up, at most
BACKOFF_SECONDS = (0.05, 5.0)  # first and longest wait after Redis failed, doubling


class _Backoff:
    def __init__(self) -> None:
        self._next = BACKOFF_SECONDS[0]

    async def wait(self) -> None:
        await trio.sleep(self._next)
        self._next = min(self._next * 2, BACKOFF_SECONDS[1])

    def reset(self) -> None:
        self._next = BACKOFF_SECONDS[0]


class RedisJournal:
    """Events in Redis Streams: acknowledged to the sender once stored in Redis, processed
    by whichever instance owns their shard, acknowledged in Redis only once finished.

    Events are numbered by a global ``seq`` at append (what records and operators show).
    Pipelines see *local* seqs: an instance numbers the entries it reads in the order it
    reads them (``last_seq`` is the highest), since entries of many shards arrive out of
    global order. Only an instance that ``watch``es takes shards: one that only appends
    (ingress) never reads.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        settings: RedisJournalSettings,
        *,
        instance_id: str,
        max_pending: int,
        dedup_window_seconds: float,
        max_in_memory: int,
        paths: frozenset[str] | None = None,
    ) -> None:
        if max_pending < 1 or max_in_memory < 1:
            raise ValueError("max_pending and max_in_memory must be at least 1")
        self._paths = paths
        self._client = client
        self._settings = settings
        self._keys = RedisKeys(settings.prefix or "ocean-trio", settings.shards)
        self._scripts = RedisScripts(client, self._keys)
        self._dead_letters = DeadLetters(client, self._keys, self._scripts)
        self._id = instance_id
        self._max_pending = max_pending
        self._window_ms = max(1, int(dedup_window_seconds * 1000))
        self._max_in_memory = max_in_memory
        self._url = public_url(settings.url)
        self._leases = ShardLeases(
            self._scripts,
            instance_id=instance_id,
            shards=settings.shards,
            lease_seconds=settings.lease_seconds,
            holding=self._holding,
            reading=lambda shard: shard in self._reading,
            gained=self._gained,
            lost=self._lost,
            changed=self._wake_reader,
        )
        self._buffer = ReadBuffer()
        self._recovering: dict[int, bytes] = {}  # shard -> XAUTOCLAIM cursor of its take-over
        self._reading: frozenset[int] = frozenset()  # the shards of the read in flight
        self._turn = 0
        self._watchers: list[Callable[[int], None]] = []
        self._watched = trio.Event()
        self._wake = trio.Event()
        self._completions: list[Completion] = []
        self._completing: collections.Counter[int] = collections.Counter()
        self._completing_ids: set[tuple[int, bytes]] = set()
        self._more = trio.Event()
        self._written = trio.Event()  # set while no completion waits to be written
        self._written.set()
        self._log = LogLimiter(logger)
        self._pending = 0  # the shared pending counter, as last seen
        self._appended = 0
        self._completed = 0
        self._duplicates = 0
        self._replayed = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: RedisJournalSettings,
        *,
        instance_id: str,
        max_pending: int,
        dedup_window_seconds: float,
        max_in_memory: int,
        paths: frozenset[str] | None = None,
    ) -> AsyncIterator[RedisJournal]:
        """A journal on the Redis of ``settings``, as consumer ``instance_id``; closed on exit.

        Opening does not connect: an unreachable Redis shows as failing appends
        (``JournalUnavailableError``) and as logged retries in ``run``. An entry read for a
        path not in ``paths`` (one this instance has no processors for: another version of
        the integration appended it) is a dead letter, replayable, instead of waiting in
        memory for ever.
        """
        async with open_redis(settings) as client:
            yield cls(
                client,
                settings,
                instance_id=instance_id,
                max_pending=max_pending,
                dedup_window_seconds=dedup_window_seconds,
                max_in_memory=max_in_memory,
                paths=paths,
            )

    _failure: str | None = None

    @property
    def last_seq(self) -> int:
        """The highest local seq given to an entry read here (0 before the first read)."""
        return self._buffer.last_seq

    @property
    def held(self) -> int:
        """How many entries this instance has read and not yet finished (at most ``max_in_memory``)."""
        return len(self._buffer)

    @property
    def owned_shards(self) -> frozenset[int]:
        """The shards this instance holds the lease of."""
        return self._leases.owned

    async def wait_owned(self, predicate: Callable[[frozenset[int]], bool]) -> None:
        """Wait until the shards this instance owns satisfy ``predicate`` (tests, operators)."""
        await self._leases.wait_owned(predicate)

    # --- background work ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write completions; once watched, also keep shard leases, read and reclaim.

        On stop, the last completions are written and the leases given up (shielded, at
        most ``STOP_SECONDS``), so other instances take the shards over without waiting.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_completions)
                task_status.started()
                await self._watched.wait()
                await nursery.start(self._leases.run)
                nursery.start_soon(self._read)
                nursery.start_soon(self._maintain)
        finally:
            with trio.move_on_after(STOP_SECONDS, shield=True):
                await self._stop()

    async def _stop(self) -> None:
        try:
            while self._completions:
                await self._write_batch()
            if self._watched.is_set():
                await self._leases.leave()
        except REDIS_ERRORS as error:
            logger.warning(
                "redis journal: could not finish cleanly (%r); unacknowledged events will be"
                " taken over when the leases expire",
                error,
            )

    def watch(self, appended_elsewhere: Callable[[int], None]) -> None:
        """Read owned shards from now on, reporting each read's local high to ``appended_elsewhere``."""
        self._watchers.append(appended_elsewhere)
        self._watched.set()

    async def look_elsewhere(self) -> None:
        """Nothing to do: the reader's blocking XREADGROUP returns as soon as entries arrive."""
        await trio.lowlevel.checkpoint()

    def _wake_reader(self) -> None:
        self._wake.set()

    def _holding(self, shard: int) -> int:
        return self._buffer.held_in(shard) + self._completing[shard]

    def _gained(self, shard: int) -> None:
        # Its pending entries (the previous owner's unfinished work) come before new ones.
        self._recovering[shard] = b"0-0"

    def _lost(self, shard: int) -> None:
        self._recovering.pop(shard, None)
        dropped = self._buffer.drop_unclaimed(shard)
        if dropped:
            logger.error(
                "shard %d: %d read events not started here are left to its next owner",
                shard,
                dropped,
            )

    # --- reading --------------------------------------------------------------------------

    async def _read(self) -> None:
        backoff = _Backoff()
        while True:
            room = self._max_in_memory - len(self._buffer)
            shards = self._leases.readable()
            if room <= 0 or not shards:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            try:
                recovering = [shard for shard in shards if shard in self._recovering]
                if recovering:
                    await self._take_over(recovering[0], room)
                else:
                    await self._read_new(shards, room)
            except coredis.exceptions.StreamConsumerGroupError as error:
                # NOGROUP: Redis lost the group (restarted without its data): make it again.
                self._log.error("nogroup", "redis journal: %s; recreating the groups", error)
                for shard in shards:
                    self._recovering.setdefault(shard, b"0-0")
            except REDIS_ERRORS as error:
                self._log.error(
                    "read", "redis journal: reading from %s failed (%r); retrying", self._url, error
                )
                await backoff.wait()
                continue
            backoff.reset()

    async def _take_over(self, shard: int, room: int) -> None:
        stream = self._keys.stream(shard)
        cursor = self._recovering[shard]
        if cursor == b"0-0":
            await self._make_group(stream)
        next_cursor, entries, *_ = await self._client.xautoclaim(
            stream, GROUP, self._id, 0, cursor, count=min(self._settings.read_count, room)
        )
        delivered = await self._deliveries(stream, [entry_parts(e)[0] for e in entries])
        if shard in self._recovering:
            if next_cursor == b"0-0":
                del self._recovering[shard]
            else:
                self._recovering[shard] = next_cursor
        self._intake(shard, entries, delivered)

    async def _make_group(self, stream: str) -> None:
        # From "0": every entry of a shard stream is pending (finished ones are deleted).
        with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
            await self._client.xgroup_create(stream, GROUP, "0", mkstream=True)

    async def _deliveries(self, stream: str, ids: Sequence[bytes]) -> dict[bytes, int]:
        """How many times each of ``ids`` (just claimed by this instance) was delivered."""
        if not ids:
            return {}
        found = await self._client.xpending(
            stream, GROUP, ids[0], ids[-1], count=len(ids), consumer=self._id
        )
        return dict(pending_parts(p) for p in cast(tuple[StreamPendingExt, ...], found))

    async def _read_new(self, shards: list[int], room: int) -> None:
        # At most ``room`` entries in all (COUNT is per stream), so memory stays bounded:
        # with less room than shards, only ``room`` of them, in turn.
        if room < len(shards):
            self._turn = (self._turn + 1) % len(shards)
            shards = (shards[self._turn :] + shards[: self._turn])[:room]
        per_shard = min(self._settings.read_count, room // len(shards))
        self._reading = frozenset(shards)
        try:
            reply = await self._client.xreadgroup(
                GROUP,
                self._id,
                {self._keys.stream(shard): ">" for shard in shards},
                count=per_shard,
                block=self._settings.block_ms,
            )
        finally:
            self._reading = frozenset()
        for key, entries in (reply or {}).items():
            self._intake(self._keys.shard_of_stream(key), entries, {})

    def _intake(
        self, shard: int, entries: Sequence[StreamEntry], delivered: Mapping[bytes, int]
    ) -> None:
        """Hold entries just read or claimed; dead-letter those delivered too often."""
        if not entries:
            return
        if shard not in self._leases.owned:
            # The lease went while reading: the shard's new owner takes these over.
            logger.warning(
                "shard %d: %d entries read after its lease was lost", shard, len(entries)
            )
            return
        limit = self._settings.pel_max_requeue_count
        added = 0
        for entry in entries:
            entry_id, fields = entry_parts(entry)
            if self._buffer.holds(shard, entry_id) or (shard, entry_id) in self._completing_ids:
                continue
            before = delivered.get(entry_id, 1) - 1
            if before > limit:
                self._queue(
                    Completion(
                        shard,
                        entry_id,
                        EventStatus.DEAD.value,
                        f"delivered {before} times without finishing (more than"
                        f" redis.pel_max_requeue_count = {limit}): it may crash or stall the"
                        " instances processing it",
                        0,
                    )
                )
                continue
            try:
                global_seq, event = decode_event(fields)
            except MalformedEntryError as error:
                self._queue(Completion(shard, entry_id, EventStatus.DEAD.value, str(error), 0))
                continue
            if self._paths is not None and event.path not in self._paths:
                problem = f"no processors for {event.path} in this instance (pid {os.getpid()})"
                self._log.error("path", "redis journal: event %s: %s", global_seq, problem)
                self._queue(Completion(shard, entry_id, EventStatus.DEAD.value, problem, 0))
                continue
            self._buffer.add(shard, entry_id, global_seq, event)
            added += 1
        if added:
            for watcher in self._watchers:
                watcher(self._buffer.last_seq)

    # --- stuck entries --------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await trio.sleep(self._settings.stream_maintenance_scan_interval_seconds)
            try:
                for shard in self._leases.readable():
                    if shard not in self._recovering:
                        await self._reclaim_stuck(shard)
            except REDIS_ERRORS as error:
                self._log.error("maintain", "redis journal: stuck-entry scan failed (%r)", error)

    async def _reclaim_stuck(self, shard: int) -> None:
        """Take back entries of ``shard`` pending elsewhere for longer than the stuck timeout.

        Entries held here are skipped (they are waiting their turn, not stuck): XPENDING
        then XCLAIM, rather than XAUTOCLAIM, which would count them as delivered again.
        """
        stream = self._keys.stream(shard)
        idle_ms = int(self._settings.pel_stuck_timeout_seconds * 1000)
        start: bytes | str = "-"
        while (room := self._max_in_memory - len(self._buffer)) > 0:
            reply = await self._client.xpending(
                stream, GROUP, start, "+", count=STUCK_PAGE, idle=idle_ms
            )
            page = [pending_parts(p) for p in cast(tuple[StreamPendingExt, ...], reply)]
            stuck = {
                entry_id: times
                for entry_id, times in page
                if not self._buffer.holds(shard, entry_id)
                and (shard, entry_id) not in self._completing_ids
            }
            ids = list(stuck)[:room]
            if ids:
                claimed = await self._client.xclaim(stream, GROUP, self._id, idle_ms, ids)
                entries = cast(tuple[StreamEntry, ...], claimed)
                logger.warning(
                    "shard %d: took back %d event(s) pending for more than %gs elsewhere",
                    shard,
                    len(entries),
                    self._settings.pel_stuck_timeout_seconds,
                )
                self._intake(shard, entries, {i: stuck[i] + 1 for i in ids})
            if len(page) < STUCK_PAGE:
                return
            start = b"(" + page[-1][0]

    # --- completions ----------------------------------------------------------------------

    def _queue(self, completion: Completion) -> None:
        self._completions.append(completion)
        self._completing[completion.shard] += 1
        self._completing_ids.add((completion.shard, completion.entry_id))
        if self._written.is_set():
            self._written = trio.Event()
        self._more.set()

    async def _write_completions(self) -> None:
        backoff = _Backoff()
        while True:
            if not self._completions:
                await self._more.wait()
                self._more = trio.Event()
                continue
            try:
                await self._write_batch()
            except REDIS_ERRORS as error:
                self._log.error(
                    "complete",
                    "redis journal: acknowledging %d event(s) failed (%r); retrying",
                    len(self._completions),
                    error,
                )
                await backoff.wait()
                continue
            backoff.reset()

    async def _write_batch(self) -> None:
        batch = self._completions[:COMPLETE_BATCH]
        self._pending = await self._scripts.complete(batch, time.time())
        del self._completions[: len(batch)]
        for done in batch:
            self._completing[done.shard] -= 1
            self._completing_ids.discard((done.shard, done.entry_id))
        if not self._completions:
            self._written.set()
        self._wake_reader()

    # --- the journal interface ------------------------------------------------------------

    async def append(self, event: WebhookEvent, admit: Admit) -> JournalEntry:
        """Store ``event`` in its shard's stream; the returned entry has its global seq.

        ``admit`` is not called: entries reach pipelines through the reader of whichever
        instance owns the shard (maybe this one), like those other instances appended.
        """
        dedup_key = (
            None if event.delivery_id is None else self._keys.dedup(event.path, event.delivery_id)
        )
        with self._unavailable("could not record the event"):
            result = await self._scripts.append(
                self._keys.shard_of(event),
                event_fields(event),
                trace_id=event.trace_id,
                dedup_key=dedup_key,
                max_pending=self._max_pending,
                window_ms=self._window_ms,
            )
        if result.outcome == "full":
            self._pending = result.pending
            raise JournalFullError(
                f"{result.pending} events are pending (limit {self._max_pending})"
            )
        if result.outcome == "duplicate":
            self._duplicates += 1
            raise DuplicateDeliveryError(result.first_trace_id)
        self._pending = result.pending
        self._appended += 1
        return JournalEntry(result.seq, event)

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        """Queue the acknowledgement of ``entry`` (a local seq from ``pending_page``)."""
        await trio.lowlevel.checkpoint()
        held = self._buffer.take(entry.seq)
        if held is None:
            return
        if held.entry.event.trace_id != entry.event.trace_id:
            raise ValueError(f"entry {entry.seq} was not read from this journal")
        self._completed += 1
        self._queue(Completion(held.shard, held.entry_id, status.value, error, attempts))
        self._wake_reader()

    async def flush(self) -> None:
        await self._written.wait()

    async def pending_page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool = True
    ) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        return self._buffer.page(
            path, after=after, limit=limit, max_bytes=max_bytes, at_least_one=at_least_one
        )

    async def pending_counts(self) -> dict[str, int]:
        """Events read here and not finished, by path (``{}`` until the reader reads)."""
        await trio.lowlevel.checkpoint()
        return self._buffer.counts()

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        """Dead letters and pending events by global seq (finished ones are not kept)."""
        with self._unavailable("could not list events"):
            return await self._dead_letters.records(status, limit)

    async def record(self, seq: int) -> JournalRecord | None:
        """A dead letter (finished events are not kept; pending ones are the shards')."""
        with self._unavailable("could not read the event"):
            return await self._dead_letters.record(seq)

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        """Append dead letters again at the tail of their shard (new global seq, same trace id).

        The shard's owner reads them like new events; there are no rejected records to
        replay (rejected events are acknowledged and not kept).
        """
        with self._unavailable("could not replay"):
            result = await self._dead_letters.replay(seqs)
        self._replayed += len(result.replayed)
        self._pending += len(result.replayed)
        return result

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        with self._unavailable("could not purge"):
            return await self._dead_letters.purge(statuses)

    def statistics(self) -> JournalStatistics:
        """This instance's counters; ``pending`` is the shared counter as last seen."""
        return JournalStatistics(
            pending=self._pending,
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
            duplicates=self._duplicates,
            replayed=self._replayed,
        )

    @property
    def failure(self) -> str | None:
        """Why the last command from ingress or an operator failed; None once one succeeds."""
        return self._failure

    @contextlib.contextmanager
    def _unavailable(self, what: str) -> Iterator[None]:
        try:
            yield
        except REDIS_ERRORS as error:
            self._failure = f"Redis at {self._url} {what}: {error!r}"
            raise JournalUnavailableError(self._failure) from error
        self._failure = None
