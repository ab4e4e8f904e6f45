"""Pipeline and dispatcher: FIFO per group, groups in parallel, bounded, observable."""

from __future__ import annotations

import collections

import pytest
import trio

from ocean_trio._exceptions import JournalFullError
from ocean_trio.live_events._dispatcher import GroupDispatcher
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import EventStatus, JournalEntry, MemoryJournal
from ocean_trio.live_events._outcome import EventOutcome
from ocean_trio.live_events._pipeline import LiveEventsPipeline


def event(group: str | None, n: int) -> WebhookEvent:
    return WebhookEvent.from_dict({"payload": {"group": group, "n": n}, "headers": {}})


class ScriptedHandler:
    """Groups by payload['group']; each event waits for the test to let it finish."""

    def __init__(self) -> None:
        self.started: list[tuple[str | None, int]] = []
        self.running: collections.Counter[str | None] = collections.Counter()
        self.max_running: collections.Counter[str | None] = collections.Counter()
        self.gates: dict[int, trio.Event] = {}
        self.started_event = trio.Event()

    def group_of(self, event: WebhookEvent) -> str | None:
        group = event.payload["group"]
        return None if group is None else str(group)

    async def handle(self, event: WebhookEvent) -> EventOutcome:
        group, n = event.payload["group"], event.payload["n"]
        self.started.append((group, n))
        self.running[group] += 1
        self.max_running[group] = max(self.max_running[group], self.running[group])
        self.started_event.set()
        gate = self.gates.setdefault(n, trio.Event())
        await gate.wait()
        self.running[group] -= 1
        return EventOutcome(EventStatus.DONE)


def make_pipeline(
    handler: ScriptedHandler, *, workers: int, capacity: int = 100
) -> LiveEventsPipeline:
    return LiveEventsPipeline(
        "/webhook", handler, MemoryJournal(max_pending=capacity), workers=workers, capacity=capacity
    )


async def submit_all(pipeline: LiveEventsPipeline, events: list[WebhookEvent]) -> None:
    for e in events:
        # make_event sets group_id from the handler, as ingress does
        await pipeline.submit(pipeline.make_event(e.body, e.payload, e.headers))


async def test_same_group_is_fifo_and_never_concurrent_with_eight_workers() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=8)
    send, recv = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](1000)
    pipeline.observe(send)
    events = [event(f"g{i % 3}", i) for i in range(30)]
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, events)
        finished: list[tuple[str, int]] = []
        # Release events in an order that would reorder them if groups were not serialised.
        for n in reversed(range(30)):
            handler.gates.setdefault(n, trio.Event()).set()
        while len(finished) < 30:
            entry, _ = await recv.receive()
            finished.append((entry.event.payload["group"], entry.event.payload["n"]))
        nursery.cancel_scope.cancel()
    for group in ("g0", "g1", "g2"):
        assert [n for g, n in finished if g == group] == sorted(
            n for g, n in finished if g == group
        )
        assert handler.max_running[group] == 1


async def test_different_groups_run_in_parallel() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, [event(f"g{i}", i) for i in range(4)])
        with trio.fail_after(5):
            while len(handler.started) < 4:
                await trio.testing.wait_all_tasks_blocked()
        # all four are in flight at once, none finished
        assert sorted(n for _, n in handler.started) == [0, 1, 2, 3]
        assert pipeline.statistics().dispatcher.in_flight == 4
        nursery.cancel_scope.cancel()


async def test_a_slow_group_does_not_block_others() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=2)
    send, recv = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](100)
    pipeline.observe(send)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        # slow group "a" (event 0 never released), fast group "b"
        await submit_all(pipeline, [event("a", 0), event("a", 1), event("b", 2), event("b", 3)])
        handler.gates.setdefault(2, trio.Event()).set()
        handler.gates.setdefault(3, trio.Event()).set()
        done = [(await recv.receive())[0].event.payload["n"] for _ in range(2)]
        assert done == [2, 3]
        assert ("a", 1) not in handler.started
        nursery.cancel_scope.cancel()


