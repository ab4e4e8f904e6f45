"""``MemoryJournal``: the journal in memory only, Ocean's behaviour (lost on restart), bounded."""

from __future__ import annotations

import bisect
import collections
import time
from collections.abc import Sequence

import trio

from .._exceptions import DuplicateDeliveryError, JournalFullError
from ._event import WebhookEvent
from ._journal import (
    DEDUP_WINDOW_SECONDS,
    DEFAULT_PURGE,
    PRUNED_STATUSES,
    Admit,
    AppendedElsewhere,
    EventStatus,
    JournalEntry,
    JournalRecord,
    JournalStatistics,
    Replayed,
    ReplayResult,
)


class MemoryJournal:
    """Keeps events in memory only: Ocean's behaviour, lost on restart.

    Still bounded: at most ``max_pending`` events wait at once (beyond that ``append``
    refuses and ingress answers 503), at most ``max_records`` finished events are kept, and
    at most ``max_deliveries`` delivery ids are remembered for dedup.
    """

    def __init__(
        self,
        *,
        max_pending: int,
        dedup_window_seconds: float = DEDUP_WINDOW_SECONDS,
        retention_seconds: float = 24 * 3600.0,
        max_records: int = 1000,
        max_deliveries: int = 100_000,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._window = dedup_window_seconds
        self._retention = retention_seconds
        self._max_deliveries = max_deliveries
        self._pending: dict[int, JournalEntry] = {}
        # Per path, the seqs appended (increasing), for paging; compacted as events finish.
        self._order: dict[str, list[int]] = collections.defaultdict(list)
        self._path_pending: collections.Counter[str] = collections.Counter()
        self._finished: collections.OrderedDict[int, JournalRecord] = collections.OrderedDict()
        self._max_records = max_records
        self._deliveries: collections.OrderedDict[tuple[str, str], tuple[float, str]] = (
            collections.OrderedDict()
        )
        self._next_seq = 1
        self._elsewhere: AppendedElsewhere | None = None
        self._appended = 0
        self._completed = 0
        self._duplicates = 0
        self._replayed = 0

    @property
    def failure(self) -> None:
        return None  # a failing local disk fails its calls; nothing to report between them

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def watch(self, appended_elsewhere: AppendedElsewhere) -> None:
        """Called back for replays only: no other process can reach this process's memory."""
        self._elsewhere = appended_elsewhere

    async def look_elsewhere(self) -> None:
        await trio.lowlevel.checkpoint()

    async def append(self, event: WebhookEvent, admit: Admit) -> JournalEntry:
        await trio.lowlevel.checkpoint()
        if len(self._pending) >= self._max_pending:
            raise JournalFullError(
                f"{len(self._pending)} events are pending (limit {self._max_pending})"
            )
        if event.delivery_id is not None:
            self._check_delivery(event)
        entry = self._add(event)
        self._appended += 1
        admit(entry)
        return entry

    def _add(self, event: WebhookEvent) -> JournalEntry:
        entry = JournalEntry(self._next_seq, event)
        self._next_seq += 1
        self._pending[entry.seq] = entry
        self._order[event.path].append(entry.seq)
        self._path_pending[event.path] += 1
        return entry

    def _check_delivery(self, event: WebhookEvent) -> None:
        assert event.delivery_id is not None
        now = time.time()
        while self._deliveries:
            key, (seen, _) = next(iter(self._deliveries.items()))
            if seen >= now - self._window and len(self._deliveries) < self._max_deliveries:
                break
            del self._deliveries[key]
        key = (event.path, event.delivery_id)
        seen_by = self._deliveries.get(key)
        if seen_by is not None:
            self._duplicates += 1
            raise DuplicateDeliveryError(seen_by[1])
        self._deliveries[key] = (now, event.trace_id)

    async def complete(
        self, entry: JournalEntry, status: EventStatus, error: str | None = None, attempts: int = 0
    ) -> None:
        await trio.lowlevel.checkpoint()
        if self._pending.pop(entry.seq, None) is None:
            return
        self._completed += 1
        now = time.time()
        self._finished[entry.seq] = JournalRecord(
            entry.seq, entry.event, status, error, attempts, now
        )
        self._prune(now)
        path = entry.event.path
        self._path_pending[path] -= 1
        order = self._order[path]
        if len(order) > 64 and len(order) > 2 * self._path_pending[path]:
            order[:] = [seq for seq in order if seq in self._pending]

    def _prune(self, now: float) -> None:
        # Oldest first: past the retention, or over the count, except dead letters
        # (kept until purged, within the count).
        cutoff = now - self._retention
        for seq, record in list(self._finished.items()):
            over = len(self._finished) > self._max_records
            if not over and record.updated_at >= cutoff:
                break
            if over or record.status in PRUNED_STATUSES:
                del self._finished[seq]

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def pending_page(
        self, path: str, *, after: int, limit: int, max_bytes: int, at_least_one: bool = True
    ) -> list[JournalEntry]:
        await trio.lowlevel.checkpoint()
        order = self._order.get(path, [])
        page: list[JournalEntry] = []
        size = 0
        for seq in order[bisect.bisect_right(order, after) :]:
            entry = self._pending.get(seq)
            if entry is None:
                continue
            if (page or not at_least_one) and (len(page) >= limit or size + entry.size > max_bytes):
                break
            page.append(entry)
            size += entry.size
        return page

    async def pending_counts(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        return {path: n for path, n in self._path_pending.items() if n}

    async def records(
        self, status: EventStatus | None = None, *, limit: int = 100
    ) -> list[JournalRecord]:
        await trio.lowlevel.checkpoint()
        pending = [
            JournalRecord(e.seq, e.event, EventStatus.PENDING, None, 0, e.event.received_at)
            for e in self._pending.values()
        ]
        found = sorted([*pending, *self._finished.values()], key=lambda r: r.seq)
        return [r for r in found if status is None or r.status is status][:limit]

    async def record(self, seq: int) -> JournalRecord | None:
        await trio.lowlevel.checkpoint()
        if seq in self._pending:
            event = self._pending[seq].event
            return JournalRecord(seq, event, EventStatus.PENDING, None, 0, event.received_at)
        return self._finished.get(seq)

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        await trio.lowlevel.checkpoint()
        replayable = (EventStatus.DEAD, EventStatus.REJECTED)
        if seqs is None:
            chosen = [s for s, r in self._finished.items() if r.status is EventStatus.DEAD]
            missing: list[int] = []
            refused: list[tuple[int, EventStatus]] = []
        else:
            wanted = sorted(set(seqs))
            chosen = [
                s for s in wanted if s in self._finished and self._finished[s].status in replayable
            ]
            missing = [s for s in wanted if s not in self._finished and s not in self._pending]
            refused = [(s, EventStatus.PENDING) for s in wanted if s in self._pending]
            refused += [
                (s, self._finished[s].status)
                for s in wanted
                if s in self._finished and self._finished[s].status not in replayable
            ]
        replayed = []
        for seq in chosen:
            record = self._finished.pop(seq)
            entry = self._add(record.event)
            replayed.append(Replayed(seq, entry.seq, record.event.path))
        self._replayed += len(replayed)
        if replayed and self._elsewhere is not None:
            self._elsewhere(self.last_seq)
        return ReplayResult(tuple(replayed), tuple(missing), tuple(sorted(refused)))

    async def purge(self, statuses: Sequence[EventStatus] = DEFAULT_PURGE) -> int:
        await trio.lowlevel.checkpoint()
        gone = [s for s, r in self._finished.items() if r.status in statuses]
        for seq in gone:
            del self._finished[seq]
        return len(gone)

    def statistics(self) -> JournalStatistics:
        return JournalStatistics(
            pending=len(self._pending),
            max_pending=self._max_pending,
            appended=self._appended,
            completed=self._completed,
            duplicates=self._duplicates,
            replayed=self._replayed,
        )
