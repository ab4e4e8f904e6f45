"""Resyncs into the local catalog, on a real app: batches, reconciliation and its safety rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from ocean_trio import Integration, event
from ocean_trio.resync._state import ResyncState, ResyncStatus
from ocean_trio.testing import TestServer, make_settings, serve_integration

from ..conftest import ITEM_MAPPING


class Source:
    """The third-party data a resync reads, changeable between resyncs; can be held at a gate."""

    def __init__(self, ids: list[str]) -> None:
        self.items = {i: {"id": i, "title": i, "status": "open", "priority": "low"} for i in ids}
        self.gate: trio.Event | None = None
        self.reached_gate = trio.Event()
        self.fail = False
        self.seen_resources: list[str] = []

    async def pages(self, kind: str, size: int = 2) -> AsyncIterator[list[dict[str, Any]]]:
        self.seen_resources.append(event.resource_config.port.entity.mappings.blueprint)
        items = list(self.items.values())
        for start in range(0, len(items), size):
            if start and self.gate is not None:
                self.reached_gate.set()
                await self.gate.wait()
            if self.fail and start:
                raise RuntimeError("the source is down")
            yield [dict(item) for item in items[start : start + size]]


def source_integration(root: Path, source: Source) -> Integration:
    integration = Integration(root)

    @integration.on_resync("item")
    async def items(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
        async for page in source.pages(kind):
            yield page

    return integration


@asynccontextmanager
async def resync_app(
    root: Path, tmp_path: Path, source: Source, **settings: Any
) -> AsyncIterator[TestServer]:
    options = {
        "resync": {"coalesceSeconds": 0},
        "eventListener": {"type": "POLLING", "resyncOnStart": False},
        **settings,
    }
    async with serve_integration(
        source_integration(root, source), make_settings(tmp_path, **options)
    ) as server:
        yield server


async def resync(server: TestServer) -> ResyncState:
    with trio.fail_after(10):
        return await server.resync()


async def ids(server: TestServer, blueprint: str = "item") -> list[str]:
    return [e["identifier"] for e in await server.catalog.list_entities(blueprint)]


async def test_a_resync_writes_every_batch_and_reports_each_kind(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source([f"A{n}" for n in range(5)])
    source.items["A1"]["priority"] = "high"
    async with resync_app(integration_root, tmp_path, source) as server:
        state = await resync(server)
        assert state.status is ResyncStatus.COMPLETED
        assert await ids(server) == ["A0", "A1", "A2", "A3", "A4"]
        assert await ids(server, "urgentItem") == ["A1"]  # the selector of resources[1]
        # one handler call per resource, each seeing its own resource
        assert source.seen_resources == ['"item"', '"urgentItem"']
        figures = [(k.kind, k.index, k.items, k.upserted, k.skipped) for k in state.kinds]
        assert figures == [("item", 0, 5, 5, 0), ("item", 1, 5, 1, 0)]
        shown = (await server.client.get("/resync")).json()["resync"]
        assert (shown["status"], shown["kinds"][0]["items"]) == ("completed", 5)

        again = await resync(server)  # nothing changed: nothing written, nothing deleted
        assert [(k.upserted, k.skipped) for k in again.kinds] == [(0, 5), (0, 1)]
        assert again.reconciliation is not None
        assert (again.reconciliation.stale, again.reconciliation.deleted) == (0, 0)


async def test_entities_no_longer_produced_are_deleted(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["B0", "B1", "B2", "B3", "B4"])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        del source.items["B2"]
        state = await resync(server)
        assert state.reconciliation is not None
        assert (state.reconciliation.owned, state.reconciliation.stale) == (5, 1)
        assert state.reconciliation.deleted == 1
        assert await ids(server) == ["B0", "B1", "B3", "B4"]


async def test_what_a_live_event_writes_during_a_resync_is_neither_deleted_nor_overwritten(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["C0", "C1", "C2", "C3", "C4"])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        # The next resync reads C0/C1, then waits; meanwhile live events write C2 and C3.
        # C3 and C4 no longer exist at the source, as the resync sees it.
        source.items["C1"]["title"] = "from the resync (older)"
        del source.items["C3"]
        del source.items["C4"]
        source.gate = trio.Event()
        assert server.app.resyncs is not None
        server.app.resyncs.request("test")
        with trio.fail_after(10):
            await source.reached_gate.wait()
        await server.app.register_raw("item", [{"id": "C3", "title": "live", "status": "open"}])
        await server.app.register_raw(
            "item", [{"id": "C2", "title": "live, newer", "status": "open"}]
        )
        source.gate.set()
        with trio.fail_after(10):
            state = await server.app.resyncs.wait_for_next()
        assert state.status is ResyncStatus.COMPLETED
        entities = {e["identifier"]: e["title"] for e in await server.catalog.list_entities("item")}
        # C4 is stale and deleted; C3 was written by a live event after the resync began:
        # not stale, not deleted (Ocean deletes it); C2's newer live title is not overwritten
        # by the resync's C2
        assert state.reconciliation is not None
        assert (state.reconciliation.stale, state.reconciliation.deleted) == (1, 1)
        assert entities == {
            "C0": "C0",
            "C1": "from the resync (older)",
            "C2": "live, newer",
            "C3": "live",
        }


async def test_over_the_deletion_threshold_nothing_is_deleted(
    integration_root: Path, tmp_path: Path
) -> None:
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    mapping.write_text("entityDeletionThreshold: 0.5\n" + ITEM_MAPPING)
    source = Source(["D0", "D1", "D2", "D3"])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        for gone in ("D1", "D2", "D3"):
            del source.items[gone]
        state = await resync(server)
        assert state.status is ResyncStatus.COMPLETED
        assert state.reconciliation is not None
        assert (state.reconciliation.stale, state.reconciliation.deleted) == (3, 0)
        assert state.reconciliation.skipped_reason == (
            "3 of 4 owned entities (75%) would be deleted, more than"
            " entityDeletionThreshold 0.5: nothing deleted"
        )
        assert await ids(server) == ["D0", "D1", "D2", "D3"]


async def test_a_resync_that_changes_most_entities_still_deletes_the_few_gone(
    integration_root: Path, tmp_path: Path
) -> None:
    # The threshold counts every entity that existed before the resync, changed or not:
    # counting only the unchanged ones (as Ocean does) would refuse to delete E9 here (1 of 2).
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    mapping.write_text("entityDeletionThreshold: 0.3\n" + ITEM_MAPPING)
    source = Source([f"E{n}" for n in range(10)])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        del source.items["E9"]
        for n in range(1, 9):
            source.items[f"E{n}"]["title"] = "renamed"
        state = await resync(server)
        assert state.reconciliation is not None
        assert state.reconciliation.skipped_reason is None
        assert (state.reconciliation.owned, state.reconciliation.stale) == (10, 1)
        assert state.reconciliation.deleted == 1
        assert await ids(server) == [f"E{n}" for n in range(9)]


async def test_an_error_in_a_kind_is_recorded_and_means_no_deletion(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["E0", "E1", "E2", "E3"])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        del source.items["E3"]
        source.fail = True  # fails on the second page
        state = await resync(server)
        assert state.status is ResyncStatus.FAILED
        assert [k.items for k in state.kinds] == [2, 2]  # both resources went on
        assert state.errors[0] == "item: items failed: RuntimeError('the source is down')"
        assert state.reconciliation is None
        assert await ids(server) == ["E0", "E1", "E2", "E3"]  # E3 stays: no deletion after an error


async def test_batches_that_are_not_lists_of_objects_are_errors_and_the_rest_goes_on(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)

    @integration.on_resync("item")
    async def items(kind: str) -> AsyncIterator[Any]:
        yield [{"id": "F0", "status": "open"}]
        yield {"not": "a list"}
        yield [["not an object"]]
        yield [{"id": "F1", "status": "open"}]

    settings = make_settings(tmp_path, resync={"coalesceSeconds": 0})
    async with serve_integration(integration, settings) as server:
        assert server.app.resyncs is not None
        with trio.fail_after(10):
            state = await server.app.resyncs.wait_for_next()  # resyncOnStart
        assert state.status is ResyncStatus.FAILED
        assert state.kinds[0].errors == [
            "items: batch 2 is dict, not a list of raw items",
            "items: batch 3 item 0 is not a JSON object with string keys",
        ]
        assert await ids(server) == ["F0", "F1"]


async def test_a_new_trigger_aborts_the_running_resync_which_deletes_nothing(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["G0", "G1", "G2", "G3"])
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        del source.items["G3"]
        source.gate = trio.Event()
        coordinator = server.app.resyncs
        assert coordinator is not None
        coordinator.request("first")
        with trio.fail_after(10):
            await source.reached_gate.wait()
        source.gate = None  # the fresh resync runs through
        coordinator.request("second")
        with trio.fail_after(10):
            aborted = await coordinator.wait_for_next()
            fresh = await coordinator.wait_for_next()
        assert (aborted.reason, aborted.status) == ("first", ResyncStatus.ABORTED)
        assert aborted.reconciliation is None
        assert (fresh.reason, fresh.status) == ("second", ResyncStatus.COMPLETED)
        assert await ids(server) == ["G0", "G1", "G2"]


async def test_a_mapping_that_no_longer_loads_fails_the_resync_and_live_events_keep_the_last(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["H0"])
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    async with resync_app(integration_root, tmp_path, source) as server:
        await resync(server)
        mapping.write_text(ITEM_MAPPING.replace("identifier: .id", "identifier: .id | ]"))
        state = await resync(server)
        assert state.status is ResyncStatus.FAILED
        assert state.error is not None
        assert state.error.startswith("the mapping did not load (live events keep the last one):")
        assert "resources[0] (kind item): identifier: invalid jq" in state.error
        # live events still map with the last mapping that loaded
        await server.app.register_raw("item", [{"id": "H1", "title": "live", "status": "open"}])
        assert await ids(server) == ["H0", "H1"]


async def test_shutdown_during_a_resync_aborts_it_and_exits_cleanly(
    integration_root: Path, tmp_path: Path
) -> None:
    source = Source(["I0", "I1", "I2"])
    source.gate = trio.Event()  # never set
    async with resync_app(
        integration_root, tmp_path, source, maxWaitSecondsBeforeShutdown=0.1
    ) as server:
        coordinator = server.app.resyncs
        assert coordinator is not None
        coordinator.request("test")
        with trio.fail_after(10):
            await source.reached_gate.wait()
    assert coordinator.last is not None
    assert coordinator.last.status is ResyncStatus.ABORTED


@pytest.mark.parametrize("listener", ["WEBHOOKS_ONLY"])
async def test_webhooks_only_never_resyncs(
    integration_root: Path, tmp_path: Path, listener: str
) -> None:
    source = Source(["J0"])
    async with resync_app(
        integration_root, tmp_path, source, eventListener={"type": listener}
    ) as server:
        assert server.app.resyncs is None
        response = await server.client.get("/resync")
        assert response.status_code == 404
        assert await ids(server) == []
