"""Serving an ``OceanASGI`` with hypercorn's trio worker, inside the caller's nursery."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._asgi import OceanASGI

logger = logging.getLogger("ocean_trio")


def hypercorn_config(host: str, port: int) -> Config:
    """Hypercorn settings for one bind; access logs off (they would log every webhook)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3.0
    return config


async def serve_asgi(
    asgi: OceanASGI,
    host: str,
    port: int,
    *,
    shutdown_trigger: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` is set; ``started()`` delivers the bound URLs (port 0 resolved)."""
    config = hypercorn_config(host, port)
    await serve(
        asgi,  # type: ignore[arg-type]
        config,
        shutdown_trigger=shutdown_trigger.wait,
        task_status=task_status,
        mode="asgi",
    )
