"""The event listeners that ask for resyncs: ONCE, POLLING, and the scheduled resync.

Each is a task of the app's nursery. (WEBHOOK is the ``POST /resync`` route, KAFKA its own
module; WEBHOOKS_ONLY asks for nothing.)
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import trio

from ._state import ResyncStatus

logger = logging.getLogger("ocean_trio.resync")


class Requests(Protocol):
    """The coordinator, as listeners see it."""

    def request(self, reason: str) -> None: ...

    async def wait_for_next(self) -> Any: ...


async def run_once(
    coordinator: Requests,
    finish: Callable[[int], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """ONCE: one resync, then ``finish`` the app: exit code 0 when it completed, 1 otherwise."""
    task_status.started()
    coordinator.request("ONCE")
    state = await coordinator.wait_for_next()
    finish(0 if state.status is ResyncStatus.COMPLETED else 1)


async def run_scheduled(
    coordinator: Requests,
    minutes: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ocean's ``scheduledResyncInterval``: a resync every ``minutes``, the first after one."""
    task_status.started()
    while True:
        await trio.sleep(minutes * 60)
        coordinator.request(f"scheduled (every {minutes:g} min)")


async def run_polling_local(
    coordinator: Requests,
    mapping_file: Path | None,
    *,
    interval: float,
    resync_on_start: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """POLLING without Port: resync on start, and whenever the mapping file's content changes
    (checked every ``interval`` seconds)."""
    seen = await _digest(mapping_file)
    task_status.started()
    if resync_on_start:
        coordinator.request("start (resyncOnStart)")
    while True:
        await trio.sleep(interval)
        digest = await _digest(mapping_file)
        if digest != seen:
            seen = digest
            name = mapping_file.name if mapping_file is not None else "the mapping"
            coordinator.request(f"{name} changed")


async def _digest(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = await trio.Path(path).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(data).digest()


GetRequest = Callable[[], Awaitable[dict[str, Any] | None]]
"""Port's current resync request of the integration (``{"id", "updatedAt"}``), or None."""


async def run_polling_port(
    coordinator: Requests,
    get_request: GetRequest,
    *,
    interval: float,
    resync_on_start: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """POLLING with Port: every ``interval`` seconds, read the integration's resync request;
    a request newer than the last one seen asks for a resync (Ocean's watermark).

    Unlike Ocean's (whose check never fires), ``resyncOnStart`` resyncs on start; the
    request already in Port then counts as served. Without it, the first request seen is
    served, as in Ocean when it has no baseline.
    """
    task_status.started()
    watermark: datetime.datetime | None = None
    first = True
    if resync_on_start:
        coordinator.request("start (resyncOnStart)")
    while True:
        try:
            found = await get_request()
        except Exception as error:
            logger.warning("polling Port's resync request failed: %r", error)
            found = None
        stamp = _timestamp(found)
        if stamp is not None and (watermark is None or stamp > watermark):
            if not (first and resync_on_start):
                coordinator.request(f"Port resync request {found.get('id') if found else ''}")
            watermark = stamp
        first = False
        await trio.sleep(interval)


def _timestamp(request: dict[str, Any] | None) -> datetime.datetime | None:
    raw = request.get("updatedAt") if request else None
    if not isinstance(raw, str):
        return None
    try:
        stamp = datetime.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=datetime.UTC)
