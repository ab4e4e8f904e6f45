"""From raw results to ``EntityChanges``: Ocean's rules for live events and ``register_raw``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from .._entity import Entity, EntityKey
from ..catalog._changes import EntityChanges
from ._compiled import CompiledPortAppConfig
from ._mapper import CalculationResult, MappingIssue, ResourceMapper

logger = logging.getLogger("ocean_trio.mapping")

RawResult = tuple[int, Sequence[Any], Sequence[Any]]
"""``(resource index, updated raw items, deleted raw items)`` of one processor run."""


class _Collector:
    """Upserts and deletion candidates; an upsert of the same entity wins over its delete."""

    def __init__(self) -> None:
        self.upserts: dict[EntityKey, Entity] = {}
        self.deletes: dict[EntityKey, Entity] = {}
        self.issues: list[MappingIssue] = []

    def upsert(self, entities: Iterable[Entity]) -> None:
        for entity in entities:
            self.upserts[entity.key] = entity

    def take_issues(self, mapper: ResourceMapper, result: CalculationResult) -> None:
        """Keep the errors for the caller; log the warnings, as Ocean only logs them."""
        self.issues.extend(result.errors)
        for warning in result.warnings:
            logger.warning(
                "resources[%d] (kind %s): item %d: %s: %s",
                mapper.index,
                mapper.kind,
                warning.index,
                warning.field,
                warning.message,
            )

    def delete(self, entities: Iterable[Entity]) -> None:
        # Search identifiers resolve only inside Port: such entities are never deleted (Ocean).
        for entity in entities:
            if not entity.is_using_search_identifier:
                self.deletes.setdefault(entity.key, entity)

    def changes(self, compiled: CompiledPortAppConfig) -> tuple[EntityChanges, list[MappingIssue]]:
        deletes = tuple(e for k, e in self.deletes.items() if k not in self.upserts)
        return (
            EntityChanges(tuple(self.upserts.values()), deletes, compiled.options),
            self.issues,
        )


def live_event_changes(
    compiled: CompiledPortAppConfig, results: Iterable[RawResult]
) -> tuple[EntityChanges, list[MappingIssue]]:
    """Ocean's ``sync_raw_results``: updated items failing the selector are deleted.

    Updated items are mapped with ``parse_all``: passing entities are upserted, failing ones
    deleted; deleted items are deleted only where they pass the selector; upserts win.
    """
    collected = _Collector()
    for index, updated, deleted in results:
        mapper = compiled.mappers[index]
        if updated:
            result = mapper.map_items(updated, parse_all=True)
            collected.upsert(result.passed)
            collected.delete(result.failed)
            collected.take_issues(mapper, result)
        if deleted:
            result = mapper.map_items(deleted, parse_all=False)
            collected.delete(result.passed)
            collected.take_issues(mapper, result)
    return collected.changes(compiled)


def register_raw_changes(
    compiled: CompiledPortAppConfig, kind: str, items: Sequence[Any]
) -> tuple[EntityChanges, list[MappingIssue]]:
    """Ocean's ``register_raw``: upsert passing entities of every resource of ``kind``.

    Entities that fail the selector of every resource are deleted (an upsert wins).
    """
    collected = _Collector()
    for mapper in compiled.mappers_of_kind(kind):
        result = mapper.map_items(items, parse_all=True)
        collected.upsert(result.passed)
        collected.delete(result.failed)
        collected.take_issues(mapper, result)
    return collected.changes(compiled)


def unregister_raw_changes(
    compiled: CompiledPortAppConfig, kind: str, items: Sequence[Any]
) -> tuple[EntityChanges, list[MappingIssue]]:
    """Ocean's ``unregister_raw``: delete the entities of ``items`` that pass the selector.

    Resources mapped with a search identifier are skipped, as in Ocean.
    """
    collected = _Collector()
    for mapper in compiled.mappers_of_kind(kind):
        if mapper.uses_search_identifier:
            continue
        result = mapper.map_items(items, parse_all=False)
        collected.delete(result.passed)
        collected.take_issues(mapper, result)
    return collected.changes(compiled)


def resync_changes(
    compiled: CompiledPortAppConfig, index: int, items: Sequence[Any]
) -> tuple[EntityChanges, list[MappingIssue]]:
    """One resync batch of resource ``index``: the entities passing its selector, upserted.

    Ocean's resync (``parse_all`` false): items failing the selector are left out; deleting
    what is no longer produced is reconciliation's job, at the end of the resync.
    """
    collected = _Collector()
    mapper = compiled.mappers[index]
    result = mapper.map_items(items, parse_all=False)
    collected.upsert(result.passed)
    collected.take_issues(mapper, result)
    return collected.changes(compiled)
