"""An in-memory emulator of the Port REST API endpoints Ocean calls, for tests and benchmarks.

``PortEmulator`` holds blueprints, entities and integrations in plain dicts and serves them as
a Quart-Trio app; ``serve_port_emulator`` runs it on hypercorn (trio) on loopback, port 0.
Every ``/v1`` route except the token one needs ``Authorization: Bearer <token>``. Errors use
Port's body ``{"ok": false, "error": <code>, "message": <text>}``. ``Faults`` injects
failures, delays and dropped connections. The ``/_emulator/...`` routes (no auth, never
recorded, never faulted) let a test drive an emulator running in another process.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import signal
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart.json.provider import DefaultJSONProvider
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

__all__ = [
    "Faults",
    "PortEmulator",
    "RecordedRequest",
    "run_port_emulator",
    "serve_port_emulator",
]

Obj = dict[str, Any]
Key = tuple[str, str]  # (blueprint, identifier)
_Scope = dict[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]
_Reply = tuple[Obj, int]

MAX_BULK_ENTITIES = 20
MAX_BULK_BYTES = 1024 * 1024
MAX_IDENTIFIER_LENGTH = 1000

_TOKEN_PATH = "/v1/auth/access_token"
_CONTROL_PREFIX = "/_emulator/"
_IDENTIFIER = re.compile(r"^[A-Za-z0-9@_.+:\\/=-]+$")
_ENTITY_FIELDS = {"identifier", "blueprint", "datasource", "title", "team", "icon"}
_ENTITY_FIELDS |= {"createdAt", "updatedAt"}
_OPERATORS = {"=", "!=", "in", "contains", "beginsWith"}
_FAULT_CODES = {
    401: "unauthorized",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
_HTTP_CODES[413] = "payload_too_large"
_log = logging.getLogger("ocean_trio.testing.port_emulator")


class _UnsortedJSON(DefaultJSONProvider):
    sort_keys = False  # keep Port's field order readable


class _ApiError(Exception):
    """A Port-style error answer, raised anywhere in a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> Obj:
        return {"ok": False, "error": self.code, "message": self.message}


class _DroppedConnection(Exception):
    """Raised after a partial response so hypercorn closes the connection mid-body."""


@attrs.define
class RecordedRequest:
    """One request as the emulator saw it (in arrival order); ``status`` is ``None`` until the
    response starts, and for a dropped connection is the status of the truncated response (200)."""

    method: str
    path: str
    query: dict[str, str]
    at: float  # trio.current_time() on arrival
    status: int | None = None
    fault: Literal["fail", "delay", "drop"] | None = None

    def to_json(self) -> Obj:
        """The JSON shape ``GET /_emulator/requests`` lists."""
        return attrs.asdict(self)


@attrs.define
class _Rule:
    kind: Literal["fail", "delay", "drop"]
    path: str
    method: str | None
    times: int | None
    status: int = 0
    seconds: float = 0.0
    headers: dict[str, str] = attrs.Factory(dict)
    body: Obj | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path)


