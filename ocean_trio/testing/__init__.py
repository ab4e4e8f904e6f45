"""Test helpers for integration authors (and ocean-trio's own tests).

``serve_integration`` runs an integration's whole component tree with a real hypercorn on
127.0.0.1 (port 0) and gives an httpx client for it, plus a way to wait for event outcomes
without sleeping. ``PortEmulator`` stands in for Port's API (``serve_port_emulator``);
``open_port_kafka`` publishes Port's Kafka messages (resync requests, integration changes) to a
broker, for the KAFKA event listener.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from .._app import App
from .._integration import Integration
from .._root import open_app
from .._settings import Settings, load_settings
from ..catalog._local import LocalCatalog
from ..live_events._journal import JournalEntry
from ..live_events._outcome import EventOutcome
from ..resync._state import ResyncState, ResyncStatus
from ._kafka import (
    PortKafka,
    integration_change_message,
    open_port_kafka,
    resync_request_message,
)
from ._port_emulator import (
    Faults,
    PortEmulator,
    RecordedRequest,
    port_client_for,
    serve_port_emulator,
)

__all__ = [
    "Faults",
    "PortEmulator",
    "PortKafka",
    "RecordedRequest",
    "TestServer",
    "integration_change_message",
    "make_settings",
    "open_port_kafka",
    "port_client_for",
    "resync_request_message",
    "serve_integration",
    "serve_port_emulator",
    "sign_hmac_sha256",
]

# Bound, and large enough for every test: outcomes beyond it are dropped (see observe()).
_OUTCOME_BUFFER = 100_000


def make_settings(
    root: Path, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings for a test: loopback, port 0, catalog under ``root``; ``overrides`` in camelCase or snake_case."""
    base: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0},
        "statePath": str(root / "state"),
    }
    return load_settings(root, environ=environ or {}, overrides={**base, **overrides})


def sign_hmac_sha256(secret: str, body: bytes, *, prefix: str = "sha256=") -> str:
    """``prefix`` + hex HMAC-SHA256 of ``body``: the GitHub-style signature header value."""
    return prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@attrs.define(eq=False)
class TestServer:
    """A served integration: its ``App``, its URL, a client, and its event outcomes."""

    __test__ = False  # not a pytest test class

    app: App
    base_url: str
    client: httpx.AsyncClient
    _outcomes: trio.MemoryReceiveChannel[tuple[JournalEntry, EventOutcome]]

    @property
    def catalog(self) -> LocalCatalog:
        """The app's embedded catalog (``app.catalog``); ``RuntimeError`` if entities go to Port."""
        if self.app.catalog is None:
            raise RuntimeError("this app has no embedded catalog: its entities go to Port")
        return self.app.catalog

    async def post_event(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST ``payload`` as JSON to ``/integration{path}``."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return await self.client.post(
            "/integration" + path,
            content=body,
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def resync(self, reason: str = "test") -> ResyncState:
        """Ask for a resync and wait until it ends: its final state (kinds, reconciliation).

        Needs an event listener that resyncs (not ``WEBHOOKS_ONLY``); with the default
        POLLING, ``make_settings(..., eventListener={"resyncOnStart": False})`` keeps the
        start-up resync out of the way, and ``resync={"coalesceSeconds": 0}`` makes it start
        at once.
        """
        coordinator = self.app.resyncs
        if coordinator is None:
            raise RuntimeError("this app never resyncs (eventListener.type WEBHOOKS_ONLY)")
        coordinator.request(reason)
        while True:  # a resync running already is aborted first: wait for the one serving us
            state = await coordinator.wait_for_next()
            if reason in state.reason.split(", ") and state.status is not ResyncStatus.ABORTED:
                return state

    async def next_outcomes(self, count: int) -> list[tuple[JournalEntry, EventOutcome]]:
        """Wait for the next ``count`` finished events (any path), in completion order."""
        return [await self._outcomes.receive() for _ in range(count)]


@asynccontextmanager
async def serve_integration(
    integration: Integration, settings: Settings, *, root: Path | None = None
) -> AsyncIterator[TestServer]:
    """Open the app serving HTTP on ``settings.http``, yield a ``TestServer``; stop cleanly on exit.

    The same tree as ``ocean-trio sail`` (``open_app(serve_http=True)``).
    """
    send, receive = trio.open_memory_channel[tuple[JournalEntry, EventOutcome]](_OUTCOME_BUFFER)
    async with (
        open_app(integration, settings, root=root, serve_http=True, observer=send) as app,
        httpx.AsyncClient(base_url=app.base_url, timeout=30) as client,
    ):
        yield TestServer(app, app.base_url, client, receive)
