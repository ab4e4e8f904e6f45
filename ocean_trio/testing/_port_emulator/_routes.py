"""Port's ``/v1`` routes: token, blueprints, entities (upsert, delete, search), integrations.

Handlers parse the request (query flags, JSON bodies) and leave Port's rules to ``EntityStore``.
Every route but the token one needs a bearer token (``AccessTokens``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
from quart import request
from quart_trio import QuartTrio

from ._auth import AccessTokens
from ._query import candidates, compile_query, project
from ._store import EntityStore, UpsertOptions
from ._wire import ApiError, Key, Obj, as_object, now, parse_json


class EmulatedPort(Protocol):
    """What the routes read and change of the emulator (``PortEmulator``)."""

    client_id: str
    client_secret: str
    token_ttl_seconds: float
    blueprints: dict[str, Obj]
    entities: dict[Key, Obj]
    integrations: dict[str, Obj]


Reply = tuple[Obj, int]
View = Callable[..., Awaitable[Reply]]

MAX_BULK_ENTITIES = 20
MAX_BULK_BYTES = 1024 * 1024

_TOKEN_PATH = "/v1/auth/access_token"


def add_rules(app: QuartTrio, rules: list[tuple[str, View, str]]) -> None:
    """Route each ``(rule, view, method)``; endpoints are named after the view and method."""
    for rule, view, method in rules:
        endpoint = f"{view.__name__}_{method}"
        app.add_url_rule(rule, endpoint, view, methods=[method], strict_slashes=False)


async def read_json() -> Any:
    """The current request's body as JSON (a 400 when it is not)."""
    return parse_json(await request.get_data(cache=True, as_text=False, parse_form_data=False))


def _flag(name: str, default: bool) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(422, "invalid_request", f"Query parameter {name} must be true or false")


def _upsert_options() -> UpsertOptions:
    return UpsertOptions(
        upsert=_flag("upsert", False),
        merge=_flag("merge", False),
        create_missing_related_entities=_flag("create_missing_related_entities", False),
        validation_only=_flag("validation_only", False),
    )


