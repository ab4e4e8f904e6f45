"""Serving a ``PortEmulator`` on hypercorn (trio): in a test's nursery, or as a CLI process."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ...catalog._port_client import PortClient
from ._emulator import PortEmulator

_log = logging.getLogger("ocean_trio.testing.port_emulator")


def _hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    # Emulated drops are raised through hypercorn, which logs them here at ERROR.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    return config


@asynccontextmanager
async def serve_port_emulator(
    emulator: PortEmulator, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``emulator`` on hypercorn (trio) and yield its base URL; stop it on exit."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(
                serve,
                emulator.app,
                _hypercorn_config(host, port),
                shutdown_trigger=shutdown.wait,
                mode="asgi",
            )
        )
        try:
            yield urls[0]
        finally:
            shutdown.set()


@asynccontextmanager
async def port_client_for(
    emulator: PortEmulator,
    *,
    user_agent: str = "port-ocean/test/0.1.0/test-integration/exporter",
    **options: Any,
) -> AsyncIterator[PortClient]:
    """Serve ``emulator`` and yield a ``PortClient`` logged in with its credentials
    (``options``: the client's own, such as ``retry`` or ``requests_per_second``)."""
    async with (
        serve_port_emulator(emulator) as url,
        PortClient.open(
            base_url=url,
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            user_agent=user_agent,
            **options,
        ) as client,
    ):
        yield client


def run_port_emulator(host: str, port: int, *, client_id: str, client_secret: str) -> int:
    """Serve a fresh emulator until SIGINT or SIGTERM; the body of ``ocean-trio port-emulator``."""
    emulator = PortEmulator(client_id=client_id, client_secret=client_secret)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with serve_port_emulator(emulator, host=host, port=port) as url:
                banner = (
                    f"Port API emulator on {url} (client id {client_id}, secret {client_secret})"
                )
                print(banner, flush=True)
                async for signum in signals:
                    _log.info("stopping on %s", signal.Signals(signum).name)
                    break

    trio.run(main)
    return 0
