"""Port's owned-entities search (``datasource-entities``): an integration's entities, page by page.

Pure. Port records each entity's datasource (the writer's user agent,
``port-ocean/{type}/{version}/{identifier}/{agent}``); an integration's entities are those
whose datasource starts with ``datasource_prefix`` and ends with ``datasource_suffix``, and
``before`` keeps only those last updated strictly before a time.

Paging: the first request snapshots the matching keys (in store order) under a scan id; its
``next`` is ``"<scan>:<position>"``. A page re-checks each key (an entity deleted or updated
since the snapshot is left out), so deleting between pages never shifts the pages after, and a
retried request for the same ``from`` gets the same page. Only the newest ``MAX_SCANS`` scans
are kept (an older cursor is a 422, as an expired one would be).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from ._wire import ApiError, Key, Obj, as_object

MAX_LIMIT = 5000  # Ocean asks for 5000 a page
MAX_SCANS = 32

_EPOCH = datetime.fromtimestamp(0, UTC)


def parse_time(value: Any, what: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; a naive one is UTC), or a 422 naming ``what``."""
    if not isinstance(value, str):
        raise ApiError(422, "invalid_request", f"{what} must be an ISO 8601 date-time string")
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{what} is not an ISO 8601 date-time") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def updated_at(entity: Obj) -> datetime:
    """When the entity was last written; an entity seeded without ``updatedAt`` is very old."""
    raw = entity.get("updatedAt")
    if not isinstance(raw, str):
        return _EPOCH
    try:
        return parse_time(raw, "updatedAt")
    except ApiError:
        return _EPOCH


@attrs.frozen
class OwnedQuery:
    """One owned-entities search: which datasource, updated before when, how many a page."""

    prefix: str
    suffix: str
    limit: int
    before: datetime | None

    @classmethod
    def from_body(cls, body: Any) -> tuple[OwnedQuery, str | None]:
        """The query and the ``from`` cursor of a request body (a 422 when malformed)."""
        body = as_object(body, "the request body")
        prefix, suffix = body.get("datasource_prefix"), body.get("datasource_suffix")
        if not isinstance(prefix, str) or not isinstance(suffix, str):
            message = "datasource_prefix and datasource_suffix are required strings"
            raise ApiError(422, "invalid_request", message)
        limit = body.get("limit", MAX_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ApiError(422, "invalid_request", f"limit must be an integer in 1..{MAX_LIMIT}")
        before = body.get("before")
        cursor = body.get("from")
        if cursor is not None and not isinstance(cursor, str):
            raise ApiError(422, "invalid_request", "from must be the 'next' of the previous page")
        parsed = None if before is None else parse_time(before, "before")
        return cls(prefix, suffix, limit, parsed), cursor

    def matches(self, entity: Obj) -> bool:
        datasource = entity.get("datasource")
        if not isinstance(datasource, str):
            return False
        if not (datasource.startswith(self.prefix) and datasource.endswith(self.suffix)):
            return False
        return self.before is None or updated_at(entity) < self.before


@attrs.frozen
class _Scan:
    query: OwnedQuery
    keys: list[Key]


class OwnedScans:
    """The snapshots behind the cursors handed out (the newest ``MAX_SCANS``)."""

    def __init__(self) -> None:
        self._scans: OrderedDict[int, _Scan] = OrderedDict()
        self._ids = itertools.count(1)

    def page(
        self, entities: Mapping[Key, Obj], query: OwnedQuery, cursor: str | None
    ) -> tuple[list[Obj], str | None]:
        """The entities of one page and the ``next`` cursor (``None`` after the last page)."""
        if cursor is None:
            scan_id = next(self._ids)
            scan = _Scan(query, [key for key, e in entities.items() if query.matches(e)])
            self._scans[scan_id] = scan
            while len(self._scans) > MAX_SCANS:
                self._scans.popitem(last=False)
            position = 0
        else:
            scan_id, position = self._resume(cursor)
            scan = self._scans[scan_id]
            if attrs.evolve(scan.query, limit=query.limit) != query:
                message = "from belongs to a search with another datasource or before"
                raise ApiError(422, "invalid_request", message)
        found: list[Obj] = []
        while position < len(scan.keys) and len(found) < query.limit:
            entity = entities.get(scan.keys[position])
            position += 1
            if entity is not None and query.matches(entity):
                found.append(entity)
        more = position < len(scan.keys)
        return found, f"{scan_id}:{position}" if more else None

    def _resume(self, cursor: str) -> tuple[int, int]:
        scan, _, position = cursor.partition(":")
        try:
            scan_id, offset = int(scan), int(position)
        except ValueError:
            scan_id, offset = -1, -1
        if scan_id not in self._scans or offset < 0:
            raise ApiError(422, "invalid_request", f"Unknown or expired cursor {cursor!r}")
        return scan_id, offset

    def clear(self) -> None:
        self._scans.clear()