@attrs.frozen
class PortRoutes:
    """The ``/v1`` handlers over an emulator's state and its granted tokens."""

    emulator: EmulatedPort
    tokens: AccessTokens

    def register(self, app: QuartTrio) -> None:
        """Add the ``/v1`` routes and the bearer-token check to ``app``."""
        add_rules(
            app,
            [
                (_TOKEN_PATH, self._issue_token, "POST"),
                ("/v1/blueprints", self._create_blueprint, "POST"),
                ("/v1/blueprints/<bp>", self._get_blueprint, "GET"),
                ("/v1/blueprints/<bp>/entities", self._upsert_one, "POST"),
                ("/v1/blueprints/<bp>/entities/bulk", self._upsert_bulk, "POST"),
                ("/v1/blueprints/<bp>/entities/<path:identifier>", self._delete_one, "DELETE"),
                ("/v1/blueprints/<bp>/bulk/entities/delete", self._delete_bulk, "POST"),
                ("/v1/entities/search", self._search, "POST"),
                ("/v1/integration", self._create_integration, "POST"),
                ("/v1/integration/<ident>", self._get_integration, "GET"),
                ("/v1/integration/<ident>", self._patch_integration, "PATCH"),
                ("/v1/integration/<ident>/config", self._patch_config, "PATCH"),
            ],
        )
        app.before_request(self._authenticate)

    @property
    def _store(self) -> EntityStore:
        # Built per request from the emulator's current dicts, so a test may replace them.
        return EntityStore(self.emulator.blueprints, self.emulator.entities)

    async def _authenticate(self) -> None:
        if not request.path.startswith("/v1/") or request.path == _TOKEN_PATH:
            return
        self.tokens.check(request.headers.get("Authorization", ""))

    # --- auth, blueprints ------------------------------------------------------------------

    async def _issue_token(self) -> Reply:
        emulator = self.emulator
        answer = self.tokens.grant(
            await read_json(),
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            ttl=emulator.token_ttl_seconds,
        )
        return answer, 200

    async def _create_blueprint(self) -> Reply:
        return {"ok": True, "blueprint": self._store.create_blueprint(await read_json())}, 200

    async def _get_blueprint(self, bp: str) -> Reply:
        return {"ok": True, "blueprint": self._store.blueprint(bp)}, 200

    # --- entities ------------------------------------------------------------------------

    async def _upsert_one(self, bp: str) -> Reply:
        options = _upsert_options()
        raw = await read_json()
        datasource = request.headers.get("User-Agent", "")
        entity, created = self._store.upsert(bp, raw, options, datasource=datasource)
        return {"ok": True, "entity": entity}, 201 if created else 200

    async def _upsert_bulk(self, bp: str) -> Reply:
        store = self._store
        store.blueprint(bp)
        options = _upsert_options()
        data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        if len(data) > MAX_BULK_BYTES:
            message = f"The request body is {len(data)} bytes; the limit is {MAX_BULK_BYTES}"
            raise ApiError(413, "payload_too_large", message)
        raws = as_object(parse_json(data), "the request body").get("entities")
        if not isinstance(raws, list):
            raise ApiError(422, "invalid_request", "The body needs an 'entities' list")
        if len(raws) > MAX_BULK_ENTITIES:
            message = f"{len(raws)} entities sent; at most {MAX_BULK_ENTITIES} per request"
            raise ApiError(422, "too_many_entities", message)
        datasource = request.headers.get("User-Agent", "")
        done: list[Obj] = []
        errors: list[Obj] = []
        for index, raw in enumerate(raws):
            identifier = raw.get("identifier") if isinstance(raw, dict) else None
            try:
                entity, created = store.upsert(bp, raw, options, datasource=datasource)
            except ApiError as error:
                shown = identifier if isinstance(identifier, str) else "unknown"
                errors.append({"index": index, "identifier": shown, "statusCode": error.status})
                errors[-1] |= {"error": error.code, "message": error.message}
            else:
                done.append(
                    {"index": index, "identifier": entity["identifier"], "created": created}
                )
        return {"ok": True, "entities": done, "errors": errors}, 207 if errors else 200

    async def _delete_one(self, bp: str, identifier: str) -> Reply:
        store = self._store
        store.blueprint(bp)
        delete_dependents = _flag("delete_dependents", False)
        store.delete_one(bp, identifier, delete_dependents=delete_dependents)
        return {"ok": True}, 200

    async def _delete_bulk(self, bp: str) -> Reply:
        store = self._store
        store.blueprint(bp)
        delete_dependents = _flag("delete_dependents", False)
        ids = as_object(await read_json(), "the request body").get("entities")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError(422, "invalid_request", "The body needs an 'entities' list of ids")
        deleted = store.delete_many(bp, ids, delete_dependents=delete_dependents)
        return {"ok": True, "deletedEntities": deleted}, 200

    async def _search(self) -> Reply:
        query = await read_json()
        matches = compile_query(query)
        include = request.args.getlist("include")
        found = [e for e in candidates(query, self.emulator.entities) if matches(e)]
        if include:
            found = [project(e, include) for e in found]
        return {"ok": True, "entities": found}, 200

    # --- integrations ------------------------------------------------------------------------

    async def _get_integration(self, ident: str) -> Reply:
        return {"ok": True, "integration": self._integration(ident)}, 200

    async def _create_integration(self) -> Reply:
        body = as_object(await read_json(), "the integration")
        ident = body.get("installationId")
        if not isinstance(ident, str) or not ident:
            raise ApiError(422, "invalid_request", "An integration needs an 'installationId'")
        if ident in self.emulator.integrations:
            raise ApiError(409, "identifier_taken", f'Integration "{ident}" already exists')
        stamp = now()
        integration = {**body, "identifier": ident, "config": body.get("config") or {}}
        integration |= {"createdAt": stamp, "updatedAt": stamp}
        self.emulator.integrations[ident] = integration
        return {"ok": True, "integration": integration}, 200

    async def _patch_integration(self, ident: str) -> Reply:
        integration = self._integration(ident)
        body = as_object(await read_json(), "the request body")
        integration |= {k: v for k, v in body.items() if k != "identifier"}
        integration["updatedAt"] = now()
        return {"ok": True, "integration": integration}, 200

    async def _patch_config(self, ident: str) -> Reply:
        integration = self._integration(ident)
        config = as_object(await read_json(), "the request body").get("config")
        integration["config"] = as_object(config, "config")
        integration["updatedAt"] = now()
        return {"ok": True, "integration": integration}, 200

    def _integration(self, ident: str) -> Obj:
        integration = self.emulator.integrations.get(ident)
        if integration is None:
            raise ApiError(404, "not_found", f'Integration "{ident}" was not found')
        return integration
