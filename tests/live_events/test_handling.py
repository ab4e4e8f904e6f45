"""Processing one event, between pipeline and processors: the processing deadline in virtual
time, each run's own payload, and what ends in the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from ocean_trio import (
    EntityChanges,
    EventPayload,
    EventStatus,
    ResourceConfig,
    WebhookEvent,
    WebhookEventRawResults,
)
from ocean_trio.live_events._handling import EventHandler
from ocean_trio.live_events._journal import JournalEntry
from ocean_trio.live_events._json import BodyParser
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.live_events._outcome import EventOutcome
from ocean_trio.live_events._pipeline import LiveEventsPipeline
from ocean_trio.live_events._run import RunStatus
from ocean_trio.mapping._compiled import CompiledPortAppConfig
from ocean_trio.mapping._models import load_port_app_config

from ..conftest import ITEM_MAPPING
from ..processors import ItemProcessor

PARSER = BodyParser()


def compiled(tmp_path: Path) -> CompiledPortAppConfig:
    path = tmp_path / "port-app-config.yml"
    path.write_text(ITEM_MAPPING)  # kind "item", two resources
    return CompiledPortAppConfig.compile(load_port_app_config(path))


class Applied:
    def __init__(self) -> None:
        self.changes: list[EntityChanges] = []

    async def __call__(self, changes: EntityChanges) -> None:
        await trio.lowlevel.checkpoint()
        self.changes.append(changes)


def handler_for(
    processor: type[ItemProcessor], tmp_path: Path, applied: Applied, *, timeout: float = 90.0
) -> EventHandler:
    mapping = compiled(tmp_path)
    return EventHandler(
        [processor],
        mapping=lambda: mapping,
        apply=applied,
        max_event_processing_seconds=timeout,
        parser=PARSER,
    )


def item_event(**item: Any) -> WebhookEvent:
    return WebhookEvent.from_dict({"payload": {"item": {"status": "open", **item}}, "headers": {}})


class Hanging(ItemProcessor):
    """``handle_event`` never returns; records the virtual time of ``cancel()``."""

    cancelled_at: list[float] = []

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def cancel(self) -> None:
        Hanging.cancelled_at.append(trio.current_time())


async def test_a_run_past_the_deadline_is_cancelled_and_the_event_dead_lettered(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    Hanging.cancelled_at = []
    applied = Applied()
    handler = handler_for(Hanging, tmp_path, applied, timeout=90.0)
    journal = MemoryJournal(max_pending=10)
    pipeline = LiveEventsPipeline(
        "/webhook", handler, journal, workers=1, parse=PARSER.parse_object_async
    )
    send, receive = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](10)
    pipeline.observe(send)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        start = trio.current_time()
        event = item_event(id="T-1")
        await pipeline.submit(pipeline.make_event(event.body, event.payload, {}))
        with trio.fail_after(1000):  # virtual time: without the deadline this fails, not hangs
            entry, outcome = await receive.receive()
        nursery.cancel_scope.cancel()
    # both resources' runs were cancelled at the deadline exactly, and told so
    assert trio.current_time() - start == 90.0
    assert [t - start for t in Hanging.cancelled_at] == [90.0, 90.0]
    assert outcome.status is EventStatus.DEAD
    assert [run.status for run in outcome.runs] == [RunStatus.TIMED_OUT] * 2
    assert outcome.error == "Hanging: timed out after 90s; Hanging: timed out after 90s"
    assert not any(applied.changes)  # nothing to write
    [record] = await journal.records(EventStatus.DEAD)
    assert (record.seq, record.error) == (entry.seq, outcome.error)


async def test_one_run_timing_out_does_not_hold_back_the_other(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    class HangsForUrgent(ItemProcessor):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            if resource_config.port.entity.mappings.blueprint == '"urgentItem"':
                await trio.sleep_forever()
            return await super().handle_event(payload, resource_config)

    applied = Applied()
    handler = handler_for(HangsForUrgent, tmp_path, applied, timeout=5.0)
    with trio.fail_after(1000):
        outcome = await handler.handle(item_event(id="T-2", priority="high"))
    assert [run.status for run in outcome.runs] == [RunStatus.SUCCEEDED, RunStatus.TIMED_OUT]
    assert outcome.status is EventStatus.DEAD  # kept, so it can be replayed
    [changes] = applied.changes  # what succeeded was applied
    assert [e.blueprint for e in changes.upserts] == ["item"]


async def test_each_run_works_on_its_own_copy_of_the_payload(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    class Mutating(ItemProcessor):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            seen.append(dict(payload["item"]))
            payload["item"]["title"] = "changed by " + str(
                resource_config.port.entity.mappings.blueprint
            )
            await trio.lowlevel.checkpoint()
            return WebhookEventRawResults([], [])

    for big in (False, True):  # a big body's copies are parsed on a worker thread
        seen.clear()
        handler = EventHandler(
            [Mutating],
            mapping=lambda: compiled(tmp_path),
            apply=Applied(),
            max_event_processing_seconds=90.0,
            parser=BodyParser(off_loop_bytes=0) if big else PARSER,
        )
        await handler.handle(item_event(id="C-1", title="original", priority="high"))
        assert [s["title"] for s in seen] == ["original", "original"]
