"""``OceanASGI``: the running app over ASGI; webhook paths go to the lean ingress, the rest to Quart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._app import App, webhook_ingress
from ._router import quart_blueprint
from ._web import build_quart_app
from .live_events._ingress import Receive, Send


class OceanASGI:
    """Serves one running ``App``: webhooks to the ingress, everything else (lifespan
    included, so Quart-Trio's background nursery lives as long as it) to Quart."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.quart = build_quart_app(
            app, quart_blueprint(app.integration.router, parser=app.parser)
        )
        self._ingress = app.ingress or webhook_ingress(app)

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            pipeline = self._ingress.route(scope["path"])
            if pipeline is not None:
                await self._ingress(pipeline, scope, receive, send)
                return
        await self.quart(scope, receive, send)  # type: ignore[arg-type]
