"""Entities keyed for comparison: what a resync batch maps to, as Ocean maps one."""

from __future__ import annotations

from typing import Any

from ocean_trio import Entity
from ocean_trio.mapping import CompiledPortAppConfig


def by_key(found: Any) -> dict[tuple[str, str], dict[str, Any]]:
    entities: tuple[Entity, ...] = tuple(found)
    return {(str(e.blueprint), str(e.identifier)): e.to_port() for e in entities}


def resync_entities(
    compiled: CompiledPortAppConfig, index: int, batch: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """A resync batch mapped as Ocean maps one (``parse_all`` false): the entities passing."""
    result = compiled.mappers[index].map_items(batch, parse_all=False)
    assert result.errors == []
    return by_key(result.passed)
