"""Reporting a resync's state to Port, as Ocean's ``ResyncStateUpdater`` does.

``PATCH /v1/integration/{id}/resync-state`` with Ocean's body: when a resync starts,
``{"status": "running", "lastResyncStart", "lastResyncEnd": null, "nextResync",
"intervalInMinuets"}``; when it ends, ``{"status": "completed" | "failed" | "aborted",
"lastResyncEnd", "nextResync", "intervalInMinuets"}`` (``intervalInMinuets`` is Ocean's
spelling on the wire). Times are ISO 8601 in UTC as Ocean writes them
(``datetime.isoformat()``, ``+00:00``).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from ..resync._state import ResyncState, ResyncStatus
from ._port_client import PortClient


def next_resync(interval_minutes: float | None, origin: float, now: float) -> str | None:
    """When the next scheduled resync is due: the first ``origin + k * interval`` after ``now``
    (Ocean's ``get_next_occurrence``), or None without a schedule."""
    if not interval_minutes:
        return None
    interval = interval_minutes * 60
    passed = math.floor((now - origin) / interval)
    return _iso(origin + (passed + 1) * interval)


def resync_state_body(
    state: ResyncState,
    *,
    interval_minutes: float | None,
    schedule_origin: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Ocean's body for ``state`` (see the module's docstring)."""
    now = time.time() if now is None else now
    origin = state.started_at if schedule_origin is None else schedule_origin
    body: dict[str, Any] = {"status": state.status.value}
    if state.status is ResyncStatus.RUNNING:
        body["lastResyncEnd"] = None
        body["lastResyncStart"] = _iso(state.started_at)
    else:
        body["lastResyncEnd"] = _iso(state.finished_at if state.finished_at is not None else now)
    body["nextResync"] = next_resync(interval_minutes, origin, now)
    body["intervalInMinuets"] = interval_minutes
    return body


async def report_resync_state(
    client: PortClient,
    identifier: str,
    state: ResyncState,
    *,
    interval_minutes: float | None,
    schedule_origin: float | None = None,
) -> str | None:
    """Tell Port where resync ``state`` stands; the ``resyncState.updatedAt`` Port answers
    (Ocean keeps it as the polling baseline), or None when the report failed.

    ``interval_minutes``: the scheduled resync interval (``OCEAN__SCHEDULED_RESYNC_INTERVAL``),
    None without one. ``schedule_origin`` (Unix time): when the schedule started counting (Ocean:
    the process start); ``nextResync`` is the next multiple of the interval after it, and
    defaults to counting from the resync's start.

    Never raises for Port's failures: they are logged (as Ocean does), after retries of
    transient ones (which Ocean does not retry). The caller bounds the time it may take.
    """
    body = resync_state_body(
        state, interval_minutes=interval_minutes, schedule_origin=schedule_origin
    )
    stored = await client.patch_resync_state(identifier, body)
    updated = stored.get("updatedAt") if stored is not None else None
    return updated if isinstance(updated, str) else None


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat()
