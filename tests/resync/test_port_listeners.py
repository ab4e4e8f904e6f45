"""Listeners and resyncs with the Port sink, against the Port API emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ocean_trio import Integration
from ocean_trio.testing import PortEmulator, TestServer, make_settings, serve_integration
from ocean_trio.testing._port_emulator import serve_port_emulator


@asynccontextmanager
async def port_app(
    root: Path, tmp_path: Path, emulator: PortEmulator, **settings: Any
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
            Integration(root), make_settings(tmp_path, **options)
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