async def test_events_without_group_key_are_serial_per_path() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, [event(None, i) for i in range(3)])
        await trio.testing.wait_all_tasks_blocked()
        assert handler.started == [(None, 0)]
        handler.gates.setdefault(0, trio.Event()).set()
        await trio.testing.wait_all_tasks_blocked()
        assert handler.started == [(None, 0), (None, 1)]
        nursery.cancel_scope.cancel()


async def test_journal_limit_refuses_beyond_capacity_and_counts_in_flight() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=1, capacity=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, [event("a", i) for i in range(3)])
        with pytest.raises(JournalFullError):
            await submit_all(pipeline, [event("a", 3)])
        handler.gates.setdefault(0, trio.Event()).set()
        await trio.testing.wait_all_tasks_blocked()
        await submit_all(pipeline, [event("a", 4)])  # room again once one finished
        nursery.cancel_scope.cancel()


async def test_wait_idle_returns_when_everything_finished() -> None:
    handler = ScriptedHandler()
    pipeline = make_pipeline(handler, workers=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await pipeline.wait_idle()  # idle before anything arrives
        await submit_all(pipeline, [event("a", 0), event("b", 1)])
        idle = False

        async def waiter() -> None:
            nonlocal idle
            await pipeline.wait_idle()
            idle = True

        nursery.start_soon(waiter)
        handler.gates.setdefault(0, trio.Event()).set()
        await trio.testing.wait_all_tasks_blocked()
        assert not idle
        handler.gates.setdefault(1, trio.Event()).set()
        await trio.testing.wait_all_tasks_blocked()
        assert idle
        assert pipeline.statistics().outcomes == {"done": 2}
        nursery.cancel_scope.cancel()


def test_dispatcher_round_robins_ready_groups() -> None:
    dispatcher = GroupDispatcher(capacity=10)
    entries = [JournalEntry(i, event(g, i)) for i, g in enumerate("aab")]
    for e in entries:
        dispatcher.submit(e, str(e.event.payload["group"]))
    stats = dispatcher.statistics()
    assert (stats.queued, stats.in_flight, stats.groups) == (3, 0, 2)


async def test_dispatcher_release_makes_next_event_of_group_ready() -> None:
    dispatcher = GroupDispatcher(capacity=10)
    for i, g in enumerate("aab"):
        dispatcher.submit(JournalEntry(i, event(g, i)), g)
    group, first = await dispatcher.take()
    assert (group, first.seq) == ("a", 0)
    group, second = await dispatcher.take()
    assert (group, second.seq) == ("b", 2)  # a's second event waits for a's first
    dispatcher.release("a")
    group, third = await dispatcher.take()
    assert (group, third.seq) == ("a", 1)
    dispatcher.release("b")
    dispatcher.release("a")
    assert dispatcher.statistics().groups == 0


async def test_parked_events_keep_only_their_body_while_queued() -> None:
    handler = ScriptedHandler()
    pipeline = LiveEventsPipeline(
        "/webhook", handler, MemoryJournal(max_pending=10), workers=1, capacity=10, park_events=True
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for n in range(3):
            payload = {"group": "g", "n": n}
            body = f'{{"group": "g", "n": {n}}}'.encode()
            await pipeline.submit(pipeline.make_event(body, payload, {}))
        await handler.started_event.wait()
        # the first is running; the two behind it wait without their parsed payload
        queued = list(pipeline._dispatcher._groups["#g"])
        assert [e.event.payload for e in queued] == [{}, {}]
        assert [e.event.body for e in queued] == [
            b'{"group": "g", "n": 1}',
            b'{"group": "g", "n": 2}',
        ]
        for n in range(3):
            handler.gates.setdefault(n, trio.Event()).set()
        await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    assert handler.started == [("g", 0), ("g", 1), ("g", 2)]  # payloads parsed again
