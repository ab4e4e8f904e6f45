"""The integration's side (``RelaySource``) against a scripted relay (a trio-websocket server
on 127.0.0.1): pongs, acks for each outcome, dedup of a redelivery, a silent relay, a relay
breaking the protocol, an unreachable one (one log line per change of state, backoff)."""

from __future__ import annotations

import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio_websocket

from ocean_trio import Integration
from ocean_trio._retry import RetryPolicy
from ocean_trio._settings import RelayConnectionSettings
from ocean_trio.live_events._ingress import WebhookIngress
from ocean_trio.relay._protocol import (
    Ack,
    AckStatus,
    Hello,
    Ping,
    Pong,
    Ready,
    RelayedEvent,
    decode_from_integration,
    encode,
)
from ocean_trio.relay._source import RelaySource, SourceStatistics
from ocean_trio.testing import make_settings, serve_integration

from ..processors import ItemProcessor
from .conftest import TOKEN, watching

Script = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]


@asynccontextmanager
async def fake_relay(scripts: list[Script]) -> AsyncIterator[str]:
    """A relay playing ``scripts``, one per connection (then closing any further one); its
    ``/relay/connect`` URL."""
    connections = iter(scripts)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        authorization = dict(request.headers).get(b"authorization")
        assert authorization == f"Bearer {TOKEN}".encode()
        ws = await request.accept()
        script = next(connections, None)
        if script is not None:
            await script(ws)
        await ws.aclose()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, ssl_context=None)
        )
        yield f"ws://127.0.0.1:{server.port}/relay/connect"
        nursery.cancel_scope.cancel()


async def greet(ws: trio_websocket.WebSocketConnection, *, heartbeat: float = 10.0) -> Ready:
    await ws.send_message(encode(Hello("fake", max_in_flight=4, heartbeat_seconds=heartbeat)))
    ready = decode_from_integration(await ws.get_message())
    assert isinstance(ready, Ready)
    return ready


def relayed(seq: int, path: str = "/webhook", item: str = "I-1") -> RelayedEvent:
    body = json.dumps({"item": {"id": item, "title": item, "status": "open"}}).encode()
    return RelayedEvent(seq, path, {"content-type": "application/json"}, body, "t", 0.0)


async def test_the_source_answers_pings_and_acknowledges_each_outcome(
    integration_root: Path,
) -> None:
    acks: list[Ack] = []
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        ready = await greet(ws)
        assert ready.max_body_bytes == 1000
        for _ in range(3):
            await ws.send_message(encode(Ping()))
            assert decode_from_integration(await ws.get_message()) == Pong()
        for event in (
            relayed(1),
            relayed(1),  # a redelivery: the fallback id makes it a duplicate
            relayed(2, path="/nope"),
            RelayedEvent(3, "/webhook", {}, b"[not an object]", "t", 0.0),
            relayed(4, item="I-2"),
        ):
            await ws.send_message(encode(event))
            ack = decode_from_integration(await ws.get_message())
            assert isinstance(ack, Ack)
            acks.append(ack)
        done.set()
        await trio.sleep_forever()

    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    async with fake_relay([script]) as url:
        settings = make_settings(
            integration_root,
            liveEvents={"relay": {"url": url, "token": TOKEN}, "maxBodyBytes": 1000},
            eventListener={"type": "WEBHOOKS_ONLY"},
        )
        async with serve_integration(integration, settings, root=integration_root) as server:
            with trio.fail_after(10):
                await done.wait()
                outcomes = await server.next_outcomes(2)
    assert [(a.seq, a.status) for a in acks] == [
        (1, AckStatus.JOURNALED),
        (1, AckStatus.DUPLICATE),
        (2, AckStatus.REFUSED),
        (3, AckStatus.REFUSED),
        (4, AckStatus.JOURNALED),
    ]
    assert acks[0].trace_id == acks[1].trace_id  # the duplicate names the first
    assert acks[2].error == "no processors on /nope in this integration"
    assert acks[3].error is not None
    assert acks[3].error.startswith("400: ")
    assert [entry.event.delivery_id for entry, _ in outcomes] == ["relay:fake:1", "relay:fake:4"]


async def test_the_source_counts_what_became_of_each_event(integration_root: Path) -> None:
    done = trio.Event()

    async def script(ws: trio_websocket.WebSocketConnection) -> None:
        await greet(ws)
        for event in (relayed(1), relayed(1), relayed(2, path="/nope")):
            await ws.send_message(encode(event))
            assert isinstance(decode_from_integration(await ws.get_message()), Ack)
        done.set()
        await trio.sleep_forever()

    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    settings = make_settings(integration_root, eventListener={"type": "WEBHOOKS_ONLY"})
    async with (
        fake_relay([script]) as url,
        serve_integration(integration, settings, root=integration_root) as server,
        trio.open_nursery() as nursery,
    ):
        assert server.app.ingress is not None
        source = RelaySource(
            RelayConnectionSettings(url=url, token=TOKEN), server.app.ingress, max_body_bytes=1000
        )
        assert source.statistics().connected is False
        await nursery.start(source.run)
        with trio.fail_after(10):
            await done.wait()
        statistics = source.statistics()
        nursery.cancel_scope.cancel()
    assert statistics == SourceStatistics(
        url=url,
        connected=True,
        relay_id="fake",
        received=3,
        journaled=1,
        duplicates=1,
        refused=1,
    )


