"""Port's wire conventions shared by every route: the error answer, JSON objects, timestamps.

Pure: no Quart here, so the stored-state and search modules can raise Port's errors too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (blueprint, identifier)


class ApiError(Exception):
    """A Port-style error answer, raised anywhere in a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> Obj:
        """Port's error body: ``{"ok": false, "error": <code>, "message": <text>}``."""
        return {"ok": False, "error": self.code, "message": self.message}


def parse_json(data: bytes) -> Any:
    """``data`` decoded as JSON, or a 400 ``invalid_json``."""
    try:
        return json.loads(data)
    except ValueError as error:
        raise ApiError(
            400, "invalid_json", f"The request body is not valid JSON: {error}"
        ) from None


def as_object(value: Any, what: str) -> Obj:
    """``value`` when it is a JSON object, else a 422 naming ``what``."""
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_request", f"{what} must be a JSON object")
    return value


def now() -> str:
    """Wall-clock UTC in Port's timestamp format (milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
