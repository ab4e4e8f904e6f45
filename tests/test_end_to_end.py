"""End to end on a real hypercorn (127.0.0.1, port 0): POST → processors → mapping → local catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from ocean_trio import (
    EventHeaders,
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    WebhookEvent,
    WebhookEventRawResults,
    ocean,
)
from ocean_trio.testing import make_settings, serve_integration

from .processors import ItemProcessor as BaseItemProcessor


class ItemProcessor(BaseItemProcessor):
    """Only events with an ``item``; ``x-token: wrong`` fails authentication."""

    async def should_process_event(self, event: WebhookEvent) -> bool:
        return "item" in event.payload

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        return headers.get("x-token") != "wrong"

    async def validate_payload(self, payload: EventPayload) -> bool:
        return isinstance(payload["item"], dict) and "id" in payload["item"]


def item_integration(root: Path) -> Integration:
    integration = Integration(root)
    integration.add_webhook_processor("/webhook", ItemProcessor)

    @integration.router.post("/legacy/{kind}")
    async def legacy(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("action") == "deleted":
            await ocean.unregister_raw(kind, [data["item"]])
        else:
            await ocean.register_raw(kind, [data["item"]])
        return {"handled": kind}

    return integration


async def test_post_to_entity_in_the_catalog(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        item = {"id": "A-1", "title": "First", "status": "open", "priority": "high"}
        response = await server.post_event("/webhook", {"item": item})
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "accepted"
        [(entry, outcome)] = await server.next_outcomes(1)
        assert entry.event.trace_id == body["trace_id"]
        assert outcome.status is EventStatus.DONE
        assert (outcome.upserts, outcome.deletes) == (2, 0)  # fan-out: two resources of kind item
        entities = (
            await server.client.get("/catalog/entities", params={"blueprint": "item"})
        ).json()
        assert [(e["identifier"], e["title"], e["properties"]) for e in entities["entities"]] == [
            ("A-1", "First", {"status": "open"})
        ]
        urgent = await server.catalog.get_entity("urgentItem", "A-1")
        assert urgent is not None
        assert urgent["properties"] == {"priority": "high"}


async def test_selector_failure_deletes_and_deleted_items_are_removed(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        item = {"id": "B-1", "title": "b", "status": "open", "priority": "high"}
        await server.post_event("/webhook", {"item": item})
        # no longer high priority: the urgentItem resource's selector now fails → deleted there
        await server.post_event("/webhook", {"item": {**item, "priority": "low"}})
        await server.post_event("/webhook", {"item": item, "action": "deleted"})
        outcomes = [o for _, o in await server.next_outcomes(3)]
        assert [(o.upserts, o.deletes) for o in outcomes] == [(2, 0), (1, 1), (0, 2)]
        assert await server.catalog.list_entities() == []


async def test_authentication_failure_is_rejected_and_applies_nothing(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        response = await server.post_event(
            "/webhook", {"item": {"id": "C-1", "status": "open"}}, headers={"x-token": "wrong"}
        )
        assert response.status_code == 202
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.REJECTED
        assert outcome.error == "authentication failed"
        assert await server.catalog.list_entities() == []


async def test_no_matching_processor_is_acknowledged_and_counted(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        response = await server.post_event("/webhook", {"something": "else"})
        assert response.status_code == 202
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.NO_MATCH
        stats = server.app.pipelines["/integration/webhook"].statistics()
        assert stats.outcomes == {"no_match": 1}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 400, "body must be a JSON object, got an array"),
        (b'"text"', 400, "body must be a JSON object, got a string"),
        (b"x" * 2048, 413, "body is larger than the limit of 1024 bytes"),
    ],
)
async def test_bad_bodies_get_clear_errors_and_nothing_is_queued(
    integration_root: Path, tmp_path: Path, body: bytes, status: int, message: str
) -> None:
    settings = make_settings(tmp_path, liveEvents={"maxBodyBytes": 1024})
    async with serve_integration(item_integration(integration_root), settings) as server:
        response = await server.post_event("/webhook", body)
        assert response.status_code == status
        assert message in response.json()["error"]
        assert server.app.journal.statistics().appended == 0


async def test_chunked_body_over_the_limit_is_refused(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, liveEvents={"maxBodyBytes": 1024})

    async def chunks() -> Any:
        for _ in range(4):
            yield b" " * 400

    async with serve_integration(item_integration(integration_root), settings) as server:
        response = await server.client.post("/integration/webhook", content=chunks())
        assert response.status_code == 413


async def test_wrong_method_and_unknown_path(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        response = await server.client.get("/integration/webhook")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert (await server.client.post("/integration/nowhere", json={})).status_code == 404


async def test_full_journal_answers_503_with_retry_after(
    integration_root: Path, tmp_path: Path
) -> None:
    release = trio.Event()

    class Blocking(ItemProcessor):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            await release.wait()
            return await super().handle_event(payload, resource_config)

    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", Blocking)
    settings = make_settings(tmp_path, liveEvents={"maxPendingEvents": 2})
    async with serve_integration(integration, settings) as server:
        for i in range(2):
            ok = await server.post_event("/webhook", {"item": {"id": f"D-{i}", "status": "open"}})
            assert ok.status_code == 202
        refused = await server.post_event("/webhook", {"item": {"id": "D-2", "status": "open"}})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        release.set()
        outcomes = await server.next_outcomes(2)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}
        ids = {e["identifier"] for e in await server.catalog.list_entities("item")}
        assert ids == {"D-0", "D-1"}


async def test_legacy_router_register_and_unregister_raw(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(item_integration(integration_root), settings) as server:
        item = {"id": "F-1", "title": "legacy", "status": "open", "priority": "high"}
        response = await server.client.post("/integration/legacy/item", json={"item": item})
        assert response.status_code == 200
        assert response.json() == {"handled": "item"}
        assert {e["blueprint"] for e in await server.catalog.list_entities()} == {
            "item",
            "urgentItem",
        }
        # register_raw deletes what no longer passes a selector (urgentItem), keeps the rest
        await server.client.post(
            "/integration/legacy/item", json={"item": {**item, "priority": "low"}}
        )
        assert {e["blueprint"] for e in await server.catalog.list_entities()} == {"item"}
        await server.client.post(
            "/integration/legacy/item", json={"item": item, "action": "deleted"}
        )
        assert await server.catalog.list_entities() == []
        bad = await server.client.post(
            "/integration/legacy/item",
            content=b"nope",
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 400


async def test_health_reports_pipeline_statistics(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, eventWorkersCount=3)
    async with serve_integration(item_integration(integration_root), settings) as server:
        await server.post_event("/webhook", {"item": {"id": "G-1", "status": "open"}})
        await server.next_outcomes(1)
        ready = (await server.client.get("/health/ready")).json()
        pipeline = ready["live_events"]["/integration/webhook"]
        assert pipeline["workers"] == 3
        assert pipeline["outcomes"] == {"done": 1}
        assert ready["journal"]["completed"] == 1
        assert (await server.client.get("/health/live")).json() == {"status": "ok"}


async def test_shutdown_lets_in_flight_events_finish(
    integration_root: Path, tmp_path: Path
) -> None:
    started = trio.Event()
    release = trio.Event()

    class Slow(ItemProcessor):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            started.set()
            await release.wait()
            return await super().handle_event(payload, resource_config)

    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", Slow)
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        async with serve_integration(integration, settings) as server:
            await server.post_event("/webhook", {"item": {"id": "H-1", "status": "open"}})
            await started.wait()
            app = server.app
            nursery.start_soon(_release_when_draining, app, release)
        # leaving serve_integration drained: the in-flight event finished and was applied
        assert app.journal.statistics().completed == 1
        with trio.fail_after(5):
            [(_, outcome)] = await server.next_outcomes(1)
        assert (outcome.status, outcome.upserts) == (EventStatus.DONE, 1)


async def _release_when_draining(app: Any, release: trio.Event) -> None:
    await app.stopping.wait()
    release.set()


async def test_concurrent_events_of_a_group_apply_in_journal_order_despite_varying_delays(
    integration_root: Path, tmp_path: Path
) -> None:
    # Earlier versions take longer: without per-group ordering they would finish (and be
    # applied) after later ones, leaving stale titles and an out-of-order completion log.
    running: dict[str, set[str]] = {}  # group → trace ids of its events now running
    overlapped: list[str] = []

    class Varying(ItemProcessor):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            group, trace = payload["item"]["id"], self.event.trace_id
            now = running.setdefault(group, set())
            if now - {trace}:  # another event of the group (an event's own runs are parallel)
                overlapped.append(group)
            now.add(trace)
            await trio.sleep(0.005 * (10 - payload["item"]["version"]))
            now.discard(trace)
            return await super().handle_event(payload, resource_config)

    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", Varying)
    settings = make_settings(tmp_path, eventWorkersCount=8)
    groups = ("O-1", "O-2", "O-3")
    async with serve_integration(integration, settings) as server:

        async def send_versions(group: str) -> None:
            for version in range(10):
                item = {"id": group, "title": f"v{version}", "version": version, "status": "open"}
                assert (await server.post_event("/webhook", {"item": item})).status_code == 202

        async with trio.open_nursery() as nursery:  # the three groups are posted concurrently
            for group in groups:
                nursery.start_soon(send_versions, group)
        finished = await server.next_outcomes(30)
        titles = {e["identifier"]: e["title"] for e in await server.catalog.list_entities("item")}
    for group in groups:
        seqs = [e.seq for e, _ in finished if e.event.payload["item"]["id"] == group]
        assert seqs == sorted(seqs)  # completed in the order the journal accepted them
    assert titles == {group: "v9" for group in groups}
    assert overlapped == []
