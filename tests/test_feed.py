"""The live feed: ``/live/feed`` over a real WebSocket, its filters, and slow clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

import ocean_trio._feed
import ocean_trio._feed_web
from ocean_trio import EventPayload, Integration, ResourceConfig, WebhookEventRawResults
from ocean_trio._feed import Subscriber
from ocean_trio._websocket import connect
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .test_dead_letters import FlakyProcessor


def test_a_subscriber_filters_and_counts_what_does_not_fit() -> None:
    subscriber = Subscriber(frozenset({"/a"}), frozenset({"done", "dead"}), limit=2)
    subscriber.offer("/b", "done", "b1")  # another path
    subscriber.offer("/a", "pending", "a0")  # another status
    for n in range(5):
        subscriber.offer("/a", "done" if n % 2 else "dead", f"a{n}")
    texts, dropped = subscriber.take(10)
    assert texts == ["a0", "a1"]
    assert dropped == {"dead": 2, "done": 1}
    assert subscriber.take(10) == ([], {})


@asynccontextmanager
async def feed(server: TestServer, query: str = "") -> AsyncIterator[WebSocketConnection]:
    url = server.base_url.replace("http://", "ws://") + "/live/feed" + query
    async with connect(url) as socket:
        yield socket


async def next_message(socket: WebSocketConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` (stats come every second in between)."""
    with trio.fail_after(10):
        while True:
            message = json.loads(await socket.get_message())
            if message["type"] == kind:
                return message  # type: ignore[no-any-return]


async def next_events(socket: WebSocketConnection, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events += (await next_message(socket, "events"))["events"]
    return events


def served(root: Path, tmp_path: Path, **settings: Any) -> Any:
    integration = Integration(root)
    integration.add_webhook_processor("/webhook", FlakyProcessor)
    return serve_integration(integration, make_settings(tmp_path, **settings))


def item(identifier: str) -> dict[str, Any]:
    return {"item": {"id": identifier, "status": "open"}}


async def test_the_feed_streams_accepted_and_finished_events(
    integration_root: Path, tmp_path: Path
) -> None:
    FlakyProcessor.broken = False
    async with (
        served(integration_root, tmp_path, admin={"token": "t"}) as server,
        feed(server) as socket,
    ):
        hello = await next_message(socket, "hello")
        assert hello["paths"] == ["/webhook"]
        assert hello["processing"] is True
        assert hello["admin"] is True
        posted = await server.post_event("/webhook", item("A"), headers={"idempotency-key": "d-1"})
        accepted, finished = await next_events(socket, 2)
        stats = await next_message(socket, "stats")

    trace = posted.json()["trace_id"]
    assert accepted["kind"] == "accepted"
    assert accepted["status"] == "pending"
    assert (accepted["seq"], accepted["trace_id"], accepted["delivery_id"]) == (1, trace, "d-1")
    assert finished["kind"] == "finished"
    assert finished["status"] == "done"
    assert finished["seq"] == 1
    assert finished["processors"] == ["FlakyProcessor"]
    assert [run["status"] for run in finished["runs"]] == ["succeeded", "succeeded"]
    assert finished["upserts"] == 1  # the second resource of kind item wants priority high
    assert finished["duration_ms"] > 0
    assert finished["latency_ms"] >= finished["duration_ms"]
    assert stats["accepted"] == 1
    assert stats["finished"] == {"done": 1}
    assert stats["pending"] == 0


async def test_filters_keep_only_the_paths_and_statuses_asked_for(
    integration_root: Path, tmp_path: Path
) -> None:
    async with (
        served(integration_root, tmp_path) as server,
        feed(server, "?status=dead&path=/integration/webhook") as socket,
    ):
        await next_message(socket, "hello")
        FlakyProcessor.broken = True
        await server.post_event("/webhook", item("A"))
        await server.next_outcomes(1)
        FlakyProcessor.broken = False
        await server.post_event("/webhook", item("B"))
        await server.post_event("/webhook", item("C"))
        FlakyProcessor.broken = True
        await server.post_event("/webhook", item("D"))
        await server.next_outcomes(3)
        events = await next_events(socket, 2)
    assert [(e["seq"], e["status"]) for e in events] == [(1, "dead"), (4, "dead")]
    assert "upstream said no" in events[0]["error"]


async def test_an_unknown_status_is_refused_at_the_handshake(
    integration_root: Path, tmp_path: Path
) -> None:
    handshake = {
        "connection": "upgrade",
        "upgrade": "websocket",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    async with served(integration_root, tmp_path) as server:
        refused = await server.client.get("/live/feed?status=finished", headers=handshake)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("unknown status finished (one of: dead, done")


async def test_a_slow_client_gets_counts_and_never_holds_ingestion(
    integration_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client's buffer holds 5 events and the connection sends every 2 s: 40 events
    # (20 accepted, 20 finished) arrive between two sends, so all but 5 are counted.
    monkeypatch.setattr(ocean_trio._feed, "SUBSCRIBER_BUFFER", 5)
    monkeypatch.setattr(ocean_trio._feed_web, "BATCH_SECONDS", 2.0)
    FlakyProcessor.broken = False
    async with served(integration_root, tmp_path) as server, feed(server) as socket:
        await next_message(socket, "stats")  # the first send is done: the 2 s pause begins
        for n in range(20):
            await server.post_event("/webhook", item(f"I{n}"))
        outcomes = await server.next_outcomes(20)
        events = (await next_message(socket, "events"))["events"]
        dropped = await next_message(socket, "dropped")
    assert all(outcome.status.value == "done" for _, outcome in outcomes)
    assert len(events) == 5
    assert dropped["events"] == 35
    assert sum(dropped["by_status"].values()) == 35


async def test_a_closed_connection_unsubscribes(integration_root: Path, tmp_path: Path) -> None:
    async with served(integration_root, tmp_path) as server:
        async with feed(server) as socket:
            await next_message(socket, "hello")
            assert server.app.feed.subscribers == 1
        with trio.fail_after(5):
            while server.app.feed.subscribers:  # noqa: ASYNC110 - the server's own task notices
                await trio.sleep(0.01)


async def test_feed_clients_are_told_to_go_away_when_the_app_stops(
    integration_root: Path, tmp_path: Path
) -> None:
    async with served(integration_root, tmp_path) as server, feed(server) as socket:
        await next_message(socket, "hello")
        server.app.stopping.set()  # what a SIGTERM does first
        with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            await next_message(socket, "never sent")  # stats may come first
    reason = closed.value.reason
    assert reason is not None
    assert (reason.code, reason.reason) == (1001, "the integration is stopping")


class LeakyProcessor(FlakyProcessor):
    """Fails with an error quoting the integration's API token."""

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        raise ValueError("upstream refused token tok-123456")


async def test_error_texts_on_the_feed_have_the_settings_secrets_masked(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", LeakyProcessor)
    settings = make_settings(tmp_path, integration={"config": {"apiToken": "tok-123456"}})
    async with serve_integration(integration, settings) as server, feed(server) as socket:
        await next_message(socket, "hello")
        await server.post_event("/webhook", item("A"))
        [_, finished] = await next_events(socket, 2)
    assert finished["status"] == "dead"
    assert "tok-123456" not in json.dumps(finished)
    assert "upstream refused token ***" in finished["error"]
    assert "upstream refused token ***" in finished["runs"][0]["error"]
