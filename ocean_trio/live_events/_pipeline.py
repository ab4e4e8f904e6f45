"""``LiveEventsPipeline``: journal → dispatcher → workers for one webhook path."""

from __future__ import annotations

import collections
import logging
from typing import Protocol

import attrs
import trio

from ._dispatcher import DispatcherStatistics, GroupDispatcher
from ._event import EventHeaders, EventPayload, WebhookEvent
from ._journal import Journal, JournalEntry
from ._outcome import EventOutcome

logger = logging.getLogger("ocean_trio.live_events")


class Handler(Protocol):
    """What a pipeline needs from event handling (``EventHandler`` in production)."""

    def group_of(self, event: WebhookEvent) -> str | None: ...

    async def handle(self, event: WebhookEvent) -> EventOutcome: ...


@attrs.frozen
class PipelineStatistics:
    path: str
    workers: int
    accepted: int
    outcomes: dict[str, int]
    dispatcher: DispatcherStatistics


class LiveEventsPipeline:
    """Accepts events for one path and processes them with ``workers`` workers.

    ``submit`` journals the event and queues it behind earlier events of its group; workers
    take ready groups from the dispatcher, so each group is processed in order, one event at
    a time, while different groups run in parallel.
    """

    def __init__(
        self,
        path: str,
        handler: Handler,
        journal: Journal,
        *,
        workers: int,
        capacity: int,
        park_events: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("a pipeline needs at least one worker")
        self.path = path
        self._handler = handler
        self._journal = journal
        self._workers = workers
        self._park = park_events
        self._dispatcher = GroupDispatcher(capacity=capacity)
        self._accepted = 0
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._outstanding = 0
        self._idle = trio.Event()
        self._idle.set()
        self._observers: list[trio.MemorySendChannel[tuple[JournalEntry, EventOutcome]]] = []

    def make_event(
        self,
        body: bytes,
        payload: EventPayload,
        headers: EventHeaders,
        *,
        delivery_id: str | None = None,
    ) -> WebhookEvent:
        """A new event for this path, its ``group_id`` set from the processors' ``group_key``."""
        event = WebhookEvent.from_body(self.path, body, payload, headers, delivery_id=delivery_id)
        group_id = self._handler.group_of(event)
        return event if group_id is None else attrs.evolve(event, group_id=group_id)

    async def submit(self, event: WebhookEvent) -> JournalEntry:
        """Journal ``event`` and queue it; raises ``JournalFullError`` when the journal is full."""
        entry = await self._journal.append(event)
        self._enqueue(entry)
        return entry

    def resume(self, entry: JournalEntry) -> None:
        """Queue an entry already in the journal (replay after a restart)."""
        self._enqueue(entry)

    def _enqueue(self, entry: JournalEntry) -> None:
        # Events without a group id share one group per path: FIFO, one at a time (Ocean's
        # single-worker behaviour), whatever the number of workers.
        group_id = entry.event.group_id
        queued = entry.parked() if self._park else entry
        self._dispatcher.submit(queued, "" if group_id is None else "#" + group_id)
        self._accepted += 1
        if self._outstanding == 0:
            self._idle = trio.Event()
        self._outstanding += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the workers until cancelled; ``started()`` once they wait for events."""
        async with trio.open_nursery() as nursery:
            for _ in range(self._workers):
                nursery.start_soon(self._work)
            task_status.started()

    async def _work(self) -> None:
        while True:
            group, queued = await self._dispatcher.take()
            entry = queued.unparked()
            outcome = await self._handler.handle(entry.event)
            attempts = max((run.attempts for run in outcome.runs), default=0)
            await self._journal.complete(entry, outcome.status, outcome.error, attempts)
            self._dispatcher.release(group)
            self._finished(entry, outcome)

    def _finished(self, entry: JournalEntry, outcome: EventOutcome) -> None:
        self._outcomes[outcome.status.value] += 1
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()
        for channel in self._observers:
            try:
                channel.send_nowait((entry, outcome))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                logger.debug("an outcome observer is full or gone; outcome not delivered")

    def observe(self, channel: trio.MemorySendChannel[tuple[JournalEntry, EventOutcome]]) -> None:
        """Send every finished ``(entry, outcome)`` to ``channel`` (without waiting; drops when full)."""
        self._observers.append(channel)

    async def wait_idle(self) -> None:
        """Wait until every submitted event has finished."""
        await self._idle.wait()

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(
            path=self.path,
            workers=self._workers,
            accepted=self._accepted,
            outcomes=dict(self._outcomes),
            dispatcher=self._dispatcher.statistics(),
        )