def source_for(url: str, backoff: RetryPolicy) -> RelaySource:
    ingress = WebhookIngress({}, max_body_bytes=1000, accepting=lambda: True)
    return RelaySource(
        RelayConnectionSettings(url=url, token=TOKEN), ingress, max_body_bytes=1000, backoff=backoff
    )


FAST = RetryPolicy(max_attempts=None, initial_delay=0.001, max_delay=0.002)


async def test_a_silent_relay_is_left_and_a_broken_one_named(tmp_path: Path) -> None:
    third = trio.Event()

    async def silent(ws: trio_websocket.WebSocketConnection) -> None:
        await greet(ws, heartbeat=0.02)
        await trio.sleep_forever()  # no ping, nothing

    async def broken(ws: trio_websocket.WebSocketConnection) -> None:
        await greet(ws)
        await ws.send_message('{"type": "event", "seq": 1}')
        await trio.sleep_forever()

    async def last(ws: trio_websocket.WebSocketConnection) -> None:
        await greet(ws)
        third.set()
        await trio.sleep_forever()

    async with (
        fake_relay([silent, broken, last]) as url,
        watching("ocean_trio.relay", "went silent") as log,
        trio.open_nursery() as nursery,
    ):
        source = source_for(url, FAST)
        await nursery.start(source.run)
        with trio.fail_after(10):
            await third.wait()
        nursery.cancel_scope.cancel()
    messages = [(r.levelno, r.getMessage()) for r in log.records if r.levelno >= logging.INFO]
    assert messages[0] == (
        logging.INFO,
        f"taking live events from the relay at {url} (relay fake)",
    )
    assert messages[1][0] == logging.WARNING
    assert messages[1][1].startswith(f"the relay at {url} went silent: nothing received for 0.06s")
    assert messages[2] == (
        logging.INFO,
        f"taking live events from the relay at {url} (relay fake)",
    )
    assert messages[3][0] == logging.ERROR
    assert messages[3][1].startswith(
        f"the relay at {url} broke the protocol: event: path must be a non-empty string"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_relay_is_logged_once_and_retried_with_backoff() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/relay/connect"
    attempts = trio.Event()

    async with watching("ocean_trio.relay", "cannot reach") as log, trio.open_nursery() as nursery:

        def counted(record: logging.LogRecord) -> bool:
            if sum("cannot reach" in r.getMessage() for r in log.records) >= 20:
                attempts.set()
            return True

        log.where = counted
        await nursery.start(source_for(url, FAST).run)
        with trio.fail_after(10):
            await attempts.wait()
        nursery.cancel_scope.cancel()
    reached = [r for r in log.records if "cannot reach" in r.getMessage()]
    assert [r.levelno for r in reached].count(logging.WARNING) == 1  # the rest at DEBUG
    assert (
        reached[0]
        .getMessage()
        .startswith(f"cannot reach the relay at {url}: all attempts to connect to 127.0.0.1:")
    )
    assert reached[0].getMessage().endswith("; reconnecting (backoff up to 0.002s)")


@pytest.mark.parametrize(
    "policy", [RetryPolicy(max_attempts=None, initial_delay=0.5, max_delay=30.0)]
)
async def test_the_backoff_doubles_up_to_its_cap(
    policy: RetryPolicy, autojump_clock: trio.testing.MockClock
) -> None:
    # Connections refused at once (loopback), waits in virtual time.
    url = f"ws://127.0.0.1:{closed_port()}/relay/connect"
    times: list[float] = []
    enough = trio.Event()

    async with watching("ocean_trio.relay", "cannot reach") as log, trio.open_nursery() as nursery:

        def when(record: logging.LogRecord) -> bool:
            times.append(trio.current_time())
            if len(times) == 9:
                enough.set()
            return True

        log.where = when
        await nursery.start(source_for(url, policy).run)
        await enough.wait()
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


async def test_the_fallback_delivery_id_is_used_only_without_one_in_the_headers(
    integration_root: Path,
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    settings = make_settings(integration_root, eventListener={"type": "WEBHOOKS_ONLY"})
    async with serve_integration(integration, settings, root=integration_root) as server:
        ingress = server.app.ingress
        assert ingress is not None
        pipeline = ingress.route("/integration/webhook")
        assert pipeline is not None
        body = relayed(1).body
        sender_id = {"x-github-delivery": "gh-1"}
        first = await ingress.accept(pipeline, body, sender_id, fallback_delivery_id="relay:r:1")
        again = await ingress.accept(pipeline, body, sender_id, fallback_delivery_id="relay:r:2")
        fallback = await ingress.accept(pipeline, body, {}, fallback_delivery_id="relay:r:1")
        repeated = await ingress.accept(pipeline, body, {}, fallback_delivery_id="relay:r:1")
        plain = await ingress.accept(pipeline, body, {})
        with trio.fail_after(10):
            outcomes = await server.next_outcomes(3)
    assert [a.status for a in (first, again, fallback, repeated, plain)] == [
        202,
        200,  # the sender's id wins over a different fallback
        202,  # the fallback is the id when the headers carry none
        200,
        202,  # neither: never a duplicate
    ]
    assert sorted(str(e.event.delivery_id) for e, _ in outcomes) == ["None", "gh-1", "relay:r:1"]
