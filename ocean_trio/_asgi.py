"""``OceanASGI``: the running app over ASGI; webhook paths go to the lean ingress, the rest to Quart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._app import App
from ._router import quart_blueprint
from ._web import build_quart_app
from .live_events._ingress import Receive, Send, WebhookIngress


class OceanASGI:
    """Serves one running ``App``: webhooks to the ingress, everything else (lifespan
    included, so Quart-Trio's background nursery lives as long as it) to Quart."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.quart = build_quart_app(
            app, quart_blueprint(app.integration.router, parser=app.parser)
        )
        self._ingress = WebhookIngress(
            app.pipelines,
            max_body_bytes=app.settings.live_events.max_body_bytes,
            accepting=lambda: app.accepting,
            verifiers=app.verifiers,
            delivery_id_headers=app.delivery_id_headers,
            parser=app.parser,
        )

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            pipeline = self._ingress.route(scope["path"])
            if pipeline is not None:
                await self._ingress(pipeline, scope, receive, send)
                return
        await self.quart(scope, receive, send)  # type: ignore[arg-type]
