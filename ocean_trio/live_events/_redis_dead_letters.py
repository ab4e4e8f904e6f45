"""What operators do with the ``redis`` journal: list records, replay and purge dead letters.

Finished events leave the shard streams (XDEL); only dead letters are kept, in their own
stream, until replayed or purged. Pending events are the entries of the shard streams.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence

import coredis
import trio

from ._journal import EventStatus, JournalRecord, Replayed, ReplayResult
from ._redis_entries import Fields, RedisKeys, decode_record, entry_parts
from ._redis_scripts import RedisScripts

PAGE = 500  # entries per XRANGE while scanning a stream
REPLAY_BATCH = 100  # dead letters moved per script call


class DeadLetters:
    """Records, replay and purge over the dead-letter stream (and the shard streams)."""

    def __init__(self, client: coredis.Redis[bytes], keys: RedisKeys, scripts: RedisScripts):
        self._client = client
        self._keys = keys
        self._scripts = scripts

    async def records(self, status: EventStatus | None, limit: int) -> list[JournalRecord]:
        """The first ``limit`` records by global seq: dead letters, pending entries, or both."""
        raw: list[tuple[Fields, EventStatus | None]] = []  # None: a dead letter
        if status in (None, EventStatus.DEAD):
            # Dead letters are in the order they died; the ``limit`` lowest seqs win.
            lowest = heapq.nsmallest(
                limit,
                [(seq, entry_id) async for entry_id, seq, _, _ in self._dead_index()],
            )
            for _, entry_id in sorted(lowest):
                entries = await self._client.xrange(self._keys.dead, entry_id, entry_id)
                raw += [(entry_parts(entry)[1], None) for entry in entries]
        if status in (None, EventStatus.PENDING):
            for shard in range(self._keys.shards):
                # A shard stream is in seq order (seq and entry made in one script).
                entries = await self._client.xrange(self._keys.stream(shard), count=limit)
                raw += [(entry_parts(entry)[1], EventStatus.PENDING) for entry in entries]

        def decode() -> list[JournalRecord]:
            # On a thread: payloads are parsed for display, and bodies may be big.
            found = [decode_record(fields, kind) for fields, kind in raw]
            return sorted(found, key=lambda record: record.seq)[:limit]

        return await trio.to_thread.run_sync(decode)

    async def record(self, seq: int) -> JournalRecord | None:
        """The dead letter numbered ``seq``, if there is one."""
        async for entry_id, found, _, _ in self._dead_index():
            if found == seq:
                entries = await self._client.xrange(self._keys.dead, entry_id, entry_id)
                if entries:
                    fields = entry_parts(entries[0])[1]
                    return await trio.to_thread.run_sync(decode_record, fields, None)
        return None

    async def replay(self, seqs: Sequence[int] | None) -> ReplayResult:
        """Move the dead letters ``seqs`` (all with None) to the tail of their shard, pending."""
        dead = {
            seq: (entry_id, shard, path) async for entry_id, seq, shard, path in self._dead_index()
        }
        missing: list[int] = []
        refused: list[tuple[int, EventStatus]] = []
        if seqs is None:
            chosen = sorted(dead)
        else:
            wanted = sorted(set(seqs))
            chosen = [seq for seq in wanted if seq in dead]
            unknown = {seq for seq in wanted if seq not in dead}
            if unknown:
                pending = await self._pending_seqs(unknown)
                refused = [(seq, EventStatus.PENDING) for seq in sorted(pending)]
                missing = sorted(unknown - pending)
        replayed: list[Replayed] = []
        for start in range(0, len(chosen), REPLAY_BATCH):
            batch = chosen[start : start + REPLAY_BATCH]
            new = await self._scripts.replay([dead[seq][:2] for seq in batch])
            for old_seq, seq in zip(batch, new, strict=True):
                if seq:
                    replayed.append(Replayed(old_seq, seq, dead[old_seq][2]))
                else:
                    missing.append(old_seq)  # purged or replayed by someone meanwhile
        return ReplayResult(tuple(replayed), tuple(sorted(missing)), tuple(refused))

    async def purge(self, statuses: Sequence[EventStatus]) -> int:
        """Delete every dead letter when ``statuses`` has ``dead``; others are not kept at all."""
        if EventStatus.DEAD not in statuses:
            return 0
        return await self._scripts.purge_dead()

    async def _dead_index(self) -> AsyncIterator[tuple[bytes, int, int, str]]:
        # (entry id, seq, shard, path) of every dead letter, without keeping bodies.
        async for entry_id, fields in self._scan(self._keys.dead):
            path = fields.get(b"path", b"").decode(errors="replace")
            group = fields.get(b"group_id")
            group_id = None if group is None else group.decode(errors="replace")
            yield entry_id, _seq(fields), self._keys.shard_for(group_id, path), path

    async def _pending_seqs(self, wanted: set[int]) -> set[int]:
        found: set[int] = set()
        for shard in range(self._keys.shards):
            async for _, fields in self._scan(self._keys.stream(shard)):
                if _seq(fields) in wanted:
                    found.add(_seq(fields))
        return found

    async def _scan(self, key: str) -> AsyncIterator[tuple[bytes, Fields]]:
        start: bytes | str = "-"
        while True:
            entries = await self._client.xrange(key, start, "+", count=PAGE)
            for entry in entries:
                yield entry_parts(entry)
            if len(entries) < PAGE:
                return
            start = b"(" + entry_parts(entries[-1])[0]


def _seq(fields: Fields) -> int:
    raw = fields.get(b"seq", b"0")
    return int(raw) if raw.isdigit() else 0
