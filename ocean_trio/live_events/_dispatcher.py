"""``GroupDispatcher``: FIFO within a group key, groups in parallel, O(1) work per event."""

from __future__ import annotations

import collections

import attrs
import trio

from ._journal import JournalEntry


@attrs.frozen
class DispatcherStatistics:
    queued: int
    in_flight: int
    groups: int


class GroupDispatcher:
    """Hands events to workers so that one group never has two events in flight.

    A group is *ready* when it has queued events and none in flight; ready groups wait in
    a channel, so workers take them round-robin and a busy group never blocks another.
    Invariant: a group key is in the ready channel or in flight, never both, never twice.
    """

    def __init__(self, *, capacity: int) -> None:
        # Each key sits in the channel at most once, and only keys with a queued event do,
        # so ``capacity`` (the journal's pending limit) bounds it.
        self._ready_send, self._ready_recv = trio.open_memory_channel[str](capacity)
        self._groups: dict[str, collections.deque[JournalEntry]] = {}
        self._queued = 0
        self._in_flight = 0

    def submit(self, entry: JournalEntry, group: str) -> None:
        """Queue ``entry`` behind the earlier events of ``group``; never blocks."""
        queue = self._groups.get(group)
        self._queued += 1
        if queue is None:
            self._groups[group] = collections.deque((entry,))
            self._ready_send.send_nowait(group)
        else:
            queue.append(entry)

    async def take(self) -> tuple[str, JournalEntry]:
        """Wait for the next ready group; its head event is now in flight until ``release``."""
        group = await self._ready_recv.receive()
        entry = self._groups[group].popleft()
        self._queued -= 1
        self._in_flight += 1
        return group, entry

    def release(self, group: str) -> None:
        """The in-flight event of ``group`` is finished: its next event becomes ready."""
        self._in_flight -= 1
        if self._groups[group]:
            self._ready_send.send_nowait(group)
        else:
            del self._groups[group]

    def statistics(self) -> DispatcherStatistics:
        return DispatcherStatistics(
            queued=self._queued, in_flight=self._in_flight, groups=len(self._groups)
        )
