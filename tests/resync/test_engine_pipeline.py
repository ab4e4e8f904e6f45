"""The engine's pipeline: the next batch is fetched and mapped while one is written, in order,
with a bounded number of batches in flight, and a failing write stops its handler cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from ocean_trio import Integration
from ocean_trio._entity import EntityKey
from ocean_trio.catalog._changes import EntityChanges, WriteOptions
from ocean_trio.mapping._compiled import CompiledPortAppConfig
from ocean_trio.mapping._live_changes import resync_changes
from ocean_trio.mapping._mapper import MappingIssue
from ocean_trio.mapping._models import parse_port_app_config
from ocean_trio.resync._engine import MAPPED_AHEAD, run_resync
from ocean_trio.resync._state import KindProgress, Reconciliation, ResyncState, ResyncStatus
from ocean_trio.resync._target import ResyncRun, ResyncWriter, WriteCounts

MAPPING = {
    "resources": [
        {
            "kind": kind,
            "selector": {"query": "true"},
            "port": {
                "entity": {
                    "mappings": {"identifier": ".id", "title": ".title", "blueprint": f'"{kind}"'}
                }
            },
        }
        for kind in ("item", "other")
    ]
}
COMPILED = CompiledPortAppConfig.compile(parse_port_app_config(MAPPING))
PAGES = 6


class Writer:
    """Records the keys of each write; each write waits for ``gate`` when one is set, and
    call ``fail_on`` raises."""

    def __init__(self) -> None:
        self.writes: list[list[EntityKey]] = []
        self.gate: trio.Event | None = None
        self.writing = trio.Event()
        self.fail_on: int | None = None  # which call (0, 1, ...) raises
        self.calls = 0

    async def write(self, changes: EntityChanges) -> WriteCounts:
        self.writing.set()
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        self.calls += 1
        if self.fail_on == self.calls - 1:
            raise RuntimeError("the sink is down")
        self.writes.append([e.key for e in changes.upserts])
        return WriteCounts(upserted=len(changes.upserts))

    async def reconcile(self, threshold: float, options: WriteOptions) -> Reconciliation:
        await trio.lowlevel.checkpoint()
        return Reconciliation(owned=0, stale=0, deleted=0)


class Target:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    @asynccontextmanager
    async def open_resync(self, run: ResyncRun) -> AsyncIterator[ResyncWriter]:
        await trio.lowlevel.checkpoint()
        yield self.writer


class Quiet:
    def batch(self, state: ResyncState, kind: KindProgress) -> None:
        pass

    def kind_done(self, state: ResyncState, kind: KindProgress) -> None:
        pass


class Source:
    """Pages of two items; counts the pages asked for and whether the generator was closed."""

    def __init__(self, pages: int = PAGES) -> None:
        self.pages = pages
        self.fetched = 0
        self.closed = False

    async def items(self, kind: str) -> AsyncIterator[list[dict[str, Any]]]:
        try:
            for page in range(self.pages):
                await trio.lowlevel.checkpoint()
                self.fetched += 1
                yield [{"id": f"{kind}-{page}-{n}", "title": "t"} for n in range(2)]
        finally:
            self.closed = True


async def map_batch(
    compiled: CompiledPortAppConfig, index: int, items: list[dict[str, Any]]
) -> tuple[EntityChanges, list[MappingIssue]]:
    await trio.lowlevel.checkpoint()
    return resync_changes(compiled, index, items)


def integration(source: Source, other: Source | None = None) -> Integration:
    built = Integration()
    built.on_resync("item")(source.items)
    built.on_resync("other")((other or Source(pages=1)).items)
    return built


async def resync(built: Integration, writer: Writer) -> ResyncState:
    state = ResyncState(id=1, reason="test")
    await run_resync(
        state,
        integration=built,
        mapping=COMPILED,
        target=Target(writer),
        map_batch=map_batch,
        progress=Quiet(),
    )
    return state


async def test_batches_are_written_in_order_one_at_a_time() -> None:
    source, writer = Source(), Writer()
    state = await resync(integration(source), writer)
    assert state.status is ResyncStatus.COMPLETED
    expected = [[("item", f"item-{p}-{n}") for n in range(2)] for p in range(PAGES)]
    assert writer.writes == [*expected, [("other", "other-0-0"), ("other", "other-0-1")]]
    assert [(k.kind, k.items, k.upserted) for k in state.kinds] == [
        ("item", 2 * PAGES, 2 * PAGES),
        ("other", 2, 2),
    ]


async def test_the_next_batches_are_fetched_and_mapped_while_one_is_written_and_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    source, writer = Source(), Writer()
    writer.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resync, integration(source), writer)
        await writer.writing.wait()
        await trio.testing.wait_all_tasks_blocked()
        # Batch 1 is being written, MAPPED_AHEAD wait in the channel, one more is mapped and
        # waits to be sent: memory holds that many batches, however long the write takes.
        assert source.fetched == 1 + MAPPED_AHEAD + 1
        await trio.sleep(60)
        assert source.fetched == 1 + MAPPED_AHEAD + 1
        writer.gate.set()
    assert source.fetched == PAGES


async def test_a_failed_write_stops_its_handler_which_is_closed_and_the_next_kind_runs() -> None:
    source, other, writer = Source(), Source(pages=1), Writer()
    writer.fail_on = 1  # the second write; the other kind's is the third
    state = await resync(integration(source, other), writer)
    assert state.status is ResyncStatus.FAILED
    assert state.kinds[0].errors == ["items failed: RuntimeError('the sink is down')"]
    assert state.kinds[1].errors == []
    assert (state.kinds[0].upserted, state.kinds[1].upserted) == (2, 2)
    assert source.closed  # its generator was closed, not left to the garbage collector
    assert source.fetched < PAGES
    assert other.fetched == 1
    assert state.reconciliation is None  # any error: no deletion


async def test_errors_are_recorded_in_batch_order() -> None:
    built = Integration()

    @built.on_resync("item")
    async def items(kind: str) -> AsyncIterator[Any]:
        yield [{"id": "a", "title": "t"}]
        yield "not a list"
        yield [{"id": "b", "title": "t"}]
        raise RuntimeError("the source is down")

    @built.on_resync("other")
    async def others(kind: str) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        return [{"id": "c", "title": "t"}]

    writer = Writer()
    state = await resync(built, writer)
    assert state.kinds[0].errors == [
        "items: batch 2 is str, not a list of raw items",
        "items failed: RuntimeError('the source is down')",
    ]
    assert writer.writes == [[("item", "a")], [("item", "b")], [("other", "c")]]


async def test_a_cancelled_resync_lets_the_handler_close_with_its_awaits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed = trio.Event()

    # No await of its own between pages: the cancellation reaches the engine, never the
    # handler's own await (where trio cancels its finally's awaits too, unless it shields).
    async def items(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
        try:
            for page in range(PAGES):
                yield [{"id": f"{kind}-{page}", "title": "t"}]
        finally:
            await trio.sleep(1)  # e.g. closing its HTTP client
            closed.set()

    built = Integration()
    built.on_resync("item")(items)
    writer = Writer()
    writer.gate = trio.Event()  # never set: the resync is cancelled mid-write
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resync, built, writer)
        await writer.writing.wait()
        nursery.cancel_scope.cancel()
    assert closed.is_set()