class Faults:
    """Fault rules: each matches a method (``None`` = any) and a path prefix, for ``times`` requests."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []

    def fail(
        self,
        status: int,
        *,
        path: str = "/",
        method: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        body: Obj | None = None,
    ) -> None:
        """Answer ``status`` (with ``Retry-After`` when given) instead of handling the request."""
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"fault status must be an int in 400..599, not {status!r}")
        all_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if retry_after is not None:
            all_headers["Retry-After"] = f"{_number(retry_after, 'retry_after'):g}"
        if body is not None and not isinstance(body, dict):
            raise ValueError("fault body must be a JSON object")
        rule = _Rule("fail", *_scope(path, method, times), status=status, headers=all_headers)
        rule.body = body
        self._rules.append(rule)

    def delay(
        self,
        seconds: float,
        *,
        path: str = "/",
        method: str | None = None,
        times: int | None = None,
    ) -> None:
        """Sleep ``seconds`` (on trio's clock) before handling matching requests."""
        rule = _Rule("delay", *_scope(path, method, times), seconds=_number(seconds, "seconds"))
        self._rules.append(rule)

    def drop(self, *, path: str = "/", method: str | None = None, times: int | None = 1) -> None:
        """Send the response start and part of a body, then close: the client sees a protocol error."""
        self._rules.append(_Rule("drop", *_scope(path, method, times)))

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def _take(self, method: str, path: str) -> tuple[float, _Rule | None]:
        # Every matching delay adds up; the first matching fail/drop rule wins. Each rule
        # used spends one of its `times`, and is forgotten at zero.
        delay, action = 0.0, None
        for rule in list(self._rules):
            if not rule.matches(method, path) or (rule.kind != "delay" and action is not None):
                continue
            if rule.kind == "delay":
                delay += rule.seconds
            else:
                action = rule
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
        return delay, action


def _scope(path: str, method: str | None, times: int | None) -> tuple[str, str | None, int | None]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"fault path must be a string starting with '/', not {path!r}")
    if method is not None and not isinstance(method, str):
        raise ValueError(f"fault method must be a string or None, not {method!r}")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError(f"fault times must be a positive int or None, not {times!r}")
    return path, None if method is None else method.upper(), times


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    return float(value)


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
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self._tokens: dict[str, float] = {}  # token -> expiry on trio's clock
        self.app: QuartTrio = self._build_app()

    def calls(self, method: str, path_prefix: str) -> int:
        """How many recorded requests used ``method`` on a path starting with ``path_prefix``."""
        method = method.upper()
        return sum(r.method == method and r.path.startswith(path_prefix) for r in self.requests)

    def expire_tokens(self) -> None:
        """Expire every token issued so far (later ones are valid again)."""
        self._tokens = dict.fromkeys(self._tokens, -math.inf)

    def reset(self) -> None:
        """Forget everything: blueprints, entities, integrations, requests, faults and tokens."""
        self.blueprints.clear()
        self.entities.clear()
        self.integrations.clear()
        self.requests.clear()
        self.faults.clear()
        self._tokens.clear()

    # --- ASGI: recording and faults, around the Quart app ------------------------------------

    def _build_app(self) -> QuartTrio:
        app = QuartTrio("ocean_trio.testing.port_emulator")
        app.json = _UnsortedJSON(app)
        app.config["MAX_CONTENT_LENGTH"] = None  # the bulk route answers 413 itself, Port-style
        rules: list[tuple[str, Callable[..., Awaitable[_Reply]], str]] = [
            ("/v1/auth/access_token", self._issue_token, "POST"),
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
            ("/v1/integration/<ident>/resync-state", self._patch_resync_state, "PATCH"),
            ("/_emulator/entities", self._control_entities, "GET"),
            ("/_emulator/requests", self._control_requests, "GET"),
            ("/_emulator/reset", self._control_reset, "POST"),
            ("/_emulator/faults", self._control_add_fault, "POST"),
            ("/_emulator/faults", self._control_clear_faults, "DELETE"),
        ]
        for rule, view, method in rules:
            endpoint = f"{view.__name__}_{method}"
            app.add_url_rule(rule, endpoint, view, methods=[method], strict_slashes=False)
        app.before_request(self._authenticate)
        app.register_error_handler(_ApiError, _api_error_reply)
        app.register_error_handler(HTTPException, _http_error_reply)
        app.asgi_app = partial(self._asgi, app.asgi_app)  # type: ignore[method-assign]
        return app

    async def _asgi(
        self,
        inner: Callable[..., Awaitable[None]],
        scope: _Scope,
        receive: _Receive,
        send: _Send,
    ) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_CONTROL_PREFIX):
            await inner(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1")))
        record = RecordedRequest(method, path, query, trio.current_time())
        self.requests.append(record)
        delay, action = self.faults._take(method, path)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        if delay:
            record.fault = "delay"
            await trio.sleep(delay)
        if action is None:
            await inner(scope, receive, recording_send)
            return
        record.fault = action.kind
        if action.kind == "drop":
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [(b"content-type", b"application/json"), (b"content-length", b"64")]
            await recording_send(start)
            await send({"type": "http.response.body", "body": b'{"ok": true', "more_body": True})
            raise _DroppedConnection(f"emulated connection drop on {method} {path}")
        code = _FAULT_CODES.get(action.status, "emulated_fault")
        message = f"Emulated fault: HTTP {action.status} on {method} {path}"
        body = action.body or {"ok": False, "error": code, "message": message}
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        headers += [(k.encode(), v.encode()) for k, v in action.headers.items()]
        await recording_send(
            {"type": "http.response.start", "status": action.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": data})

    async def _authenticate(self) -> None:
        if not request.path.startswith("/v1/") or request.path == _TOKEN_PATH:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            raise _ApiError(
                401, "unauthorized", "A valid 'Authorization: Bearer <token>' is required"
            )
        if expiry <= trio.current_time():
            raise _ApiError(401, "token_expired", "The access token has expired")

    # --- auth, blueprints ------------------------------------------------------------------

    async def _issue_token(self) -> _Reply:
        body = _object(await _read_json(), "the request body")
        client_id, client_secret = body.get("clientId"), body.get("clientSecret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            raise _ApiError(
                422, "invalid_request", "clientId and clientSecret are required strings"
            )
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            raise _ApiError(401, "invalid_credentials", "The client id or client secret is wrong")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = trio.current_time() + self.token_ttl_seconds
        # Rounded down, so a client never trusts a token past its real expiry.
        expires_in = int(self.token_ttl_seconds)
        return {
            "ok": True,
            "accessToken": token,
            "expiresIn": expires_in,
            "tokenType": "Bearer",
        }, 200

    async def _create_blueprint(self) -> _Reply:
        body = _object(await _read_json(), "the blueprint")
        identifier = body.get("identifier")
        if not isinstance(identifier, str) or not identifier:
            raise _ApiError(422, "invalid_identifier", "A blueprint needs a string 'identifier'")
        if identifier in self.blueprints:
            raise _ApiError(409, "identifier_taken", f'Blueprint "{identifier}" already exists')
        schema = _object(body.get("schema", {}), "schema")
        relations = _object(body.get("relations", {}), "relations")
        for name, relation in relations.items():
            if not isinstance(relation, dict) or not isinstance(relation.get("target"), str):
                raise _ApiError(422, "invalid_request", f'Relation "{name}" needs a "target"')
        now = _now()
        blueprint = {
            **body,
            "title": body.get("title", identifier),
            "schema": {"properties": {}, "required": [], **schema},
            "relations": relations,
            "createdAt": now,
            "updatedAt": now,
        }
        self.blueprints[identifier] = blueprint
        return {"ok": True, "blueprint": blueprint}, 200

    async def _get_blueprint(self, bp: str) -> _Reply:
        return {"ok": True, "blueprint": self._blueprint(bp)}, 200

    def _blueprint(self, bp: str) -> Obj:
        blueprint = self.blueprints.get(bp)
        if blueprint is None:
            raise _ApiError(404, "not_found", f'Blueprint with identifier "{bp}" was not found')
        return blueprint

    # --- entities: upsert --------------------------------------------------------------------

    async def _upsert_one(self, bp: str) -> _Reply:
        options = _UpsertOptions.from_query()
        raw = await _read_json()
        entity, created = self._upsert(bp, raw, options)
        return {"ok": True, "entity": entity}, 201 if created else 200

    async def _upsert_bulk(self, bp: str) -> _Reply:
        self._blueprint(bp)
        options = _UpsertOptions.from_query()
        data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        if len(data) > MAX_BULK_BYTES:
            message = f"The request body is {len(data)} bytes; the limit is {MAX_BULK_BYTES}"
            raise _ApiError(413, "payload_too_large", message)
        raws = _object(_parse_json(data), "the request body").get("entities")
        if not isinstance(raws, list):
            raise _ApiError(422, "invalid_request", "The body needs an 'entities' list")
        if len(raws) > MAX_BULK_ENTITIES:
            message = f"{len(raws)} entities sent; at most {MAX_BULK_ENTITIES} per request"
            raise _ApiError(422, "too_many_entities", message)
        done: list[Obj] = []
        errors: list[Obj] = []
        for index, raw in enumerate(raws):
            identifier = raw.get("identifier") if isinstance(raw, dict) else None
            try:
                entity, created = self._upsert(bp, raw, options)
            except _ApiError as error:
                shown = identifier if isinstance(identifier, str) else "unknown"
                errors.append({"index": index, "identifier": shown, "statusCode": error.status})
                errors[-1] |= {"error": error.code, "message": error.message}
            else:
                done.append(
                    {"index": index, "identifier": entity["identifier"], "created": created}
                )
        return {"ok": True, "entities": done, "errors": errors}, 207 if errors else 200

    def _upsert(self, bp: str, raw: Any, options: _UpsertOptions) -> tuple[Obj, bool]:
        # Validate everything first, then write: a rejected entity leaves no stubs behind.
        blueprint = self._blueprint(bp)
        entity = _object(raw, "an entity")
        identifier = entity.get("identifier")
        if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
            message = f"Identifier {identifier!r} must match {_IDENTIFIER.pattern}"
            raise _ApiError(422, "invalid_identifier", message)
        if len(identifier) > MAX_IDENTIFIER_LENGTH:
            message = f"Identifier is {len(identifier)} characters; at most {MAX_IDENTIFIER_LENGTH}"
            raise _ApiError(422, "invalid_identifier", message)
        key = (bp, identifier)
        existing = self.entities.get(key)
        if existing is not None and not options.upsert:
            message = f'Entity "{identifier}" of blueprint "{bp}" already exists'
            raise _ApiError(409, "identifier_taken", message)
        properties = _object(entity.get("properties") or {}, "properties")
        relations = _object(entity.get("relations") or {}, "relations")
        _check_properties(bp, blueprint, properties)
        _check_relations(bp, blueprint, relations)
        merge_into = existing if options.merge else None
        if merge_into is not None:
            properties = {**merge_into["properties"], **properties}
            relations = {**merge_into["relations"], **relations}
        for name in blueprint.get("schema", {}).get("required", []):
            if name not in properties:
                message = f'Required property "{name}" is missing (blueprint "{bp}")'
                raise _ApiError(422, "missing_required_property", message)
        missing: list[Key] = []
        for name, definition in blueprint.get("relations", {}).items():
            targets = _targets(relations.get(name))
            if definition.get("required") and not targets:
                message = f'Required relation "{name}" is missing (blueprint "{bp}")'
                raise _ApiError(422, "missing_required_relation", message)
            for target in targets:
                target_key = (definition["target"], target)
                if target_key not in self.entities and target_key != key:
                    missing.append(target_key)
        for target_bp, target in missing:
            if not options.create_missing_related_entities or target_bp not in self.blueprints:
                message = f'Related entity "{target}" of blueprint "{target_bp}" was not found'
                raise _ApiError(404, "not_found", message)
        now, datasource = _now(), request.headers.get("User-Agent", "")
        stored: Obj = {"identifier": identifier, "title": entity.get("title"), "blueprint": bp}
        for field in ("icon", "team"):
            if field in entity:
                stored[field] = entity[field]
        stored.setdefault("team", [])
        if merge_into is not None:
            stored = {**merge_into, **{k: v for k, v in stored.items() if k in entity}}
            stored["blueprint"] = bp
        stored |= {"properties": properties, "relations": relations}
        stored |= {"createdAt": existing["createdAt"] if existing else now, "updatedAt": now}
        stored["datasource"] = datasource
        if options.validation_only:
            return stored, existing is None
        for target_bp, target in missing:
            stub: Obj = {"identifier": target, "title": None, "blueprint": target_bp, "team": []}
            stub |= {"properties": {}, "relations": {}, "createdAt": now, "updatedAt": now}
            self.entities[(target_bp, target)] = stub | {"datasource": datasource}
        self.entities[key] = stored
        return stored, existing is None

    # --- entities: delete --------------------------------------------------------------------

    async def _delete_one(self, bp: str, identifier: str) -> _Reply:
        self._blueprint(bp)
        delete_dependents = _flag("delete_dependents", False)
        key = (bp, identifier)
        if key not in self.entities:
            message = f'Entity "{identifier}" of blueprint "{bp}" was not found'
            raise _ApiError(404, "not_found", message)
        doomed = self._deletable([key], delete_dependents)
        if key not in doomed:
            message = f'Entity "{identifier}" has dependent entities; use delete_dependents=true'
            raise _ApiError(422, "has_dependents", message)
        self._remove(doomed)
        return {"ok": True}, 200

    async def _delete_bulk(self, bp: str) -> _Reply:
        self._blueprint(bp)
        delete_dependents = _flag("delete_dependents", False)
        ids = _object(await _read_json(), "the request body").get("entities")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _ApiError(422, "invalid_request", "The body needs an 'entities' list of ids")
        keys = [(bp, i) for i in dict.fromkeys(ids) if (bp, i) in self.entities]
        doomed = self._deletable(keys, delete_dependents)
        self._remove(doomed)
        return {"ok": True, "deletedEntities": [i for b, i in keys if (b, i) in doomed]}, 200

    def _deletable(self, keys: list[Key], delete_dependents: bool) -> set[Key]:
        # Required relations make dependents: with delete_dependents they go too (transitively);
        # without, an entity is kept while a dependent outside the deleted set would remain.
        dependents: dict[Key, set[Key]] = {}
        for source_key, source in self.entities.items():
            for name, target_bp, required in _relation_defs(self.blueprints, source):
                if required:
                    for target in _targets(source["relations"].get(name)):
                        dependents.setdefault((target_bp, target), set()).add(source_key)
        doomed = set(keys)
        if delete_dependents:
            pending = list(keys)
            while pending:
                for dependent in dependents.get(pending.pop(), ()):
                    if dependent not in doomed:
                        doomed.add(dependent)
                        pending.append(dependent)
            return doomed
        changed = True
        while changed:
            blocked = {k for k in doomed if not dependents.get(k, set()) <= doomed}
            doomed -= blocked
            changed = bool(blocked)
        return doomed

    def _remove(self, doomed: set[Key]) -> None:
        for key in doomed:
            del self.entities[key]
        # Optional relations to a deleted entity are cleared, as Port does.
        for source in self.entities.values():
            for name, target_bp, _ in _relation_defs(self.blueprints, source):
                value = source["relations"].get(name)
                if isinstance(value, str) and (target_bp, value) in doomed:
                    source["relations"][name] = None
                elif isinstance(value, list):
                    kept = [v for v in value if (target_bp, v) not in doomed]
                    if len(kept) != len(value):
                        source["relations"][name] = kept

    # --- search ------------------------------------------------------------------------------

    async def _search(self) -> _Reply:
        matches = _compile_query(await _read_json())
        include = request.args.getlist("include")
        found = [e for e in self.entities.values() if matches(e)]
        if include:
            found = [{k: v for k, v in e.items() if k in include} for e in found]
        return {"ok": True, "entities": found}, 200

    # --- integrations ------------------------------------------------------------------------

    async def _get_integration(self, ident: str) -> _Reply:
        return {"ok": True, "integration": self._integration(ident)}, 200

    async def _create_integration(self) -> _Reply:
        body = _object(await _read_json(), "the integration")
        ident = body.get("installationId")
        if not isinstance(ident, str) or not ident:
            raise _ApiError(422, "invalid_request", "An integration needs an 'installationId'")
        if ident in self.integrations:
            raise _ApiError(409, "identifier_taken", f'Integration "{ident}" already exists')
        now = _now()
        integration = {**body, "identifier": ident, "config": body.get("config") or {}}
        integration |= {"createdAt": now, "updatedAt": now}
        self.integrations[ident] = integration
        return {"ok": True, "integration": integration}, 200

    async def _patch_integration(self, ident: str) -> _Reply:
        integration = self._integration(ident)
        body = _object(await _read_json(), "the request body")
        integration |= {k: v for k, v in body.items() if k != "identifier"}
        integration["updatedAt"] = _now()
        return {"ok": True, "integration": integration}, 200

    async def _patch_config(self, ident: str) -> _Reply:
        integration = self._integration(ident)
        config = _object(await _read_json(), "the request body").get("config")
        integration["config"] = _object(config, "config")
        integration["updatedAt"] = _now()
        return {"ok": True, "integration": integration}, 200

    async def _patch_resync_state(self, ident: str) -> _Reply:
        integration = self._integration(ident)
        state = _object(await _read_json(), "the request body")
        integration["resyncState"] = {**integration.get("resyncState", {}), **state}
        return {"ok": True, "integration": integration}, 200

    def _integration(self, ident: str) -> Obj:
        integration = self.integrations.get(ident)
        if integration is None:
            raise _ApiError(404, "not_found", f'Integration "{ident}" was not found')
        return integration

    # --- test control ------------------------------------------------------------------------

    async def _control_entities(self) -> _Reply:
        return {"entities": list(self.entities.values())}, 200

    async def _control_requests(self) -> _Reply:
        return {"requests": [r.to_json() for r in self.requests]}, 200

    async def _control_reset(self) -> _Reply:
        self.reset()
        return {"ok": True}, 200

    async def _control_add_fault(self) -> _Reply:
        spec = dict(_object(await _read_json(), "the fault"))
        kinds: dict[str, Callable[..., None]] = {
            "fail": self.faults.fail,
            "delay": self.faults.delay,
            "drop": self.faults.drop,
        }
        kind = spec.pop("kind", None)
        add = kinds.get(kind) if isinstance(kind, str) else None
        if add is None:
            raise _ApiError(422, "invalid_request", f"'kind' must be one of {sorted(kinds)}")
        try:
            add(**spec)
        except (TypeError, ValueError) as error:
            raise _ApiError(422, "invalid_request", f"Bad fault: {error}") from None
        return {"ok": True}, 200

    async def _control_clear_faults(self) -> _Reply:
        self.faults.clear()
        return {"ok": True}, 200


@attrs.frozen
class _UpsertOptions:
    upsert: bool
    merge: bool
    create_missing_related_entities: bool
    validation_only: bool

    @classmethod
    def from_query(cls) -> _UpsertOptions:
        return cls(
            upsert=_flag("upsert", False),
            merge=_flag("merge", False),
            create_missing_related_entities=_flag("create_missing_related_entities", False),
            validation_only=_flag("validation_only", False),
        )


def _flag(name: str, default: bool) -> bool:
    value = request.args.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise _ApiError(422, "invalid_request", f"Query parameter {name} must be true or false")


async def _read_json() -> Any:
    return _parse_json(await request.get_data(cache=True, as_text=False, parse_form_data=False))


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise _ApiError(
            400, "invalid_json", f"The request body is not valid JSON: {error}"
        ) from None


def _object(value: Any, what: str) -> Obj:
    if not isinstance(value, dict):
        raise _ApiError(422, "invalid_request", f"{what} must be a JSON object")
    return value


def _check_properties(bp: str, blueprint: Obj, properties: Obj) -> None:
    # A blueprint without declared properties accepts any: handy for minimal test blueprints.
    known = blueprint.get("schema", {}).get("properties") or {}
    unknown = [name for name in properties if known and name not in known]
    if unknown:
        message = f'Property "{unknown[0]}" is not in blueprint "{bp}"'
        raise _ApiError(422, "unknown_property", message)


def _check_relations(bp: str, blueprint: Obj, relations: Obj) -> None:
    definitions = blueprint.get("relations", {})
    for name, value in relations.items():
        definition = definitions.get(name)
        if definition is None:
            raise _ApiError(
                422, "unknown_relation", f'Relation "{name}" is not in blueprint "{bp}"'
            )
        many = bool(definition.get("many"))
        ok = value is None or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
            if many
            else isinstance(value, str)
        )
        if not ok:
            shape = "a list of identifiers" if many else "an identifier string"
            raise _ApiError(422, "invalid_relation", f'Relation "{name}" must be {shape} or null')


def _targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _relation_defs(blueprints: dict[str, Obj], entity: Obj) -> Iterable[tuple[str, str, bool]]:
    blueprint = blueprints.get(entity["blueprint"], {})
    for name, definition in blueprint.get("relations", {}).items():
        yield name, definition["target"], bool(definition.get("required"))


def _compile_query(query: Any) -> Callable[[Obj], bool]:
    # Port's search language, as far as Ocean uses it; anything else is a 422.
    if not isinstance(query, dict) or "combinator" not in query:
        raise _ApiError(422, "invalid_request", "A query needs 'combinator' and 'rules'")
    combinator, rules = query.get("combinator"), query.get("rules")
    if combinator not in ("and", "or") or not isinstance(rules, list):
        raise _ApiError(422, "invalid_request", "'combinator' must be and/or; 'rules' a list")
    tests = [
        _compile_query(r) if isinstance(r, dict) and "combinator" in r else _rule(r) for r in rules
    ]
    if combinator == "and":
        return lambda entity: all(test(entity) for test in tests)
    return lambda entity: any(test(entity) for test in tests)


def _rule(rule: Any) -> Callable[[Obj], bool]:
    if (
        not isinstance(rule, dict)
        or not isinstance(rule.get("property"), str)
        or "value" not in rule
    ):
        raise _ApiError(422, "invalid_request", f"Bad search rule {rule!r}")
    field, operator, wanted = rule["property"], rule.get("operator"), rule["value"]
    if operator not in _OPERATORS:
        raise _ApiError(422, "invalid_request", f"Unsupported operator {operator!r}")
    if field.startswith("$") and field[1:] not in _ENTITY_FIELDS:
        raise _ApiError(422, "invalid_request", f"Unsupported meta property {field!r}")
    if operator == "in" and not isinstance(wanted, list):
        raise _ApiError(422, "invalid_request", "The 'in' operator needs a list value")

    def test(entity: Obj) -> bool:
        if field.startswith("$"):
            actual = entity.get(field[1:])
        else:
            actual = entity.get("properties", {}).get(field)
        if operator == "=":
            return bool(actual == wanted)
        if operator == "!=":
            return bool(actual != wanted)
        if operator == "in":
            return actual in wanted
        if operator == "contains":
            if isinstance(actual, str):
                return isinstance(wanted, str) and wanted in actual
            return isinstance(actual, list) and wanted in actual
        return isinstance(actual, str) and isinstance(wanted, str) and actual.startswith(wanted)

    return test


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _api_error_reply(error: _ApiError) -> _Reply:
    return error.body(), error.status


async def _http_error_reply(error: HTTPException) -> _Reply:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    message = f"{error.name}: {request.method} {request.path}"
    return {"ok": False, "error": code, "message": message}, status


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
