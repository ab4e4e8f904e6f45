"""The tracker's REST API: a bare ASGI app over ``TrackerState``, served by hypercorn's trio worker.

Lists are paginated with a cursor, as GitHub's and GitLab's keyset pagination do::

    GET /api/issues?perPage=50[&project=KEY]    GET /api/projects?perPage=50
    200 [ {...}, ... ]
    Link: </api/issues?perPage=50&cursor=aToxMDA1MA>; rel="next"

- The body is a JSON array of objects shaped exactly as ``GET /api/issues/{id}`` (or
  ``/api/projects/{key}``) answers them: what a webhook's processor fetches.
- ``perPage``: 1 to 100 (``MAX_PER_PAGE``), default 50 (also without the parameter: every
  list is paginated, as on GitHub and GitLab).
- The next page is the ``Link`` header's ``rel="next"`` URL (a path and query, to be resolved
  against the API's address; ``httpx.Response.links`` parses it). It carries an opaque
  ``cursor`` (the last object's id) and the same ``perPage`` and ``project``. The last page
  has no ``Link`` header, so a page size that divides the total costs no empty request.
- Issues come in id order, projects in key order, and a page starts *after* the cursor's
  object (keyset, not an offset): an object that exists from the first request to the last
  is listed exactly once, whatever is created or deleted in between (an offset would skip
  one object per deletion on an earlier page). Created issues get higher ids, so they are
  listed if they appear before the last page is read.
- ``perPage`` out of range or not a number, or a ``cursor`` this API did not give, answer
  ``400 {"error": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
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
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
Headers = list[tuple[bytes, bytes]]


class InvalidQuery(ValueError):
    """A list request with a bad ``perPage`` or ``cursor`` (HTTP 400)."""


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
        status, body, extra = await self._respond(scope, receive)
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": data})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, Any, Headers]:
        match = _ROUTES.match(scope["path"])
        if match is None:
            return 404, {"error": f"no route {scope['path']}"}, []
        kind, ident, method = match["kind"], match["ident"], scope["method"]
        try:
            if ident is None and method == "GET":
                return self._list(kind, scope)
            fields = await _read_json(receive) if method in ("POST", "PATCH") else {}
            return (*self._route(kind, ident, method, fields, scope), [])
        except (InvalidFields, InvalidQuery) as error:
            return 400, {"error": str(error)}, []

    def _list(self, kind: str, scope: Scope) -> tuple[int, Any, Headers]:
        """One page of a list, with the next page's ``Link`` (see the module docstring)."""
        query = urllib.parse.parse_qs(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        per_page = _per_page(query.get("perPage", [None])[0])
        cursor = query.get("cursor", [None])[0]
        after = None if cursor is None else _decode_cursor(cursor, kind)
        link: dict[str, str | int] = {"perPage": per_page}
        if kind == "projects":
            page, more = self._state.project_page(after=after, limit=per_page)
            last = page[-1]["key"] if page else None
        else:
            project = query.get("project", [""])[0] or None
            page, more = self._state.issue_page(
                after=None if after is None else int(after), limit=per_page, project=project
            )
            last = page[-1]["id"] if page else None
            if project is not None:
                link["project"] = project
        if not more or last is None:
            return 200, page, []
        link["cursor"] = _encode_cursor(kind, last)
        next_url = f"/api/{kind}?{urllib.parse.urlencode(link)}"
        return 200, page, [(b"link", f'<{next_url}>; rel="next"'.encode())]

    def _route(
        self, kind: str, ident: str | None, method: str, fields: Obj, scope: Scope
    ) -> tuple[int, Any]:
        state = self._state
        if kind == "projects":
            if ident is not None and method == "GET":
                return _found(state.project(ident), "project", ident)
            if ident is not None and method == "PATCH":
                return self._announce(state.update_project(ident, fields), "project", ident)
        elif ident is None:
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


def _per_page(value: str | None) -> int:
    if value is None:
        return DEFAULT_PER_PAGE
    # ASCII digits only (str.isdigit() and int() also take '²' or '٣'), and few of them (int()
    # refuses over 4,300 digits with a ValueError of its own).
    if not (
        value.isascii() and value.isdigit() and len(value) <= 4 and 1 <= int(value) <= MAX_PER_PAGE
    ):
        raise InvalidQuery(f"perPage must be an integer from 1 to {MAX_PER_PAGE}, got {value!r}")
    return int(value)


# A cursor is the last listed object's id (issues) or key (projects), tagged with its list so
# one list's cursor is refused by the other; base64url, no padding, opaque to clients.


def _encode_cursor(kind: str, last: str) -> str:
    return base64.urlsafe_b64encode(f"{kind[0]}:{last}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str) -> str:
    try:
        text = base64.b64decode(
            cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
        ).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    tag, _, last = text.partition(":")
    if tag != kind[0] or not last or (kind == "issues" and not (last.isascii() and last.isdigit())):
        raise InvalidQuery(
            f'cursor {cursor!r} is not one this API gave: follow the Link header\'s rel="next"'
        )
    return last


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
