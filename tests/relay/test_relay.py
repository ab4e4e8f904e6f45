"""The relay and an integration on loopback, in one process: webhooks posted to the relay are
applied by the integration exactly as direct ones, in order per item, once each."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import trio
import trio_websocket

from ocean_trio import EventPayload, Integration, ResourceConfig, WebhookEventRawResults
from ocean_trio._websocket import connect
from ocean_trio.live_events._signatures import GitHubSignature
from ocean_trio.relay._protocol import (
    CLOSE_REPLACED,
    CLOSE_SILENT,
    Ack,
    AckStatus,
    Hello,
    Ping,
    Ready,
    RelayedEvent,
    decode_from_relay,
    encode,
)
from ocean_trio.relay._server import Relay
from ocean_trio.testing import TestServer, make_settings, serve_integration, sign_hmac_sha256

from ..processors import ItemProcessor
from .conftest import SECRET, TOKEN, connect_url, serve_relay, watching

ITEMS = 6
VERSIONS = 10


class Recorder(ItemProcessor):
    """Records each application: ``(item id, title)``, in the order applied."""

    applied: ClassVar[list[tuple[str, str]]] = []

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if resource_config.port.entity.mappings.blueprint == '"item"':
            Recorder.applied.append((payload["item"]["id"], payload["item"]["title"]))
        return await super().handle_event(payload, resource_config)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Recorder.applied = []


def integration(root: Path, *, verified: bool = False, path: str = "/webhook") -> Integration:
    result = Integration(root)
    result.add_webhook_processor(path, Recorder)
    if verified:
        result.add_webhook_verifier(path, GitHubSignature(SECRET))
    return result


def event(item: str, version: int) -> bytes:
    return json.dumps({"item": {"id": item, "title": f"v{version}", "status": "open"}}).encode()


def signed(body: bytes, **headers: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-hub-signature-256": sign_hmac_sha256(SECRET, body),
        **headers,
    }


def serve(
    root: Path, relay: Relay, *, token: str = TOKEN, verified: bool = False, **more: Any
) -> AbstractAsyncContextManager[TestServer]:
    settings = make_settings(
        root,
        liveEvents={"relay": {"url": connect_url(relay), "token": token}, **more},
        eventListener={"type": "WEBHOOKS_ONLY"},
    )
    return serve_integration(integration(root, verified=verified), settings, root=root)


def pending_at_relay(folder: Path) -> list[tuple[int, str, str | None]]:
    """The relay journal's rows after it stopped: ``(seq, status, error)``."""
    with sqlite3.connect(folder / ".ocean-trio" / "journal.sqlite3") as db:
        return db.execute("SELECT seq, status, error FROM events ORDER BY seq").fetchall()


async def post_all(base: str, *, signed_: bool = True) -> list[tuple[str, str]]:
    """Each item's versions one after another (items in parallel), half of them with a
    delivery id; what the relay acknowledged."""
    acked: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def send(n: int) -> None:
            for version in range(VERSIONS):
                body = event(f"I-{n}", version)
                ids = {"x-github-delivery": f"I-{n}-{version}"} if n % 2 else {}
                headers = signed(body, **ids) if signed_ else ids
                answer = await client.post("/integration/webhook", content=body, headers=headers)
                assert answer.status_code == 202, answer.text
                acked.append((f"I-{n}", f"v{version}"))

        async with trio.open_nursery() as nursery:
            for n in range(ITEMS):
                nursery.start_soon(send, n)
    return acked


