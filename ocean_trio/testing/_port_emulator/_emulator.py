"""``PortEmulator``: Port's state, the requests seen, the faults to inject, and the app serving them.

The app is Quart-Trio: the ``/v1`` routes (``_routes``) and the test-control routes
(``_control``), wrapped in the ASGI layer that records requests and injects faults
(``_recording``). Errors of either kind answer in Port's error body.
"""

from __future__ import annotations

from functools import partial

from quart import request
from quart.json.provider import DefaultJSONProvider
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ._auth import AccessTokens
from ._control import ControlRoutes
from ._faults import Faults
from ._organization import OrganizationRoutes, default_kafka_credentials, default_organization
from ._owned import OwnedScans
from ._rate_limit import RateLimit
from ._recording import RecordedRequest, record_and_inject
from ._resync_routes import ResyncRoutes, new_resync_request
from ._routes import PortRoutes, Reply
from ._wire import ApiError, Key, Obj

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
_HTTP_CODES[413] = "payload_too_large"


class PortEmulator:
    """Port's state (blueprints, entities, integrations), the requests seen, and the app serving them."""

    def __init__(
        self,
        *,
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        token_ttl_seconds: float = 3600.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.blueprints: dict[str, Obj] = {}
        self.entities: dict[Key, Obj] = {}
        self.integrations: dict[str, Obj] = {}
        self.organization: Obj = default_organization()  # GET /v1/organization
        self.kafka_credentials: Obj | None = default_kafka_credentials()
        self.resync_requests: dict[str, Obj] = {}  # integration → its latest resync request
        self.resync_states: list[Obj] = []  # every resync state PATCHed, in order
        self.owned_scans = OwnedScans()
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self.rate_limit = RateLimit()  # off until set: Port's x-ratelimit-* headers and 429s
        self._tokens = AccessTokens()
        self.app: QuartTrio = _build_app(self, self._tokens)

    def calls(self, method: str, path_prefix: str) -> int:
        """How many recorded requests used ``method`` on a path starting with ``path_prefix``."""
        method = method.upper()
        return sum(r.method == method and r.path.startswith(path_prefix) for r in self.requests)

    def request_resync(self, integration: str) -> Obj:
        """Make a new resync request for ``integration`` (as a user asking Port for one)."""
        return new_resync_request(self, integration)

    def expire_tokens(self) -> None:
        """Expire every token issued so far (later ones are valid again)."""
        self._tokens.expire_all()

    def reset(self) -> None:
        """Forget everything: blueprints, entities, integrations (their resync requests and states),
        requests, faults, the rate limit and tokens."""
        self.blueprints.clear()
        self.entities.clear()
        self.integrations.clear()
        self.organization = default_organization()
        self.kafka_credentials = default_kafka_credentials()
        self.resync_requests.clear()
        self.resync_states.clear()
        self.owned_scans.clear()
        self.requests.clear()
        self.faults.clear()
        self.rate_limit.clear()
        self._tokens.clear()


class _UnsortedJSON(DefaultJSONProvider):
    sort_keys = False  # keep Port's field order readable


def _build_app(emulator: PortEmulator, tokens: AccessTokens) -> QuartTrio:
    app = QuartTrio("ocean_trio.testing.port_emulator")
    app.json = _UnsortedJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = None  # the bulk route answers 413 itself, Port-style
    PortRoutes(emulator, tokens).register(app)
    OrganizationRoutes(emulator).register(app)
    ResyncRoutes(emulator).register(app)
    ControlRoutes(emulator).register(app)
    app.register_error_handler(ApiError, _api_error_reply)
    app.register_error_handler(HTTPException, _http_error_reply)
    app.asgi_app = partial(  # type: ignore[method-assign]
        record_and_inject, emulator.requests, emulator.faults, emulator.rate_limit, app.asgi_app
    )
    return app


async def _api_error_reply(error: ApiError) -> Reply:
    return error.body(), error.status


async def _http_error_reply(error: HTTPException) -> Reply:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    message = f"{error.name}: {request.method} {request.path}"
    return {"ok": False, "error": code, "message": message}, status
