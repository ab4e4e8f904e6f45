"""The Quart-Trio app: health, catalog pages and the integration's legacy routes (not webhook paths)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import quart
from quart_trio import QuartTrio

from ._app import App
from ._router import quart_blueprint
from .catalog._local import LocalCatalog
from .catalog._web import catalog_blueprint
from .live_events._admin import admin_blueprint


def build_quart_app(
    get_app: Callable[[], App | None], router_blueprint: quart.Blueprint
) -> QuartTrio:
    """A Quart-Trio app whose routes read the running ``App`` through ``get_app``."""
    web = QuartTrio("ocean_trio")
    web.config["JSONIFY_PRETTYPRINT_REGULAR"] = False

    def running() -> App:
        app = get_app()
        if app is None:
            quart.abort(503)
        return app

    def catalog() -> LocalCatalog:
        local = running().catalog
        if local is None:
            quart.abort(
                quart.Response(
                    quart.json.dumps(
                        {"error": "entities go to Port (catalog.type: port): look there"}
                    ),
                    status=404,
                    content_type="application/json",
                )
            )
        return local

    @web.get("/")
    async def index() -> Any:
        return quart.redirect("/catalog/")

    @web.get("/health/live")
    async def live() -> Any:
        return {"status": "ok"}

    @web.get("/health/ready")
    async def ready() -> Any:
        app = get_app()
        if app is None or not app.accepting:
            return {"status": "unavailable"}, 503
        return {
            "status": "ok",
            "live_events": {
                path: attrs.asdict(p.statistics()) for path, p in app.pipelines.items()
            },
            "journal": attrs.asdict(app.journal.statistics()),
            "applier": attrs.asdict(app.applier.statistics()),
            "port": None if app.port is None else attrs.asdict(app.port.statistics()),
        }

    web.register_blueprint(catalog_blueprint(catalog))
    web.register_blueprint(admin_blueprint(running))
    web.register_blueprint(router_blueprint)
    return web


__all__ = ["build_quart_app", "quart_blueprint"]
