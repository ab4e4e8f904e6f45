"""``Entity``: one catalog entity in Port's JSON shape, as produced by a mapping."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a field the mapping does not set: it is absent from the entity's JSON (Ocean's ``exclude_unset``)."""

Unset = _Unset

_OPTIONAL_FIELDS = ("title", "icon", "team", "properties", "relations")

EntityKey = tuple[str, str]
"""``(blueprint, identifier)``; a search-query identifier is keyed by its sorted JSON."""


def identifier_key(identifier: Any) -> str:
    """Normalise an identifier for keying: strings as is, anything else as sorted JSON."""
    if isinstance(identifier, str):
        return identifier
    return json.dumps(identifier, sort_keys=True, separators=(",", ":"))


@attrs.frozen
class Entity:
    """An entity as Port's API takes it; fields the mapping did not set are ``UNSET``.

    ``identifier`` and ``blueprint`` are whatever the mapping produced (a search query object
    for a search identifier); ``properties`` and ``relations`` map names to values.
    """

    identifier: Any
    blueprint: Any
    title: Any = UNSET
    icon: Any = UNSET
    team: Any = UNSET
    properties: Mapping[str, Any] | Unset = UNSET
    relations: Mapping[str, Any] | Unset = UNSET

    @property
    def key(self) -> EntityKey:
        """The catalog key ``(blueprint, identifier)``."""
        return (str(self.blueprint), identifier_key(self.identifier))

    @property
    def is_using_search_identifier(self) -> bool:
        """True when the identifier is a search query that only Port can resolve."""
        return isinstance(self.identifier, Mapping)

    @property
    def is_using_search_relation(self) -> bool:
        """True when a relation or the team is a search query (Ocean's definition)."""
        relations = self.relations if isinstance(self.relations, Mapping) else {}
        teams = self.team if isinstance(self.team, list) else [self.team]
        return any(isinstance(v, Mapping) for v in relations.values()) or any(
            isinstance(t, Mapping) for t in teams
        )

    def to_port(self) -> dict[str, Any]:
        """The JSON object Port's API takes: set fields only."""
        data: dict[str, Any] = {"identifier": self.identifier, "blueprint": self.blueprint}
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not UNSET:
                data[name] = dict(value) if isinstance(value, Mapping) else value
        return data
