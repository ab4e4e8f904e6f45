"""The tracker's REST API: a bare ASGI app over ``TrackerState``, served by hypercorn's trio worker."""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ._state import Change, InvalidFields, Obj, TrackerState

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_ROUTES = re.compile(r"^/api/(?P<kind>issues|projects)(?:/(?P<ident>[^/]+))?/?$")
_MAX_BODY = 64 * 1024


class TrackerAPI:
    """The tracker's REST API as a bare ASGI app; writes are announced through ``notify``."""

    def __init__(self, state: TrackerState, notify: Callable[[Change], None]) -> None:
        self._state = state
        self._notify = notify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self._respond(scope, receive)
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        match = _ROUTES.match(scope["path"])
        if match is None:
            return 404, {"error": f"no route {scope['path']}"}
        kind, ident, method = match["kind"], match["ident"], scope["method"]
        try:
            fields = await _read_json(receive) if method in ("POST", "PATCH") else {}
            return self._route(kind, ident, method, fields, scope)
        except InvalidFields as error:
            return 400, {"error": str(error)}

    def _route(
        self, kind: str, ident: str | None, method: str, fields: Obj, scope: Scope
    ) -> tuple[int, Any]:
        state = self._state
        if kind == "projects":
            if ident is None and method == "GET":
                return 200, state.projects()
            if ident is not None and method == "GET":
                return _found(state.project(ident), "project", ident)
            if ident is not None and method == "PATCH":
                return self._announce(state.update_project(ident, fields), "project", ident)
        elif ident is None:
            if method == "GET":
                project = _query_param(scope, "project")
                return 200, state.issues(project)
            if method == "POST":
                project = fields.pop("projectKey", None)
                if not isinstance(project, str):
                    raise InvalidFields("projectKey (a string) is required")
                change = state.create_issue(project, fields)
                self._notify(change)
                return 201, change.obj
        else:
            if method == "GET":
                return _found(state.issue(ident), "issue", ident)
            if method == "PATCH":
                return self._announce(state.update_issue(ident, fields), "issue", ident)
            if method == "DELETE":
                return self._announce(state.delete_issue(ident), "issue", ident)
        return 405, {"error": f"method {method} not allowed on {scope['path']}"}

    def _announce(self, change: Change | None, kind: str, ident: str) -> tuple[int, Any]:
        if change is None:
            return _not_found(kind, ident)
        self._notify(change)
        return 200, change.obj


def _found(obj: Obj | None, kind: str, ident: str) -> tuple[int, Any]:
    return (200, obj) if obj is not None else _not_found(kind, ident)


def _not_found(kind: str, ident: str) -> tuple[int, Any]:
    return 404, {"error": f"{kind} {ident!r} not found"}


def _query_param(scope: Scope, name: str) -> str | None:
    values = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


async def _read_json(receive: Receive) -> Obj:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise InvalidFields(f"body larger than {_MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        data = json.loads(b"".join(chunks) or b"{}")
    except ValueError as error:
        raise InvalidFields(f"body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidFields("body must be a JSON object")
    return data


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_api(
    app: TrackerAPI,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled; ``started()`` delivers its base URL (port 0 resolved)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("fake_tracker.http")
    config.graceful_timeout = 1.0

    async def started(task_status: trio.TaskStatus[list[str]]) -> None:
        # hypercorn's ASGI TypedDicts are stricter than the spec (``more_body`` required), and
        # httpx's ASGITransport (the tests) wants MutableMapping messages: one app fits only one.
        await serve(app, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(started)
        task_status.started(urls[0])
