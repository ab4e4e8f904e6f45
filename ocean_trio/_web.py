"""The Quart-Trio app: health, catalog pages, the admin API and the integration's legacy routes.

Webhook paths never get here (``OceanASGI`` sends them to the ingress). Every error is
answered in JSON, ``{"error": "..."}``, like the ingress's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import quart
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ._app import App
from ._exceptions import SignatureError
from ._feed_web import feed_blueprint
from ._metrics import CONTENT_TYPE
from ._page import page_blueprint
from .catalog._local import LocalCatalog
from .catalog._web import catalog_blueprint
from .live_events._admin import admin_blueprint
from .resync._webhook import RESYNC_BODY_BYTES, resync_authority

logger = logging.getLogger("ocean_trio")


def json_error(status: int, message: str) -> quart.Response:
    """``{"error": message}`` with ``status``."""
    return quart.Response(
        quart.json.dumps({"error": message}), status=status, content_type="application/json"
    )


def build_quart_app(app: App, router_blueprint: quart.Blueprint) -> QuartTrio:
    """A Quart-Trio app serving ``app``'s pages and APIs, and ``router_blueprint``."""
    web = QuartTrio("ocean_trio")
    web.config["JSONIFY_PRETTYPRINT_REGULAR"] = False

    def catalog() -> LocalCatalog:
        if app.catalog is None:
            quart.abort(json_error(404, "entities go to Port (catalog.type: port): look there"))
        return app.catalog

    @web.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> quart.Response:
        response = json_error(error.code or 500, _describe(error))
        if error.code == 405:
            for name, value in error.get_headers():
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @web.errorhandler(Exception)
    async def unexpected(error: Exception) -> quart.Response:
        logger.error("%s %s failed: %r", quart.request.method, quart.request.path, error)
        return json_error(500, "internal error (logged)")

    @web.get("/")
    async def index() -> Any:
        return quart.redirect("/live/")

    @web.get("/health/live")
    async def live() -> Any:
        return {"status": "ok"}

    @web.get("/health/ready")
    async def ready() -> Any:
        # 200 when the journal records, the sink writes and the process is not draining.
        reason = app.readiness()
        if reason is not None:
            return {**app.health(), "status": "unavailable", "reason": reason}, 503
        return app.health()

    @web.get("/metrics")
    async def metrics() -> Any:
        return quart.Response(app.metrics.render(), content_type=CONTENT_TYPE)

    @web.get("/resync")
    async def resync_state() -> Any:
        if app.resyncs is None:
            return json_error(404, "resyncs are off (eventListener.type: WEBHOOKS_ONLY)")
        return {"resync": app.resync_json()}

    if app.settings.event_listener.type == "WEBHOOK":
        authority = resync_authority(app.settings)

        @web.post("/resync")
        async def trigger_resync() -> Any:
            # Ocean's route is open to anyone and holds the request for the whole resync;
            # this one needs the token or Port's signature, and answers at once.
            request = quart.request
            if (request.content_length or 0) > RESYNC_BODY_BYTES:
                return json_error(
                    413, f"a resync request's body is at most {RESYNC_BODY_BYTES} bytes"
                )
            body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
            if len(body) > RESYNC_BODY_BYTES:
                return json_error(
                    413, f"a resync request's body is at most {RESYNC_BODY_BYTES} bytes"
                )
            headers = {name.lower(): value for name, value in request.headers.items()}
            try:
                authority.verify(body, headers, time.time())
            except SignatureError as error:
                return json_error(401, str(error))
            await app.request_resync("POST /resync")
            return {"status": "accepted", "status_url": "/resync"}, 202

    web.register_blueprint(catalog_blueprint(catalog))
    web.register_blueprint(admin_blueprint(app))
    web.register_blueprint(feed_blueprint(app))
    web.register_blueprint(page_blueprint())
    web.register_blueprint(router_blueprint)
    return web


def _describe(error: HTTPException) -> str:
    if error.code == 404:
        return f"nothing at {quart.request.path}"
    if error.code == 405:
        return f"method {quart.request.method} not allowed on {quart.request.path}"
    return str(error.description or error.name)
