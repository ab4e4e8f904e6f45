"""The ASGI layer around the emulator's Quart app: it records each request and injects faults.

It sits outside Quart so that a fault answers before routing, authentication or body reading;
``/_emulator/...`` (the test-control routes) passes straight through, never recorded or faulted.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ._faults import FaultKind, Faults
from ._rate_limit import RateLimit
from ._wire import Obj

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # Quart's own asgi_app, typed with its TypedDicts

CONTROL_PREFIX = "/_emulator/"

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


@attrs.define
class RecordedRequest:
    """One request as the emulator saw it (in arrival order); ``status`` is ``None`` until the
    response starts, and for a dropped connection is the status of the truncated response (200)."""

    method: str
    path: str
    query: dict[str, str]
    at: float  # trio.current_time() on arrival
    status: int | None = None
    fault: FaultKind | None = None

    def to_json(self) -> Obj:
        """The JSON shape ``GET /_emulator/requests`` lists."""
        return attrs.asdict(self)


class DroppedConnection(Exception):
    """Raised after a partial response so hypercorn closes the connection mid-body."""


async def record_and_inject(
    requests: list[RecordedRequest],
    faults: Faults,
    rate_limit: RateLimit,
    inner: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Record the request in ``requests``, then apply ``faults`` and ``rate_limit`` or call
    ``inner``."""
    if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
        await inner(scope, receive, send)
        return
    method, path = scope["method"], scope["path"]
    query = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1")))
    record = RecordedRequest(method, path, query, trio.current_time())
    requests.append(record)
    delay, action = faults.take(method, path)
    within, limit_headers = rate_limit.take()

    async def recording_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
            message = {**message, "headers": [*message.get("headers", []), *limit_headers]}
        await send(message)

    if delay:
        record.fault = "delay"
        await trio.sleep(delay)
    if action is None and not within:
        await _answer(recording_send, 429, "Emulated rate limit: too many requests", [])
        return
    if action is None:
        await inner(scope, receive, recording_send)
        return
    record.fault = action.kind
    if action.kind == "drop":
        start = {"type": "http.response.start", "status": 200}
        start["headers"] = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await recording_send(start)
        await send({"type": "http.response.body", "body": b'{"ok": true', "more_body": True})
        raise DroppedConnection(f"emulated connection drop on {method} {path}")
    message = f"Emulated fault: HTTP {action.status} on {method} {path}"
    extra = [(k.encode(), v.encode()) for k, v in action.headers.items()]
    await _answer(recording_send, action.status, message, extra, body=action.body)


async def _answer(
    send: Send,
    status: int,
    message: str,
    headers: list[tuple[bytes, bytes]],
    *,
    body: Obj | None = None,
) -> None:
    """A whole JSON error answer in Port's shape (``body`` replaces it when given)."""
    code = _FAULT_CODES.get(status, "emulated_fault")
    data = json.dumps(body or {"ok": False, "error": code, "message": message}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": start + headers})
    await send({"type": "http.response.body", "body": data})
