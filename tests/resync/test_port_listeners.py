"""Listeners and resyncs with the Port sink, against the Port API emulator on loopback."""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from ocean_trio import ConfigError, Integration
from ocean_trio.resync._state import ResyncState, ResyncStatus
from ocean_trio.resync._webhook import RESYNC_BODY_BYTES
from ocean_trio.testing import (
    PortEmulator,
    TestServer,
    make_settings,
    open_port_kafka,
    serve_integration,
)
from ocean_trio.testing._port_emulator import serve_port_emulator

from .test_resync_local import Source, source_integration


@asynccontextmanager
async def port_app(
    root: Path,
    tmp_path: Path,
    emulator: PortEmulator,
    integration: Integration | None = None,
    **settings: Any,
) -> AsyncIterator[TestServer]:
    async with serve_port_emulator(emulator) as url:
        options: dict[str, Any] = {
            "catalog": {"type": "port"},
            "port": {
                "baseUrl": url,
                "clientId": emulator.client_id,
                "clientSecret": emulator.client_secret,
            },
            "integration": {"identifier": "my-items", "type": "items"},
            "resync": {"coalesceSeconds": 0},
            **settings,
        }
        async with serve_integration(
            integration or Integration(root), make_settings(tmp_path, **options)
        ) as server:
            yield server


