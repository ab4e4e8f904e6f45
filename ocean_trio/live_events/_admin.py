"""The admin API over HTTP: list, replay and purge journaled events (dead letters, rejections).

Answered under ``/admin`` only when the settings' ``admin.token`` is set (404 otherwise);
every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import quart

from .._exceptions import InvalidBodyError
from ._journal import DEFAULT_PURGE, EventStatus

if TYPE_CHECKING:
    from .._app import App

MAX_LIMIT = 1000


def _error(status: int, message: str, **extra: Any) -> quart.Response:
    return quart.Response(
        quart.json.dumps({"error": message, **extra}),
        status=status,
        content_type="application/json",
    )


def _status(value: str | None) -> EventStatus | None:
    if value is None:
        return None
    try:
        return EventStatus(value)
    except ValueError:
        choices = ", ".join(s.value for s in EventStatus)
        quart.abort(_error(400, f"unknown status {value!r} (one of: {choices})"))


def admin_blueprint(app: App) -> quart.Blueprint:
    """Routes under ``/admin`` guarded by the running app's admin token."""
    bp = quart.Blueprint("admin", __name__, url_prefix="/admin")

    async def raw_body() -> bytes:
        data = await quart.request.get_data()
        return data if isinstance(data, bytes) else data.encode()

    async def json_body() -> Any:
        try:
            return app.parser.parse(await raw_body())
        except InvalidBodyError as error:
            quart.abort(_error(400, str(error)))

    @bp.before_request
    async def authorise() -> Any:
        token = app.settings.admin.token
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
        if (
            not (raw_limit.isascii() and raw_limit.isdigit())
            or not 1 <= int(raw_limit) <= MAX_LIMIT
        ):
            return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        records = await app.journal.records(status, limit=int(raw_limit))
        return {"events": [r.to_json(with_payload=True) for r in records]}

    @bp.get("/events/<int:seq>")
    async def event(seq: int) -> Any:
        record = await app.journal.record(seq)
        if record is None:
            return _error(404, f"event {seq} is not in the journal (unknown, or pruned)")
        return {"event": record.to_json(with_payload=True)}

    @bp.post("/events/replay")
    async def replay() -> Any:
        body = await json_body()
        if not isinstance(body, dict) or not (
            body.get("all") is True
            or (isinstance(body.get("seqs"), list) and all(type(s) is int for s in body["seqs"]))
        ):
            return _error(400, 'send {"seqs": [1, 2]} or {"all": true}')
        result = await app.replay(None if body.get("all") is True else body["seqs"])
        answer = {
            "replayed": len(result.replayed),
            "seqs": [r.seq for r in result.replayed],
            "events": [
                {"old_seq": r.old_seq, "seq": r.seq, "path": r.path} for r in result.replayed
            ],
        }
        problems = result.problems()
        if problems:
            status = 409 if result.not_replayable else 404
            return _error(status, "; ".join(problems), **answer)
        return answer

    @bp.post("/events/purge")
    async def purge() -> Any:
        body = await json_body() if await raw_body() else {}
        names = (
            body.get("statuses", [s.value for s in DEFAULT_PURGE])
            if isinstance(body, dict)
            else None
        )
        if not isinstance(names, list):
            return _error(400, 'send {"statuses": ["dead", "rejected"]}')
        statuses = [_status(str(n)) for n in names]
        if EventStatus.PENDING in statuses:
            return _error(400, "pending events cannot be purged")
        return {"purged": await app.journal.purge([s for s in statuses if s is not None])}

    return bp
