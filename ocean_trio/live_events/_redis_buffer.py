"""``ReadBuffer``: the entries a ``redis`` journal has read and not yet seen finished (pure).

Pipelines page pending events by an increasing ``seq`` and a cursor. The global seq an
entry got at append does not fit: entries of many shards arrive here out of global order,
so an entry with a lower global seq may arrive after the cursor passed it. Each entry read
gets a *local* seq instead, increasing in the order entries arrive in this process.
"""

from __future__ import annotations

import bisect
import collections

import attrs

from ._event import WebhookEvent
from ._journal import JournalEntry


@attrs.frozen(eq=False)
class Held:
    """A read entry: its local ``entry`` (local seq), where it lives in Redis, its global seq."""

    entry: JournalEntry
    shard: int
    entry_id: bytes
    global_seq: int


class ReadBuffer:
    """Read entries by local seq, indexed by path (for paging) and by stream entry id."""

    def __init__(self) -> None:
        self.last_seq = 0
        self._held: dict[int, Held] = {}
        self._order: dict[str, list[int]] = collections.defaultdict(list)
        self._by_id: dict[tuple[int, bytes], int] = {}
        self._per_shard: collections.Counter[int] = collections.Counter()
        self._per_path: collections.Counter[str] = collections.Counter()
        self._handed_out: set[int] = set()

    def __len__(self) -> int:
        return len(self._held)

    def holds(self, shard: int, entry_id: bytes) -> bool:
        return (shard, entry_id) in self._by_id

    def held_in(self, shard: int) -> int:
        """How many entries of ``shard`` are held."""
        return self._per_shard[shard]

    def add(self, shard: int, entry_id: bytes, global_seq: int, event: WebhookEvent) -> Held:
        """Hold a newly read entry under the next local seq."""
        self.last_seq += 1
        held = Held(JournalEntry(self.last_seq, event), shard, entry_id, global_seq)
        self._held[self.last_seq] = held
        self._order[event.path].append(self.last_seq)
        self._by_id[shard, entry_id] = self.last_seq
        self._per_shard[shard] += 1
        self._per_path[event.path] += 1
        return held

    def page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool
    ) -> list[JournalEntry]:
        """Held entries of ``path`` after local seq ``after``, as ``Journal.pending_page``."""
        order = self._order.get(path, [])
        page: list[JournalEntry] = []
        size = 0
        for seq in order[bisect.bisect_right(order, after) :]:
            held = self._held.get(seq)
            if held is None:
                continue
            entry = held.entry
            if (page or not at_least_one) and (len(page) >= limit or size + entry.size > max_bytes):
                break
            page.append(entry)
            self._handed_out.add(seq)
            size += entry.size
        return page

    def take(self, seq: int) -> Held | None:
        """Stop holding entry ``seq`` (it finished); None when it is not held."""
        held = self._held.pop(seq, None)
        if held is None:
            return None
        path = held.entry.event.path
        del self._by_id[held.shard, held.entry_id]
        self._handed_out.discard(seq)
        self._per_shard[held.shard] -= 1
        self._per_path[path] -= 1
        order = self._order[path]
        # Compacted now and then, so a long run keeps the index as small as what is held.
        if len(order) > 64 and len(order) > 2 * self._per_path[path]:
            order[:] = [s for s in order if s in self._held]
        return held

    def drop_unclaimed(self, shard: int) -> int:
        """Forget the entries of ``shard`` no pipeline has paged yet (its lease was lost).

        They stay pending in Redis, where the shard's new owner takes them over; those
        already handed out finish here.
        """
        dropped = [
            seq
            for seq, held in self._held.items()
            if held.shard == shard and seq not in self._handed_out
        ]
        for seq in dropped:
            self.take(seq)
        return len(dropped)

    def counts(self) -> dict[str, int]:
        """Held entries by path."""
        return {path: n for path, n in self._per_path.items() if n}
