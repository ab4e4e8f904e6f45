"""The admin API over HTTP: list, replay and purge journaled events (dead letters, rejections).

Answered under ``/admin`` only when the settings' ``admin.token`` is set (404 otherwise);
every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import quart

from ._journal import KEPT_STATUSES, EventStatus

if TYPE_CHECKING:
    from .._app import App

MAX_LIMIT = 1000


def _error(status: int, message: str) -> quart.Response:
    return quart.Response(
        quart.json.dumps({"error": message}), status=status, content_type="application/json"
    )


def _status(value: str | None) -> EventStatus | None:
    if value is None:
        return None
    try:
        return EventStatus(value)
    except ValueError:
        choices = ", ".join(sorted({s.value for s in EventStatus}))
        quart.abort(_error(400, f"unknown status {value!r} (one of: {choices})"))


def admin_blueprint(get_app: Callable[[], App]) -> quart.Blueprint:
    """Routes under ``/admin`` guarded by the running app's admin token."""
    bp = quart.Blueprint("admin", __name__, url_prefix="/admin")

    @bp.before_request
    async def authorise() -> Any:
        token = get_app().settings.admin.token
        if not token:
            return _error(404, "the admin API is off (set admin.token to turn it on)")
        expected = f"Bearer {token}".encode()
        given = quart.request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "missing or wrong admin token (Authorization: Bearer <token>)")
        return None

    @bp.get("/events")
    async def list_events() -> Any:
        status = _status(quart.request.args.get("status"))
        raw_limit = quart.request.args.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        records = await get_app().journal.records(status, limit=int(raw_limit))
        return {"events": [r.to_json(with_payload=True) for r in records]}

    @bp.post("/events/replay")
    async def replay() -> Any:
        body = await quart.request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not (
            body.get("all") is True
            or (isinstance(body.get("seqs"), list) and all(type(s) is int for s in body["seqs"]))
        ):
            return _error(400, 'send {"seqs": [1, 2]} or {"all": true}')
        app = get_app()
        entries = await app.journal.replay(None if body.get("all") is True else body["seqs"])
        return {"replayed": app.resume(entries), "seqs": [e.seq for e in entries]}

    @bp.post("/events/purge")
    async def purge() -> Any:
        body = await quart.request.get_json(force=True, silent=True) or {}
        names = body.get("statuses", [s.value for s in KEPT_STATUSES])
        if not isinstance(names, list):
            return _error(400, 'send {"statuses": ["dead", "rejected"]}')
        statuses = [_status(str(n)) for n in names]
        if EventStatus.PENDING in statuses:
            return _error(400, "pending events cannot be purged")
        return {"purged": await get_app().journal.purge([s for s in statuses if s is not None])}

    return bp
