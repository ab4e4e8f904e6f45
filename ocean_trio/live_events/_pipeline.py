"""``LiveEventsPipeline``: journal → dispatcher → workers for one webhook path.

The journal holds every pending event; the pipeline holds a bounded *window* of them in
memory (``max_events`` entries, ``max_bytes`` of bodies). While the window has room and
nothing is waiting in the journal only, an accepted event goes straight into it. Otherwise
the pipeline *spills*: the event stays in the journal only, and a feeder task pages pending
events back into the window, in ``seq`` order, as workers free room. A start-up replay and
a replay of dead letters are spills too, so their size never matters.

Invariant: every pending event of this path with ``seq <= cursor`` is in memory or finished;
while not spilled, that is every pending event of this path.

A pipeline processes only once ``run`` starts: before that (a process that is ingress only
until it is elected to process) accepted events stay in the journal, and ``run`` begins by
paging in every pending event of its path. Events other processes append, and replays,
reach it through ``appended_elsewhere``, as a spill.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from .._exceptions import InvalidBodyError
from .._log import LogLimiter
from ._dispatcher import DispatcherStatistics, GroupDispatcher
from ._event import EventHeaders, EventPayload, WebhookEvent
from ._journal import EventStatus, Journal, JournalEntry
from ._monitor import EventMonitor, Monitors
from ._outcome import EventOutcome, Prepared

logger = logging.getLogger("ocean_trio.live_events")

PAGE_SIZE = 256  # entries per journal read while feeding a spilled pipeline


class Handler(Protocol):
    """What a pipeline needs from event handling (``EventHandler`` in production)."""

    def group_of(self, event: WebhookEvent) -> str | None: ...

    async def prepare(self, event: WebhookEvent) -> Prepared: ...


Parse = Callable[[bytes], Awaitable[EventPayload]]
"""Parses a stored body back into its payload (raises ``InvalidBodyError``)."""


@attrs.frozen
class Window:
    """How much of the pending events a pipeline keeps in memory."""

    max_events: int = 1000
    max_bytes: int = 64 * 1024 * 1024

    def __attrs_post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1:
            raise ValueError("a pipeline window needs room for at least one event")


@attrs.frozen
class PipelineStatistics:
    """``accepted``: webhooks this process journaled for the path (replays and other
    processes' events are the journal's to count); ``outcomes``: events finished here."""

    path: str
    workers: int
    accepted: int
    outcomes: dict[str, int]
    in_memory: int
    in_memory_bytes: int
    backlog: int
    dispatcher: DispatcherStatistics


class LiveEventsPipeline:
    """Accepts events for one path and processes them with ``workers`` workers.

    ``submit`` journals the event; workers take ready groups from the dispatcher, so each
    group is processed in order, one event at a time, while different groups run in
    parallel. A worker hands an event's write to a task of its own and takes the next ready
    group: the event's group is released, and the event marked finished in the journal,
    only once the write is done, so order and "done after applied" hold while writes of many
    events wait together (and the applier batches them). Those tasks are bounded by the
    window: each holds an event in memory. ``backlog`` events of this path are pending in
    the journal already (a restart).
    """

    def __init__(
        self,
        path: str,
        handler: Handler,
        journal: Journal,
        *,
        workers: int,
        parse: Parse,
        window: Window = Window(),
        backlog: int = 0,
        monitor: EventMonitor | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a pipeline needs at least one worker")
        self.path = path
        self._handler = handler
        self._journal = journal
        self._workers = workers
        self._parse = parse
        self._window = window
        # A key is queued at most once and only while it has an event in memory.
        self._dispatcher = GroupDispatcher(capacity=window.max_events)
        self._in_memory = 0
        self._bytes = 0
        self._backlog = backlog
        self._spilled = False
        self._cursor = 0
        self._spill_high = 0
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._accepted = 0
        self._outcomes: collections.Counter[str] = collections.Counter()
        self._observers: list[trio.MemorySendChannel[tuple[JournalEntry, EventOutcome]]] = []
        self._log = LogLimiter(logger)
        self.monitor: EventMonitor = monitor or Monitors()
        self._processing = False
        self._update_idle()

    # --- intake -------------------------------------------------------------------------

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
        return await self._journal.append(event, self._admit)

    def _admit(self, entry: JournalEntry) -> None:
        # Called by the journal for each committed append, in seq order.
        self._accepted += 1
        self.monitor.accepted(entry)
        if not self._processing:
            return  # paged in from the journal once this process processes
        if entry.seq <= self._cursor:
            self._backlog += 1  # the feeder read it before this call: it counted it out
        elif not self._spilled and self._fits(entry.size):
            self._enqueue(entry)
            self._cursor = entry.seq
        else:
            self._spill(entry.seq)

    def _spill(self, seq: int) -> None:
        self._spilled = True
        self._spill_high = max(self._spill_high, seq)
        self._backlog += 1
        self._wake.set()

    def _fits(self, size: int) -> bool:
        if self._in_memory >= self._window.max_events:
            return False
        return self._in_memory == 0 or self._bytes + size <= self._window.max_bytes

    def _enqueue(self, entry: JournalEntry) -> None:
        # Events without a group id share one group per path: FIFO, one at a time (Ocean's
        # single-worker behaviour), whatever the number of workers.
        group_id = entry.event.group_id
        self._dispatcher.submit(entry, "" if group_id is None else "#" + group_id)
        self._in_memory += 1
        self._bytes += entry.size
        self._update_idle()

    def appended_elsewhere(self, high: int) -> None:
        """Other processes appended (or replayed) events numbered up to ``high``: page in
        those of this path."""
        if self._processing and high > self._cursor:
            self._spilled = True
            self._spill_high = max(self._spill_high, high)
            self._wake.set()
            self._update_idle()

    # --- processing -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the workers and the feeder until cancelled; ``started()`` once they wait.

        Starts by paging in every pending event of this path (a restart's backlog, or
        what arrived while this process was ingress only).
        """
        self._processing = True
        self._spilled = True
        self._cursor = 0
        self._spill_high = max(self._spill_high, self._journal.last_seq)
        self._update_idle()
        async with trio.open_nursery() as nursery:
            for _ in range(self._workers):
                nursery.start_soon(self._work, nursery)
            nursery.start_soon(self._feed)
            task_status.started()

    async def _feed(self) -> None:
        while True:
            room = self._window.max_events - self._in_memory
            if not self._spilled or room <= 0 or self._bytes >= self._window.max_bytes:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            high = self._journal.last_seq
            # Beside events in memory, only what fits the byte budget; into an empty window,
            # the next event whatever its size.
            alone = self._in_memory == 0
            page = await self._journal.pending_page(
                self.path,
                after=self._cursor,
                limit=min(room, PAGE_SIZE),
                max_bytes=self._window.max_bytes - self._bytes,
                at_least_one=alone,
            )
            for entry in page:
                if entry.seq > self._cursor:
                    self._enqueue(entry)
                    self._cursor = entry.seq
                    self._backlog = max(0, self._backlog - 1)
            if not page and alone:
                # Nothing pending beyond the cursor up to ``high``: all of it is loaded.
                self._cursor = max(self._cursor, high)
            elif not page:
                # The next event does not fit beside those in memory: wait for room.
                await self._wake.wait()
                self._wake = trio.Event()
            if self._cursor >= self._spill_high:
                self._spilled = False
                self._update_idle()

    async def _work(self, nursery: trio.Nursery) -> None:
        while True:
            group, entry = await self._dispatcher.take()
            started = trio.current_time()
            prepared = await self._prepare(entry)
            if prepared.writes:
                nursery.start_soon(self._finish, group, entry, prepared, started)
            else:
                await self._finish(group, entry, prepared, started)

    async def _finish(
        self, group: str, entry: JournalEntry, prepared: Prepared, started: float
    ) -> None:
        outcome = await prepared.finish()
        attempts = max((run.attempts for run in outcome.runs), default=0)
        await self._journal.complete(entry, outcome.status, outcome.error, attempts)
        self._dispatcher.release(group)
        self._in_memory -= 1
        self._bytes -= entry.size
        if self._spilled:
            self._wake.set()
        self._finished(entry, outcome, trio.current_time() - started)

    async def _prepare(self, entry: JournalEntry) -> Prepared:
        if not entry.parsed:
            try:
                payload = await self._parse(entry.event.body)
            except InvalidBodyError as error:
                logger.error("event %s: its stored body is unusable: %s", entry.seq, error)
                outcome = EventOutcome(EventStatus.DEAD, error=f"stored body unusable: {error}")
                return Prepared(outcome)
            entry = JournalEntry(entry.seq, attrs.evolve(entry.event, payload=payload))
        return await self._handler.prepare(entry.event)

    def _finished(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        self._outcomes[outcome.status.value] += 1
        self._log_outcome(entry, outcome, seconds)
        self.monitor.finished(entry, outcome, seconds)
        self._update_idle()
        for channel in self._observers:
            try:
                channel.send_nowait((entry, outcome))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                logger.debug("an outcome observer is full or gone; outcome not delivered")

    def _log_outcome(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        # One line per event: done ones at INFO, the others as warnings or errors, which a
        # flood (a misconfigured sender) would repeat: those are rate-limited per path.
        event, status = entry.event, outcome.status
        processors = ",".join(sorted({run.processor for run in outcome.runs})) or "-"
        fields = {
            "seq": entry.seq,
            "path": self.path,
            "status": status.value,
            "trace_id": event.trace_id,
            "delivery_id": event.delivery_id,
            "processors": processors,
            "duration_ms": round(seconds * 1000, 3),
        }
        ids = f"trace {event.trace_id}, delivery {event.delivery_id or '-'}"
        if status is EventStatus.DONE:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "event %s on %s done in %.1f ms by %s: %d upserted, %d deleted (%s)",
                    entry.seq,
                    self.path,
                    seconds * 1000,
                    processors,
                    outcome.upserts,
                    outcome.deletes,
                    ids,
                    extra={"event": fields},
                )
        elif status is EventStatus.DEAD:
            attempts = max((run.attempts for run in outcome.runs), default=0)
            self._log.error(
                (status, self.path),
                "event %s on %s is a dead letter after %d attempt(s): %s (%s)",
                entry.seq,
                self.path,
                attempts,
                outcome.error,
                ids,
                extra={"event": fields},
            )
        elif status is EventStatus.REJECTED:
            self._log.warning(
                (status, self.path),
                "event %s on %s was rejected: %s (%s)",
                entry.seq,
                self.path,
                outcome.error,
                ids,
                extra={"event": fields},
            )
        elif status is EventStatus.NO_MATCH:
            self._log.warning(
                (status, self.path),
                "no processor accepted event %s on %s (%s)",
                entry.seq,
                self.path,
                ids,
                extra={"event": fields},
            )

    def _is_idle(self) -> bool:
        # A pipeline that does not process (yet) has nothing of its own to finish.
        return self._in_memory == 0 and not (self._spilled and self._processing)

    def _update_idle(self) -> None:
        idle = self._is_idle()
        if idle and not self._idle.is_set():
            self._idle.set()
        elif not idle and self._idle.is_set():
            self._idle = trio.Event()

    def observe(self, channel: trio.MemorySendChannel[tuple[JournalEntry, EventOutcome]]) -> None:
        """Send every finished ``(entry, outcome)`` to ``channel`` (without waiting; drops when full)."""
        self._observers.append(channel)

    async def wait_idle(self) -> None:
        """Wait until no event of this path is pending (in memory or in the journal)."""
        while not self._is_idle():
            await self._idle.wait()

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(
            path=self.path,
            workers=self._workers,
            accepted=self._accepted,
            outcomes=dict(self._outcomes),
            in_memory=self._in_memory,
            in_memory_bytes=self._bytes,
            backlog=self._backlog,
            dispatcher=self._dispatcher.statistics(),
        )
