"""``OceanASGI``: the ASGI entry point; webhook paths go to the lean ingress, the rest to Quart.

Two ways to run it, one component tree:
- ``ocean-trio sail`` opens the app first and serves it (``attach``); the lifespan then only
  starts the Quart app.
- ``hypercorn --worker-class trio integrations.x.main:app``: the ASGI lifespan itself opens the
  app in a nursery it owns, and on ``lifespan.shutdown`` drains it before answering, so the
  drain never depends on a framework nursery outliving the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._app import App, open_app
from ._router import quart_blueprint
from ._settings import load_settings
from .live_events._ingress import Receive, Send, WebhookIngress, send_json

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from ._ocean import Integration

logger = logging.getLogger("ocean_trio")


class OceanASGI:
    """Routes ASGI traffic for one integration; see the module docstring for the two modes."""

    def __init__(self, integration: Integration) -> None:
        from ._web import build_quart_app

        self._integration = integration
        self._app: App | None = None
        self._ingress: WebhookIngress | None = None
        self._attached = False
        self.quart: QuartTrio = build_quart_app(
            lambda: self._app, quart_blueprint(integration.router)
        )

    @property
    def app(self) -> App | None:
        return self._app

    def attach(self, app: App) -> None:
        """Serve ``app``, which the caller opened and will close (the ``sail`` mode)."""
        self._attached = True
        self._set_app(app)

    def _set_app(self, app: App | None) -> None:
        self._app = app
        self._ingress = (
            None
            if app is None
            else WebhookIngress(
                app.pipelines,
                max_body_bytes=app.settings.live_events.max_body_bytes,
                accepting=lambda: app.accepting,
                verifiers=app.verifiers,
                delivery_id_headers=app.delivery_id_headers,
            )
        )

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            ingress = self._ingress
            if ingress is not None:
                pipeline = ingress.route(scope["path"])
                if pipeline is not None:
                    await ingress(pipeline, scope, receive, send)
                    return
            elif scope["path"].startswith("/integration/") and self._integration.webhook_processors:
                await send_json(
                    send, 503, {"error": "the service is starting"}, ((b"retry-after", b"1"),)
                )
                return
        elif kind == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.quart(scope, receive, send)  # type: ignore[arg-type]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        if self._attached:
            await self.quart.startup()
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.quart.shutdown_event.set()
            await send({"type": "lifespan.shutdown.complete"})
            return
        async with trio.open_nursery() as nursery:
            try:
                stop = await nursery.start(self._run_owned)
                await self.quart.startup()
            except Exception as error:
                logger.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                nursery.cancel_scope.cancel()
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.quart.shutdown_event.set()
            stop.set()
        await send({"type": "lifespan.shutdown.complete"})

    async def _run_owned(self, *, task_status: trio.TaskStatus[trio.Event]) -> None:
        integration = self._integration
        settings = integration.settings or load_settings(integration.root or Path.cwd())
        stop = trio.Event()
        try:
            async with open_app(integration, settings) as app:
                self._set_app(app)
                task_status.started(stop)
                await stop.wait()
        finally:
            self._set_app(None)
