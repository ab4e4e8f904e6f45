"""Ocean's resync diffing: does a mapped entity differ from what Port holds? Pure functions.

A resync batch of more than ``DIFF_MIN_ENTITIES`` entities, none with a search identifier or
search relation, is compared with Port's current entities and only the changed ones are
upserted (Ocean's ``_map_entities_compared_with_port``). Compared: the title, the icon (Ocean
does not compare it; a changed icon would never reach Port), the team (lists compared sorted),
and the properties and relations as sorted JSON, where a key mapped to ``None`` equals a
missing key (on either side). Only fields the mapping sets are compared, as only those are
fetched (``include``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .._entity import UNSET, Entity

DIFF_MIN_ENTITIES = 10  # Ocean diffs a batch only above this many entities

_FIELDS = ("title", "icon", "team")
_MAPS = ("properties", "relations")


def diffable(entities: Sequence[Entity], *, min_entities: int = DIFF_MIN_ENTITIES) -> bool:
    """Whether Ocean would diff this batch: enough entities, and only plain identifiers and
    relations (a search query is resolved by Port: there is nothing to compare it with)."""
    if len(entities) <= min_entities:
        return False
    return not any(e.is_using_search_identifier or e.is_using_search_relation for e in entities)


def diff_fields(entities: Iterable[Entity]) -> list[str]:
    """The ``include`` of the diff search: the key, ``updatedAt``, and what the batch maps."""
    fields = {"title": False, "icon": False, "team": False}
    names: dict[str, dict[str, None]] = {"properties": {}, "relations": {}}
    for entity in entities:
        for name in _FIELDS:
            fields[name] = fields[name] or getattr(entity, name) is not UNSET
        for name in _MAPS:
            mapped = getattr(entity, name)
            if isinstance(mapped, Mapping):
                names[name].update(dict.fromkeys(mapped))
    include = ["blueprint", "identifier", "updatedAt"]
    include += [name for name in _FIELDS if fields[name]]
    include += [f"{kind}.{key}" for kind in _MAPS for key in names[kind]]
    return include


def differs(current: Mapping[str, Any], entity: Entity) -> bool:
    """True when upserting ``entity`` would change what Port holds (``current``, as the diff
    search returned it) in the fields the mapping sets."""
    for name in ("title", "icon"):
        value = getattr(entity, name)
        if value is not UNSET and current.get(name) != value:
            return True
    if entity.team is not UNSET and _teams_differ(current.get("team"), entity.team):
        return True
    for name in _MAPS:
        mapped = getattr(entity, name)
        if mapped is not UNSET and not _same_fields(current.get(name) or {}, mapped):
            return True
    return False


def updated_since(current: Mapping[str, Any], since: datetime) -> bool:
    """True when Port says the entity was last written at or after ``since`` (an absent or
    unreadable ``updatedAt`` is not)."""
    stamp = _stamp(current, "updatedAt")
    return stamp is not None and stamp >= since


def created_before(current: Mapping[str, Any], since: datetime) -> bool:
    """True when Port says the entity was created before ``since`` (an absent or unreadable
    ``createdAt`` is not)."""
    stamp = _stamp(current, "createdAt")
    return stamp is not None and stamp < since


def _stamp(current: Mapping[str, Any], field: str) -> datetime | None:
    raw = current.get(field)
    if not isinstance(raw, str):
        return None
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _teams_differ(first: Any, second: Any) -> bool:
    if isinstance(first, list) and isinstance(second, list):
        return sorted(first) != sorted(second)
    return bool(first != second)


def _same_fields(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    left = {k: v for k, v in first.items() if v is not None or k in second}
    right = {k: v for k, v in second.items() if v is not None or k in first}
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)
