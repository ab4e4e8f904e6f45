"""Pipeline and dispatcher: FIFO per group, groups in parallel, bounded, observable."""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from ocean_trio._exceptions import JournalFullError
from ocean_trio.live_events._dispatcher import GroupDispatcher
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._ingress import WebhookIngress
from ocean_trio.live_events._journal import EventStatus, Journal, JournalEntry
from ocean_trio.live_events._json import BodyParser
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.live_events._outcome import EventOutcome, Prepared
from ocean_trio.live_events._pipeline import LiveEventsPipeline, Window
from ocean_trio.live_events._sqlite_journal import SqliteJournal

PARSER = BodyParser()
DEFAULT_WINDOW = Window()


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

    async def prepare(self, event: WebhookEvent) -> Prepared:
        group, n = event.payload["group"], event.payload["n"]
        self.started.append((group, n))
        self.running[group] += 1
        self.max_running[group] = max(self.max_running[group], self.running[group])
        self.started_event.set()
        gate = self.gates.setdefault(n, trio.Event())
        await gate.wait()
        self.running[group] -= 1
        return Prepared(EventOutcome(EventStatus.DONE))


def make_pipeline(
    handler: ScriptedHandler | RecordingHandler,
    *,
    workers: int,
    capacity: int = 100,
    journal: Journal | None = None,
    window: Window = DEFAULT_WINDOW,
    backlog: int = 0,
) -> LiveEventsPipeline:
    return LiveEventsPipeline(
        "/webhook",
        handler,
        journal or MemoryJournal(max_pending=capacity),
        workers=workers,
        parse=PARSER.parse_object_async,
        window=window,
        backlog=backlog,
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


class RecordingHandler:
    """Finishes every event at once; records the order and the pipeline's memory use."""

    def __init__(self) -> None:
        self.done: list[tuple[str, int]] = []
        self.max_in_memory = 0
        self.pipeline: LiveEventsPipeline | None = None
        self.gate = trio.Event()  # set by the test once everything is submitted
        self.gate.set()

    def group_of(self, event: WebhookEvent) -> str | None:
        return str(event.payload["group"])

    async def prepare(self, event: WebhookEvent) -> Prepared:
        await self.gate.wait()
        assert self.pipeline is not None
        self.max_in_memory = max(self.max_in_memory, self.pipeline.statistics().in_memory)
        self.done.append((event.payload["group"], event.payload["n"]))
        return Prepared(EventOutcome(EventStatus.DONE))


def _in_group_order(done: list[tuple[str, int]]) -> bool:
    groups = {g for g, _ in done}
    return all(
        [n for h, n in done if h == g] == sorted(n for h, n in done if h == g) for g in groups
    )


@pytest.fixture(params=["memory", "sqlite"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    async with trio.open_nursery() as nursery:
        if request.param == "memory":
            memory = MemoryJournal(max_pending=10_000)
            await nursery.start(memory.run)
            yield memory
        else:
            async with SqliteJournal.open(tmp_path / "j.sqlite3", max_pending=10_000) as sqlite:
                await nursery.start(sqlite.run)
                yield sqlite
        nursery.cancel_scope.cancel()


async def test_a_backlog_ten_times_the_window_is_paged_in_in_order(journal: Journal) -> None:
    handler = RecordingHandler()
    pipeline = make_pipeline(handler, workers=4, journal=journal, window=Window(max_events=5))
    handler.pipeline = pipeline
    handler.gate = trio.Event()  # nothing finishes until all are in: most of them spill
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, [event(f"g{i % 7}", i) for i in range(50)])
        assert pipeline.statistics().backlog == 45
        handler.gate.set()
        with trio.fail_after(10):
            await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    assert sorted(n for _, n in handler.done) == list(range(50))  # each exactly once
    assert _in_group_order(handler.done)
    assert handler.max_in_memory <= 5
    stats = pipeline.statistics()
    assert (stats.accepted, stats.in_memory, stats.backlog) == (50, 0, 0)


async def test_a_byte_window_spills_big_bodies() -> None:
    handler = RecordingHandler()
    pipeline = make_pipeline(handler, workers=1, window=Window(max_events=100, max_bytes=100))
    handler.pipeline = pipeline
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for n in range(6):  # ~90-byte bodies: a 100-byte window holds one at a time
            payload = {"group": "g", "n": n, "pad": "x" * 60}
            await pipeline.submit(pipeline.make_event(json.dumps(payload).encode(), payload, {}))
        with trio.fail_after(5):
            await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    assert handler.done == [("g", n) for n in range(6)]
    assert handler.max_in_memory == 1


async def test_start_up_backlog_is_processed_before_new_events_of_a_group(
    journal: Journal,
) -> None:
    # What a previous run left pending: 30 events in 30 groups, and g0 again.
    for n in range(30):
        payload = {"group": f"g{n}", "n": n}
        body = json.dumps(payload).encode()
        stored = WebhookEvent.from_body("/webhook", body, payload, {}, group_id=f"g{n}")
        await journal.append(stored, _ignore)
    handler = RecordingHandler()
    pipeline = make_pipeline(
        handler, workers=3, journal=journal, window=Window(max_events=3), backlog=30
    )
    handler.pipeline = pipeline
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await submit_all(pipeline, [event("g0", 100)])  # arrives during the replay
        with trio.fail_after(10):
            await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    assert sorted(n for _, n in handler.done) == [*range(30), 100]
    assert handler.done.index(("g0", 0)) < handler.done.index(("g0", 100))
    assert handler.max_in_memory <= 3


async def test_a_replay_during_traffic_is_paged_in_and_loses_nothing(journal: Journal) -> None:
    handler = RecordingHandler()
    pipeline = make_pipeline(handler, workers=2, journal=journal, window=Window(max_events=4))
    handler.pipeline = pipeline
    dead = []
    for n in range(40):  # dead letters of an earlier outage
        payload = {"group": f"d{n}", "n": n}
        body = json.dumps(payload).encode()
        entry = await journal.append(WebhookEvent.from_body("/other", body, payload, {}), _ignore)
        dead.append(entry)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        # the dead letters belong to this path once replayed (a path renamed back, say)
        for entry in dead:
            await journal.complete(entry, EventStatus.DEAD, "x")
        await journal.flush()
        journal.watch(pipeline.appended_elsewhere)  # as open_app does
        result = await journal.replay()
        await submit_all(pipeline, [event("new", 1000)])  # after the replayed ones
        assert result.replayed
        with trio.fail_after(10):
            while len(handler.done) < 1:
                await trio.testing.wait_all_tasks_blocked()
            await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    # the replayed events are for /other: the pipeline of /webhook only processes its own
    assert handler.done == [("new", 1000)]


def _ignore(entry: JournalEntry) -> None:
    pass


async def test_an_event_kept_in_memory_is_parsed_once(
    monkeypatch: pytest.MonkeyPatch, journal: Journal
) -> None:
    parsed: list[bytes] = []
    real = BodyParser._parse

    def counting(
        self: BodyParser, body: bytes, hook: Callable[[list[tuple[str, object]]], object] | None
    ) -> object:
        parsed.append(body)
        return real(self, body, hook)

    monkeypatch.setattr(BodyParser, "_parse", counting)
    handler = RecordingHandler()
    pipeline = make_pipeline(handler, workers=1, journal=journal, window=Window(max_events=1))
    handler.pipeline = pipeline
    ingress = WebhookIngress(
        {"/integration/webhook": pipeline}, max_body_bytes=1 << 20, accepting=lambda: True
    )
    handler.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for n in range(2):  # the first stays in memory; the second spills (window of one)
            body = json.dumps({"group": "g", "n": n}).encode()
            await _post(ingress, pipeline, body)
        assert len(parsed) == 2  # at ingress, once each
        handler.gate.set()
        with trio.fail_after(5):
            await pipeline.wait_idle()
        nursery.cancel_scope.cancel()
    assert handler.done == [("g", 0), ("g", 1)]
    # the worker reused the first event's payload; the spilled one was read back and parsed
    assert len(parsed) == 2 + (0 if isinstance(journal, MemoryJournal) else 1)


async def _post(ingress: WebhookIngress, pipeline: LiveEventsPipeline, body: bytes) -> None:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        await trio.lowlevel.checkpoint()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/integration/webhook", "headers": []}
    await ingress(pipeline, scope, receive, send)
    assert sent[0]["status"] == 202