async def test_webhooks_posted_to_the_relay_are_applied_in_order_once_each(
    integration_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "relay"
    verifier = {"type": "github", "secret": SECRET}
    async with (
        serve_relay(folder, webhooks={"/webhook": {"verifier": verifier}}) as relay,
        serve(integration_root, relay, verified=True) as server,
    ):
        with trio.fail_after(20):
            acked = await post_all(relay.urls[0])
            outcomes = await server.next_outcomes(ITEMS * VERSIONS)
        assert {o.status.value for _, o in outcomes} == {"done"}
        entities = await server.catalog.list_entities("item", limit=100)
    assert sorted(Recorder.applied) == sorted(acked)  # every one, once
    for n in range(ITEMS):
        versions = [title for item, title in Recorder.applied if item == f"I-{n}"]
        assert versions == [f"v{v}" for v in range(VERSIONS)]  # in the order sent
    assert {e["identifier"]: e["title"] for e in entities} == {
        f"I-{n}": f"v{VERSIONS - 1}" for n in range(ITEMS)
    }
    rows = pending_at_relay(folder)
    assert len(rows) == ITEMS * VERSIONS
    assert {status for _, status, _ in rows} == {"done"}  # acknowledged, so finished


async def test_the_integrations_health_and_metrics_show_its_relay(
    integration_root: Path, tmp_path: Path
) -> None:
    async with (
        serve_relay(tmp_path / "relay") as relay,
        serve(integration_root, relay) as server,
    ):
        async with httpx.AsyncClient(base_url=relay.urls[0]) as client:
            body = event("A", 0)
            headers = {"x-github-delivery": "d-1"}
            for _ in range(2):  # the second is a duplicate at the relay itself
                await client.post("/integration/webhook", content=body, headers=headers)
        with trio.fail_after(10):
            await server.next_outcomes(1)
        health = (await server.client.get("/health/ready")).json()["relay"]
        metrics = (await server.client.get("/metrics")).text
    assert health["connected"] is True
    assert (health["received"], health["journaled"], health["refused"]) == (1, 1, 0)
    assert "ocean_trio_relay_connected 1.0" in metrics
    assert 'ocean_trio_relay_events_total{result="journaled"} 1.0' in metrics


async def test_events_wait_at_the_relay_until_an_integration_connects(
    integration_root: Path, tmp_path: Path
) -> None:
    async with serve_relay(tmp_path / "relay") as relay:
        with trio.fail_after(20):
            acked = await post_all(relay.urls[0], signed_=False)
            assert relay.journal.statistics().pending == ITEMS * VERSIONS
            async with serve(integration_root, relay) as server:
                await server.next_outcomes(ITEMS * VERSIONS)
    assert sorted(Recorder.applied) == sorted(acked)


async def test_a_bad_signature_at_the_relay_is_401_and_nothing_is_journaled(
    tmp_path: Path,
) -> None:
    verifier = {"type": "github", "secret": SECRET}
    async with (
        serve_relay(tmp_path / "relay", webhooks={"/webhook": {"verifier": verifier}}) as relay,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        body = event("I-1", 0)
        forged = {"x-hub-signature-256": sign_hmac_sha256("not-the-secret", body)}
        answer = await client.post("/integration/webhook", content=body, headers=forged)
        assert answer.status_code == 401
        assert "signature verification failed" in answer.json()["error"]
        answer = await client.post("/integration/webhook", content=body)
        assert answer.status_code == 401
        assert "missing X-Hub-Signature-256" in answer.json()["error"]
        assert relay.journal.statistics().appended == 0


async def test_the_integration_rejects_forgeries_a_relay_without_the_secret_lets_through(
    integration_root: Path, tmp_path: Path
) -> None:
    # The threat model: the relay has no secret, the integration verifies.
    folder = tmp_path / "relay"
    async with (
        serve_relay(folder) as relay,
        serve(integration_root, relay, verified=True) as server,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        forged = event("I-1", 0)
        answer = await client.post("/integration/webhook", content=forged)
        assert answer.status_code == 202  # the relay cannot tell
        good = event("I-2", 0)
        answer = await client.post("/integration/webhook", content=good, headers=signed(good))
        assert answer.status_code == 202
        with trio.fail_after(10):
            await server.next_outcomes(1)
    assert Recorder.applied == [("I-2", "v0")]  # the forgery never reached a processor
    rows = pending_at_relay(folder)
    assert rows[0][1] == "rejected"
    assert rows[0][2] is not None
    assert "401: signature verification failed: missing X-Hub-Signature-256" in rows[0][2]
    assert rows[1][1] == "done"


async def test_events_for_a_path_without_processors_are_refused_and_kept_rejected(
    integration_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "relay"
    async with (
        serve_relay(folder, webhooks={"/webhook": {}, "/other": None}) as relay,
        serve(integration_root, relay) as server,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        body = event("I-1", 0)
        assert (await client.post("/integration/other", content=body)).status_code == 202
        assert (await client.post("/integration/webhook", content=body)).status_code == 202
        with trio.fail_after(10):
            await server.next_outcomes(1)
    assert [(status, error) for _, status, error in pending_at_relay(folder)] == [
        ("rejected", "integration: no processors on /other in this integration"),
        ("done", None),
    ]


async def test_a_bad_token_is_refused_at_the_handshake_and_named_in_the_log(
    integration_root: Path, tmp_path: Path
) -> None:
    async with serve_relay(tmp_path / "relay") as relay:
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with connect(connect_url(relay), headers=[(b"authorization", b"Bearer wrong")]):
                pass  # pragma: no cover - refused
        assert refused.value.status_code == 401
        assert refused.value.body is not None
        assert b"missing or wrong bearer token" in refused.value.body
        async with (
            watching("ocean_trio.relay", "refused this integration's token (HTTP 401)") as log,
            serve(integration_root, relay, token="not-the-token"),
        ):
            with trio.fail_after(10):
                await log.seen.wait()
            assert relay.hub.statistics().connections == 0
    line = next(r for r in log.records if "refused this integration's token" in r.getMessage())
    assert "OCEAN__LIVE_EVENTS__RELAY__TOKEN" in line.getMessage()
    assert "not-the-token" not in line.getMessage()


@asynccontextmanager
async def raw_session(
    relay: Relay, *, max_body_bytes: int = 1 << 20
) -> AsyncIterator[tuple[trio_websocket.WebSocketConnection, Hello]]:
    """A connection as an integration opens one, up to its ready message."""
    async with connect(
        connect_url(relay), headers=[(b"authorization", f"Bearer {TOKEN}".encode())]
    ) as ws:
        hello = decode_from_relay(await ws.get_message())
        assert isinstance(hello, Hello)
        await ws.send_message(encode(Ready(max_body_bytes=max_body_bytes)))
        yield ws, hello


async def next_event(ws: trio_websocket.WebSocketConnection) -> RelayedEvent:
    while True:
        message = decode_from_relay(await ws.get_message())
        if isinstance(message, RelayedEvent):
            return message
        assert isinstance(message, Ping)


async def until_closed(ws: trio_websocket.WebSocketConnection) -> trio_websocket.CloseReason:
    """Read (events and pings, unanswered) until the relay closes the connection: why."""
    with pytest.raises(trio_websocket.ConnectionClosed) as closed:  # noqa: PT012
        while True:
            await next_event(ws)
    assert closed.value.reason is not None
    return closed.value.reason


async def test_a_new_connection_replaces_the_old_and_gets_every_unacknowledged_event(
    tmp_path: Path,
) -> None:
    async with (
        serve_relay(tmp_path / "relay", maxInFlight=3) as relay,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        for n in range(5):
            body = event(f"I-{n}", 0)
            assert (await client.post("/integration/webhook", content=body)).status_code == 202
        with trio.fail_after(10):
            async with raw_session(relay) as (first, hello):
                received = [await next_event(first) for _ in range(3)]  # the in-flight bound
                assert [e.seq for e in received] == [1, 2, 3]
                await first.send_message(encode(Ack(1, AckStatus.JOURNALED)))
                assert (await next_event(first)).seq == 4  # room for one more
                assert received[0].body == event("I-0", 0)
                assert received[0].headers["host"].startswith("127.0.0.1:")
                async with raw_session(relay) as (second, again):
                    assert again.relay_id == hello.relay_id
                    assert (await until_closed(first)).code == CLOSE_REPLACED
                    # From the start of what is pending: 2 to 4 were never acknowledged.
                    assert [(await next_event(second)).seq for _ in range(3)] == [2, 3, 4]
                    for seq in (2, 3, 4):
                        await second.send_message(encode(Ack(seq, AckStatus.DUPLICATE)))
                    assert (await next_event(second)).seq == 5
                    await second.send_message(encode(Ack(99, AckStatus.JOURNALED)))
                    reason = await until_closed(second)
                    assert reason.code == 1008
                    assert reason.reason == "ack of event 99, which is not in flight"
    assert [status for _, status, _ in pending_at_relay(tmp_path / "relay")] == [
        "done",
        "done",
        "done",
        "done",
        "pending",
    ]


async def test_every_path_in_seq_order_within_the_bytes_in_flight(tmp_path: Path) -> None:
    folder = tmp_path / "relay"
    paths = ["/a", "/b", "/b", "/a", "/b", "/a", "/a"]
    sizes = [20, 20, 20, 20, 60, 120, 20]  # 60: past the budget (alone); 120: past the integration
    async with (
        serve_relay(folder, webhooks={"/a": None, "/b": None}, maxInFlightBytes=25) as relay,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        for path, size in zip(paths, sizes, strict=True):
            body = json.dumps({"pad": ""}).encode()
            body = json.dumps({"pad": "x" * (size - len(body))}).encode()
            assert len(body) == size
            assert (await client.post("/integration" + path, content=body)).status_code == 202
        got = []
        async with raw_session(relay, max_body_bytes=100) as (ws, _):
            with trio.fail_after(10):
                for _ in range(6):
                    relayed = await next_event(ws)
                    await trio.testing.wait_all_tasks_blocked()
                    assert relay.hub.statistics().in_flight == 1  # two would pass 25 bytes
                    got.append((relayed.seq, relayed.path, len(relayed.body)))
                    await ws.send_message(encode(Ack(relayed.seq, AckStatus.JOURNALED)))
    assert got == [
        (1, "/a", 20),
        (2, "/b", 20),
        (3, "/b", 20),
        (4, "/a", 20),
        (5, "/b", 60),  # alone in flight, whatever its size
        (7, "/a", 20),
    ]
    rows = pending_at_relay(folder)
    assert rows[5] == (
        6,
        "rejected",
        "the body (120 bytes) is larger than the integration's maxBodyBytes (100)",
    )
    assert {status for _, status, _ in rows} == {"done", "rejected"}


async def test_a_path_whose_page_stops_early_is_not_overtaken(tmp_path: Path) -> None:
    # /a's page stops at 1 (1 and 3 pass the bytes in flight), /b's holds 2 and 4: 4 must
    # not go before 3, or 3 would be left behind.
    posted = [("/a", 10), ("/b", 10), ("/a", 20), ("/b", 5)]
    async with (
        serve_relay(
            tmp_path / "relay", webhooks={"/a": None, "/b": None}, maxInFlightBytes=25
        ) as relay,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        for path, size in posted:
            body = b"{" + b" " * (size - 2) + b"}"
            assert (await client.post("/integration" + path, content=body)).status_code == 202
        async with raw_session(relay) as (ws, _):
            with trio.fail_after(10):
                seqs = []
                for _ in posted:
                    relayed = await next_event(ws)
                    seqs.append(relayed.seq)
                    await ws.send_message(encode(Ack(relayed.seq, AckStatus.JOURNALED)))
    assert seqs == [1, 2, 3, 4]


async def test_a_silent_integration_is_dropped_after_three_heartbeats(tmp_path: Path) -> None:
    async with (
        serve_relay(tmp_path / "relay", heartbeatSeconds=0.05) as relay,
        raw_session(relay) as (ws, hello),
    ):
        assert hello.heartbeat_seconds == 0.05
        with trio.fail_after(5):
            reason = await until_closed(ws)  # its pings unanswered
        assert reason.code == CLOSE_SILENT


async def test_the_integration_pauses_when_its_journal_is_full_and_loses_nothing(
    integration_root: Path, tmp_path: Path
) -> None:
    gate = trio.Event()

    class Held(Recorder):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            await gate.wait()
            return await super().handle_event(payload, resource_config)

    async with serve_relay(tmp_path / "relay") as relay:
        root = integration_root
        app = Integration(root)
        app.add_webhook_processor("/webhook", Held)
        settings = make_settings(
            root,
            liveEvents={
                "relay": {"url": connect_url(relay), "token": TOKEN},
                "maxPendingEvents": 20,
            },
            eventListener={"type": "WEBHOOKS_ONLY"},
        )
        async with (
            watching("ocean_trio.relay", "cannot journal them now") as log,
            serve_integration(app, settings, root=root) as server,
        ):
            with trio.fail_after(20):
                acked = await post_all(relay.urls[0], signed_=False)
                await log.seen.wait()  # the 21st was refused 503: not acknowledged
                assert relay.journal.statistics().pending >= ITEMS * VERSIONS - 20
                gate.set()
                await server.next_outcomes(ITEMS * VERSIONS)
    assert sorted(Recorder.applied) == sorted(acked)
    for n in range(ITEMS):
        versions = [title for item, title in Recorder.applied if item == f"I-{n}"]
        assert versions == [f"v{v}" for v in range(VERSIONS)]


async def test_the_relay_answers_like_an_ingress(tmp_path: Path) -> None:
    async with (
        serve_relay(
            tmp_path / "relay",
            maxPendingEvents=2,
            maxBodyBytes=100,
            webhooks={"/webhook": {"deliveryIdHeader": "X-Request-Id"}},
        ) as relay,
        httpx.AsyncClient(base_url=relay.urls[0]) as client,
    ):
        post = client.post
        assert (await post("/integration/webhook", content=b"[1]")).status_code == 400
        assert (await post("/integration/webhook", content=b"x" * 101)).status_code == 413
        first = await post("/integration/webhook", content=b"{}", headers={"x-request-id": "a"})
        assert first.status_code == 202
        again = await post("/integration/webhook", content=b"{}", headers={"x-request-id": "a"})
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate", "trace_id": first.json()["trace_id"]}
        assert (await post("/integration/webhook", content=b"{}")).status_code == 202
        full = await post("/integration/webhook", content=b"{}")
        assert full.status_code == 503
        assert full.headers["retry-after"] == "5"
        assert (await post("/integration/other", content=b"{}")).status_code == 404
        assert (await client.get("/integration/webhook")).status_code == 405
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        ready = (await client.get("/health/ready")).json()
        assert ready["pending"] == 2
        assert ready["relay_id"] == relay.relay_id
        assert ready["integration"]["connected"] is False
        assert (await client.post("/health/ready")).status_code == 405
        assert (await client.get("/relay/connect")).status_code == 404
