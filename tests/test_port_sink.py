"""The Port sink end to end: webhook → processors → mapping → Port (the emulator, on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from ocean_trio import (
    ConfigError,
    Entity,
    EntityChanges,
    EventStatus,
    Integration,
)
from ocean_trio.catalog._port_sink import PortSink
from ocean_trio.testing import TestServer, make_settings, port_client_for, serve_integration
from ocean_trio.testing._port_emulator import PortEmulator, serve_port_emulator

from .processors import ItemProcessor
from .test_servers import _free_port

DEMO = Path(__file__).resolve().parent.parent / "integrations" / "fake"

BLUEPRINTS = [
    {
        "identifier": "item",
        "title": "Item",
        "schema": {"properties": {"status": {"type": "string"}}},
    },
    {
        "identifier": "urgentItem",
        "title": "Urgent",
        "schema": {"properties": {"priority": {"type": "string"}}},
    },
]


@asynccontextmanager
async def served(
    root: Path, tmp_path: Path, emulator: PortEmulator, **port: Any
) -> AsyncIterator[TestServer]:
    (root / ".port" / "resources" / "blueprints.json").write_text(json.dumps(BLUEPRINTS))
    integration = Integration(root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    async with serve_port_emulator(emulator) as url:
        settings = make_settings(
            tmp_path,
            catalog={"type": "port"},
            port={
                "baseUrl": url,
                "clientId": emulator.client_id,
                "clientSecret": emulator.client_secret,
                **port,
            },
            integration={"identifier": "my-items", "type": "items"},
        )
        async with serve_integration(integration, settings) as server:
            yield server


def item(identifier: str, **fields: Any) -> dict[str, Any]:
    return {"item": {"id": identifier, "title": identifier, "status": "open", **fields}}


async def test_webhooks_end_up_as_entities_in_port(integration_root: Path, tmp_path: Path) -> None:
    emulator = PortEmulator()
    async with served(integration_root, tmp_path, emulator) as server:
        # start-up created the missing blueprints and the integration with the local mapping
        assert set(emulator.blueprints) == {"item", "urgentItem"}
        assert emulator.integrations["my-items"]["config"]["resources"][0]["kind"] == "item"

        assert (await server.post_event("/webhook", item("A", priority="high"))).status_code == 202
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        stored = emulator.entities[("item", "A")]
        assert stored["properties"] == {"status": "open"}
        assert stored["datasource"] == "port-ocean/items/0.1.0/my-items/exporter"
        assert ("urgentItem", "A") in emulator.entities

        # no longer urgent: deleted there; then deleted everywhere
        await server.post_event("/webhook", item("A", priority="low"))
        await server.post_event("/webhook", {**item("A"), "action": "deleted"})
        await server.next_outcomes(2)
        assert emulator.entities == {}
        assert (await server.client.get("/catalog/entities")).status_code == 404
        health = (await server.client.get("/health/ready")).json()
        assert health["port"]["requests"] >= 5


async def test_the_mapping_in_port_wins_over_the_local_file(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    emulator.blueprints["thing"] = {"identifier": "thing", "title": "Thing"}
    emulator.integrations["my-items"] = {
        "identifier": "my-items",
        "config": {
            "resources": [
                {
                    "kind": "item",
                    "selector": {"query": "true"},
                    "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"thing"'}}},
                }
            ]
        },
    }
    async with served(integration_root, tmp_path, emulator) as server:
        await server.post_event("/webhook", item("B"))
        await server.next_outcomes(1)
        assert list(emulator.entities) == [("thing", "B")]


async def test_an_entity_port_refuses_dead_letters_its_event_only(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    async with served(integration_root, tmp_path, emulator) as server:
        await server.post_event("/webhook", item("bad id"))  # spaces are not allowed by Port
        await server.post_event("/webhook", item("C"))
        outcomes = {e.event.payload["item"]["id"]: o for e, o in await server.next_outcomes(2)}
        assert outcomes["C"].status is EventStatus.DONE
        assert outcomes["bad id"].status is EventStatus.DEAD
        assert "invalid_identifier" in (outcomes["bad id"].error or "")
        assert ("item", "C") in emulator.entities


async def test_a_port_outage_is_retried(integration_root: Path, tmp_path: Path) -> None:
    emulator = PortEmulator()
    async with served(integration_root, tmp_path, emulator) as server:
        emulator.faults.fail(
            503, path="/v1/blueprints/item/entities/bulk", times=2, retry_after=0.01
        )
        await server.post_event("/webhook", item("D"))
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        assert ("item", "D") in emulator.entities


async def test_many_events_are_coalesced_into_bulk_calls() -> None:
    emulator = PortEmulator()
    emulator.blueprints["item"] = {"identifier": "item", "title": "Item"}  # any property
    async with port_client_for(emulator, user_agent="port-ocean/test/0.1.0/t/exporter") as client:
        batch = [
            EntityChanges((Entity(f"e{i % 30}", "item", properties={"n": i}),)) for i in range(60)
        ]
        batch.append(EntityChanges(deletes=(Entity("e0", "item"),)))
        await PortSink(client).apply(batch)
    # 60 events on 30 entities: 30 upserts (last value wins) in 2 bulk calls, 1 bulk delete
    assert emulator.calls("POST", "/v1/blueprints/item/entities/bulk") == 2
    assert emulator.calls("POST", "/v1/blueprints/item/bulk/entities/delete") == 1
    assert emulator.entities[("item", "e29")]["properties"] == {"n": 59}
    assert ("item", "e0") not in emulator.entities


async def test_live_events_fill_bulk_calls_with_one_worker(
    integration_root: Path, tmp_path: Path
) -> None:
    # The default single worker does not wait for each write: events' writes gather, and a
    # short one waits a little for more, so 60 events need a few bulk calls, not 60.
    emulator = PortEmulator()
    async with served(integration_root, tmp_path, emulator) as server:
        emulator.requests.clear()
        async with trio.open_nursery() as nursery:
            for n in range(60):
                nursery.start_soon(server.post_event, "/webhook", item(f"I-{n}"))
        outcomes = await server.next_outcomes(60)
    assert {outcome.status for _, outcome in outcomes} == {EventStatus.DONE}
    assert sum(1 for key in emulator.entities if key[0] == "item") == 60
    assert emulator.calls("POST", "/v1/blueprints/item/entities/bulk") <= 15


async def test_port_settings_are_required(integration_root: Path, tmp_path: Path) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    settings = make_settings(tmp_path, catalog={"type": "port"})
    with pytest.raises(
        ConfigError, match=r"port.clientId .*port.clientSecret .*integration.identifier"
    ):
        async with serve_integration(integration, settings):
            pass


async def test_the_request_rate_is_a_setting(integration_root: Path, tmp_path: Path) -> None:
    async with served(integration_root, tmp_path, PortEmulator(), requestsPerSecond=250) as server:
        assert server.app.port is not None
        assert server.app.port.rate.rate == 250.0


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("requestsPerSecond", 0, r"port.requestsPerSecond .* must be a positive number"),
        ("requestsPerSecond", -5, r"port.requestsPerSecond .* must be a positive number"),
        ("bulkWaitSeconds", -1, r"port.bulkWaitSeconds .* must be between 0 and 5"),
        ("bulkWaitSeconds", 60, r"port.bulkWaitSeconds .* must be between 0 and 5"),
    ],
)
async def test_port_client_settings_out_of_range_stop_start_up(
    integration_root: Path, tmp_path: Path, setting: str, value: float, message: str
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    port = {"clientId": "id", "clientSecret": "secret", setting: value}
    settings = make_settings(
        tmp_path, catalog={"type": "port"}, port=port, integration={"identifier": "x"}
    )
    with pytest.raises(ConfigError, match=message):
        async with serve_integration(integration, settings):
            pass


@pytest.mark.slow
async def test_the_demo_sails_into_the_port_emulator(tmp_path: Path) -> None:
    """The documented try-out: ``ocean-trio port-emulator`` + the fake integration with the
    port sink, both as subprocesses; the demo's entities arrive in the emulator."""
    emulator_port, app_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "OCEAN__CATALOG__TYPE": "port",
        "OCEAN__PORT__BASE_URL": f"http://127.0.0.1:{emulator_port}",
        "OCEAN__PORT__CLIENT_ID": "client-id",
        "OCEAN__PORT__CLIENT_SECRET": "client-secret",
        "OCEAN__INTEGRATION__IDENTIFIER": "fake-tracker",
        "OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT": "0",
        "OCEAN__STATE_PATH": str(tmp_path / "state"),
        "OCEAN__LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "ocean_trio"]
    demo = DEMO
    processes = [
        await trio.lowlevel.open_process(
            [*cli, "port-emulator", "--port", str(emulator_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(30):
                while True:  # another process: poll until it listens
                    try:
                        await client.get(f"http://127.0.0.1:{emulator_port}/_emulator/entities")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
                processes.append(
                    await trio.lowlevel.open_process(
                        [*cli, "sail", str(demo), "--port", str(app_port)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                while True:
                    entities = (
                        await client.get(f"http://127.0.0.1:{emulator_port}/_emulator/entities")
                    ).json()["entities"]
                    if {"issue", "project"} <= {e["blueprint"] for e in entities}:
                        break
                    assert processes[1].returncode is None, "the demo exited"
                    await trio.sleep(0.2)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
    assert all(e["datasource"].startswith("port-ocean/fake/") for e in entities)
    assert [p.returncode for p in processes] == [0, 0]
