"""``EntityChanges``: what one event (or one ``register_raw`` call) asks the catalog to do."""

from __future__ import annotations

from typing import Protocol

import attrs

from .._entity import Entity
from ..mapping._models import PortAppConfig


@attrs.frozen
class WriteOptions:
    """Port's write flags, taken from the port app config in force when the changes were mapped."""

    merge: bool = True
    create_missing_related_entities: bool = True
    delete_dependent_entities: bool = True

    @classmethod
    def from_config(cls, config: PortAppConfig) -> WriteOptions:
        return cls(
            merge=config.enable_merge_entity,
            create_missing_related_entities=config.create_missing_related_entities,
            delete_dependent_entities=config.delete_dependent_entities,
        )


@attrs.frozen
class EntityChanges:
    """Upserts and deletes of one unit of work; an entity never appears in both (upsert wins)."""

    upserts: tuple[Entity, ...] = ()
    deletes: tuple[Entity, ...] = ()
    options: WriteOptions = WriteOptions()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)


class CatalogSink(Protocol):
    """Where entities end up: the embedded SQLite catalog or Port's API."""

    async def apply(self, batch: list[EntityChanges]) -> None:
        """Apply the changes of several units of work, in order; atomically where the sink can.

        Raises when the batch could not be applied; the caller decides whether to retry.
        """
        ...

    def is_transient(self, error: Exception) -> bool:
        """True when ``error`` is an outage worth retrying (not a problem with the changes)."""
        ...
