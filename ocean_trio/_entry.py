"""``IntegrationASGI``: the ASGI app ``hypercorn --worker-class trio integrations.x.main:app`` serves.

hypercorn owns the server here, so the ASGI lifespan opens the app (``open_app`` without
HTTP) in a nursery it owns: on ``lifespan.startup`` the tree starts, on
``lifespan.shutdown`` it drains before answering, so the drain never depends on a framework
nursery outliving the server. Everything else goes to ``OceanASGI``, Quart's lifespan
included. The address hypercorn bound is learnt from its own ``Running on <url>`` line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from ._app import App
from ._asgi import OceanASGI
from ._exceptions import OceanError
from ._integration import Integration
from ._log import configure_logging
from ._root import open_app
from ._settings import Settings, load_settings
from .live_events._ingress import Receive, Send, send_json

logger = logging.getLogger("ocean_trio")

_RUNNING_ON = re.compile(r"^Running on (\S+)")


class IntegrationASGI:
    """The hypercorn entry point of one integration; see the module docstring."""

    def __init__(self, integration: Integration) -> None:
        self._integration = integration
        self._asgi: OceanASGI | None = None

    @property
    def app(self) -> App | None:
        """The running app, between lifespan start-up and shutdown."""
        return None if self._asgi is None else self._asgi.app

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        asgi = self._asgi
        if asgi is not None:
            await asgi(scope, receive, send)
        elif scope["type"] == "http":
            await send_json(
                send, 503, {"error": "the service is starting"}, ((b"retry-after", b"1"),)
            )

    async def _lifespan(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        startup = await receive()
        integration = self._integration
        try:
            settings = integration.settings or load_settings(integration.root or Path.cwd())
        except OceanError as error:
            await _startup_failed(send, error)
            return
        configure_logging(
            settings.log_level, as_json=settings.log_format == "json", secrets=settings.secrets()
        )
        async with trio.open_nursery() as nursery:
            try:
                running: _Running = await nursery.start(self._run_app, settings)
            except OceanError as error:
                await _startup_failed(send, error)
                return

            async def forward() -> Any:
                # Quart's lifespan sees the start-up message again, then the real ones; the
                # app drains before Quart hears of the shutdown.
                nonlocal startup
                if startup is not None:
                    message, startup = startup, None
                    return message
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    running.stop.set()
                    await running.stopped.wait()
                return message

            assert self._asgi is not None
            await self._asgi(scope, forward, send)

    async def _run_app(self, settings: Settings, *, task_status: trio.TaskStatus[_Running]) -> None:
        running = _Running()
        hypercorn_log = logging.getLogger("hypercorn.error")
        try:
            async with open_app(self._integration, settings) as app:
                watcher = _BindWatcher(app)
                hypercorn_log.addFilter(watcher)
                try:
                    self._asgi = OceanASGI(app)
                    task_status.started(running)
                    await running.stop.wait()
                finally:
                    hypercorn_log.removeFilter(watcher)
        finally:
            self._asgi = None
            running.stopped.set()


@attrs.define
class _Running:
    stop: trio.Event = attrs.field(factory=trio.Event)
    stopped: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class _BindWatcher:
    """A logging filter on ``hypercorn.error``: ``Running on <url>`` tells the app its address."""

    app: App

    def filter(self, record: logging.LogRecord) -> bool:
        match = _RUNNING_ON.match(record.getMessage())
        if match:
            self.app.served_at([*self.app.urls, match.group(1)])
            logger.info("serving on %s", match.group(1))
        return True


async def _startup_failed(send: Send, error: BaseException) -> None:
    logger.error("start-up failed: %s", error)
    await send({"type": "lifespan.startup.failed", "message": str(error)})
