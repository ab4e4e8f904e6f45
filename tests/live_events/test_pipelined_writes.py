"""A worker does not wait for writes: it hands an event's write to a task and takes the next
ready group, while the event's own group stays held, and the event unfinished in the journal,
until its write is done."""

from __future__ import annotations

import trio
import trio.testing

from ocean_trio._entity import Entity
from ocean_trio.catalog._changes import EntityChanges
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import EventStatus, JournalEntry
from ocean_trio.live_events._json import BodyParser
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.live_events._outcome import EventOutcome, Prepared
from ocean_trio.live_events._pipeline import LiveEventsPipeline


class GatedWrites:
    """Each event is prepared at once into one entity; writes wait for ``gate``."""

    def __init__(self) -> None:
        self.prepared: list[tuple[str, int]] = []
        self.written: list[tuple[str, int]] = []
        self.gate = trio.Event()

    def group_of(self, event: WebhookEvent) -> str | None:
        return str(event.payload["group"])

    async def prepare(self, event: WebhookEvent) -> Prepared:
        await trio.lowlevel.checkpoint()
        key = (str(event.payload["group"]), int(event.payload["n"]))
        self.prepared.append(key)
        entity = Entity(identifier=f"{key[0]}-{key[1]}", blueprint="item")
        outcome = EventOutcome(EventStatus.DONE, upserts=1)

        async def apply(changes: EntityChanges) -> None:
            await self.gate.wait()
            self.written.append(key)

        return Prepared(outcome, EntityChanges((entity,)), apply)


def event(group: str, n: int) -> WebhookEvent:
    return WebhookEvent.from_dict({"payload": {"group": group, "n": n}, "headers": {}})


async def test_one_worker_prepares_other_groups_while_a_write_waits() -> None:
    handler = GatedWrites()
    journal = MemoryJournal(max_pending=100)
    pipeline = LiveEventsPipeline(
        "/webhook", handler, journal, workers=1, parse=BodyParser().parse_object_async
    )
    send, recv = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](100)
    pipeline.observe(send)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for e in [event("a", 0), event("b", 1), event("a", 2), event("c", 3)]:
            await pipeline.submit(pipeline.make_event(e.body, e.payload, e.headers))
        await trio.testing.wait_all_tasks_blocked()
        # The one worker went through every ready group; "a"'s second event waits for the
        # first's write, and nothing is finished while the writes wait.
        assert handler.prepared == [("a", 0), ("b", 1), ("c", 3)]
        assert pipeline.statistics().in_memory == 4
        assert pipeline.statistics().outcomes == {}
        # none is recorded done in the journal before its write is
        assert (journal.statistics().pending, journal.statistics().completed) == (4, 0)
        handler.gate.set()
        finished = [(await recv.receive())[0].event.payload["n"] for _ in range(4)]
        nursery.cancel_scope.cancel()
    assert handler.prepared == [("a", 0), ("b", 1), ("c", 3), ("a", 2)]
    assert finished.index(0) < finished.index(2)  # a group's events finish in order
    assert handler.written.index(("a", 0)) < handler.written.index(("a", 2))
    assert pipeline.statistics().outcomes == {"done": 4}


async def test_a_failed_write_makes_the_event_a_dead_letter_and_releases_its_group() -> None:
    class FailingWrites(GatedWrites):
        async def prepare(self, event: WebhookEvent) -> Prepared:
            prepared = await super().prepare(event)

            async def apply(changes: EntityChanges) -> None:
                await trio.lowlevel.checkpoint()
                if event.payload["n"] == 0:
                    raise RuntimeError("the sink refused it")

            return Prepared(prepared.outcome, prepared.changes, apply)

    handler = FailingWrites()
    pipeline = LiveEventsPipeline(
        "/webhook",
        handler,
        MemoryJournal(max_pending=10),
        workers=2,
        parse=BodyParser().parse_object_async,
    )
    send, recv = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](10)
    pipeline.observe(send)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for e in [event("a", 0), event("a", 1)]:
            await pipeline.submit(pipeline.make_event(e.body, e.payload, e.headers))
        outcomes = [await recv.receive() for _ in range(2)]
        nursery.cancel_scope.cancel()
    (first, dead), (second, done) = outcomes
    assert (first.event.payload["n"], dead.status) == (0, EventStatus.DEAD)
    assert dead.error == "apply failed: RuntimeError('the sink refused it')"
    assert (second.event.payload["n"], done.status) == (1, EventStatus.DONE)
