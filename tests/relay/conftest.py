"""The relay in-process on 127.0.0.1 (port 0), and an integration taking its events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ocean_trio.relay._server import Relay, open_relay
from ocean_trio.relay._settings import RelaySettings, load_relay_settings

TOKEN = "relay-token-0123456789abcdef"
SECRET = "webhook-secret-0xC0FFEE"


def relay_settings(folder: Path, **overrides: Any) -> RelaySettings:
    """Settings of a relay in ``folder`` (created) serving ``/webhook`` on a free port;
    ``overrides`` in camelCase."""
    folder.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0},
        "token": TOKEN,
        "webhooks": {"/webhook": {}},
    }
    return load_relay_settings(folder, environ={}, overrides={**base, **overrides})


@asynccontextmanager
async def serve_relay(folder: Path, **overrides: Any) -> AsyncIterator[Relay]:
    """A relay as ``relay_settings`` configures it, running."""
    async with open_relay(relay_settings(folder, **overrides), folder) as relay:
        yield relay


def connect_url(relay: Relay) -> str:
    """Where the integration connects (``liveEvents.relay.url``)."""
    return relay.urls[0].replace("http://", "ws://") + "/relay/connect"


class LogWatch(logging.Handler):
    """Sets an event when a record containing ``text`` is logged: a test waits on it."""

    def __init__(self, text: str, *, where: Callable[[logging.LogRecord], bool] | None = None):
        super().__init__(logging.DEBUG)
        self.text = text
        self.where = where or (lambda record: True)
        self.seen = trio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.text in record.getMessage() and self.where(record):
            self.seen.set()


@asynccontextmanager
async def watching(logger: str, text: str) -> AsyncIterator[LogWatch]:
    watch = LogWatch(text)
    target = logging.getLogger(logger)
    level = target.level
    target.addHandler(watch)
    target.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        target.removeHandler(watch)
        target.setLevel(level)