async def test_the_webhook_listener_tells_port_where_to_send_changes(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    listener = {"type": "WEBHOOK", "token": "t", "appHost": "https://example.test/"}
    async with port_app(integration_root, tmp_path, emulator, eventListener=listener):
        pass  # created with the destination
    assert emulator.integrations["my-items"]["changelogDestination"] == {
        "type": "WEBHOOK",
        "url": "https://example.test/resync",
    }
    listener["appHost"] = "https://moved.test"
    async with port_app(integration_root, tmp_path, emulator, eventListener=listener):
        pass  # found with another one: patched
    assert emulator.integrations["my-items"]["changelogDestination"] == {
        "type": "WEBHOOK",
        "url": "https://moved.test/resync",
    }
    patches = [r for r in emulator.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == ["/v1/integration/my-items"]


async def first_resync(server: TestServer) -> ResyncState:
    """The resync asked for on start, whether it has ended already or not."""
    coordinator = server.app.resyncs
    assert coordinator is not None
    with trio.fail_after(10):
        while coordinator.last is None:
            await coordinator.wait_for_next()
    return coordinator.last


async def test_polling_port_resyncs_on_start_then_on_each_new_request_and_reports_states(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    for blueprint in ("item", "urgentItem"):
        emulator.blueprints[blueprint] = {"identifier": blueprint, "schema": {}}
    source = Source(["P0", "P1", "P2"])
    listener = {"type": "POLLING", "interval": 0.05, "resyncOnStart": True}
    integration = source_integration(integration_root, source)
    async with port_app(
        integration_root, tmp_path, emulator, integration, eventListener=listener
    ) as server:
        first = await first_resync(server)
        assert first.status is ResyncStatus.COMPLETED
        assert sorted(i for b, i in emulator.entities if b == "item") == ["P0", "P1", "P2"]

        del source.items["P1"]  # gone at the source: the next resync deletes it from Port
        assert server.app.resyncs is not None
        emulator.request_resync("my-items")
        with trio.fail_after(10):
            second = await server.app.resyncs.wait_for_next()
        assert "Port resync request" in second.reason
        assert second.reconciliation is not None
        assert (second.reconciliation.stale, second.reconciliation.deleted) == (1, 1)
        assert sorted(i for b, i in emulator.entities if b == "item") == ["P0", "P2"]

    states = [s for s in emulator.resync_states if s["integration"] == "my-items"]
    assert [s["status"] for s in states] == ["running", "completed", "running", "completed"]
    assert states[0]["lastResyncStart"] is not None
    assert states[0]["lastResyncEnd"] is None
    assert states[1]["lastResyncEnd"] is not None
    assert all(s["intervalInMinuets"] is None and s["nextResync"] is None for s in states)


async def test_a_resync_cut_short_by_shutdown_is_reported_aborted_to_port(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    emulator.blueprints["item"] = {"identifier": "item", "schema": {}}
    source = Source(["Q0", "Q1", "Q2", "Q3"])
    source.gate = trio.Event()  # never opened: the resync waits until shutdown
    listener = {"type": "POLLING", "interval": 60, "resyncOnStart": True}
    integration = source_integration(integration_root, source)
    async with port_app(integration_root, tmp_path, emulator, integration, eventListener=listener):
        with trio.fail_after(10):
            await source.reached_gate.wait()
    assert [s["status"] for s in emulator.resync_states] == ["running", "aborted"]


def port_signed(body: bytes, secret: str) -> dict[str, str]:
    """Headers Port sends with a webhook: its signature keyed by the client secret."""
    stamp = str(int(time.time()))
    digest = hmac.digest(secret.encode(), f"{stamp}.".encode() + body, "sha256")
    return {
        "x-port-timestamp": stamp,
        "x-port-signature": "v1," + base64.b64encode(digest).decode(),
    }


async def status_of_announced_body(server: TestServer, length: int) -> bytes:
    """The status of a ``POST /resync`` announcing a body of ``length`` bytes, none sent: a
    refusal must come from the announcement, without reading (or waiting for) the body."""
    url = httpx.URL(server.base_url)
    assert url.host == "127.0.0.1"
    stream = await trio.open_tcp_stream(url.host, url.port or 80)
    async with stream:
        await stream.send_all(
            b"POST /resync HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            + f"content-length: {length}\r\n\r\n".encode()
        )
        with trio.fail_after(10):
            head = await stream.receive_some(4096)
    return head.split(b" ", 2)[1]


async def test_the_webhook_listener_takes_port_signed_calls_without_a_token(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    emulator.blueprints["item"] = {"identifier": "item", "schema": {}}
    source = Source(["W0", "W1"])
    listener = {"type": "WEBHOOK", "appHost": "https://example.test"}
    integration = source_integration(integration_root, source)
    async with port_app(
        integration_root, tmp_path, emulator, integration, eventListener=listener
    ) as server:
        body = b'{"action": "UPDATE", "resourceType": "integration"}'
        unsigned = await server.client.post("/resync", content=body)
        assert unsigned.status_code == 401
        assert unsigned.json()["error"] == "missing x-port-timestamp header"
        forged = await server.client.post(
            "/resync", content=body, headers=port_signed(body, "not-the-secret")
        )
        assert (forged.status_code, forged.json()["error"]) == (
            401,
            "x-port-signature does not match the request",
        )
        assert await status_of_announced_body(server, RESYNC_BODY_BYTES + 1) == b"413"
        assert server.app.resyncs is not None
        assert server.app.resyncs.last is None

        signed = await server.client.post(
            "/resync", content=body, headers=port_signed(body, emulator.client_secret)
        )
        assert signed.status_code == 202
        with trio.fail_after(10):
            state = await server.app.resyncs.wait_for_next()
        assert (state.reason, state.status) == ("POST /resync", ResyncStatus.COMPLETED)
        assert sorted(i for b, i in emulator.entities if b == "item") == ["W0", "W1"]


@pytest.mark.slow
async def test_the_kafka_listener_resyncs_the_app_for_each_request_port_publishes(
    integration_root: Path, tmp_path: Path, kafka_bootstrap: str
) -> None:
    emulator = PortEmulator()
    emulator.organization["id"] = f"org_{uuid.uuid4().hex[:12]}"
    emulator.blueprints["item"] = {"identifier": "item", "schema": {}}
    source = Source(["K0", "K1"])
    listener = {
        "type": "KAFKA",
        "brokers": kafka_bootstrap,
        "securityProtocol": "PLAINTEXT",  # tansu speaks no SASL; the login is still fetched
        "sessionTimeoutMs": 2000,
    }
    integration = source_integration(integration_root, source)
    async with open_port_kafka(kafka_bootstrap, str(emulator.organization["id"])) as kafka:
        await kafka.create_topics()
        async with port_app(
            integration_root, tmp_path, emulator, integration, eventListener=listener
        ) as server:
            assert emulator.integrations["my-items"]["changelogDestination"] == {"type": "KAFKA"}
            assert server.app.resyncs is not None
            assert server.app.resyncs.last is None  # KAFKA does not resync on start (Ocean)
            await kafka.request_resync("my-items", on="change log")
            with trio.fail_after(20):
                state = await server.app.resyncs.wait_for_next()
            assert state.reason.startswith("KAFKA: resync requested")
            assert state.status is ResyncStatus.COMPLETED
            assert sorted(i for b, i in emulator.entities if b == "item") == ["K0", "K1"]


async def test_the_kafka_listener_needs_the_port_sink(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, eventListener={"type": "KAFKA"})
    with pytest.raises(ConfigError, match=r"KAFKA needs the Port sink \(catalog\.type: port\)"):
        async with serve_integration(Integration(integration_root), settings):
            raise AssertionError("started KAFKA without Port")
