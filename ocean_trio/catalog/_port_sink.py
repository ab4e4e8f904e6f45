"""``PortSink``: applies entity changes to Port, coalescing many events into bulk calls; the
resync target for Port (``open_resync``, in ``_port_resync``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import httpx

from .._entity import EntityKey, identifier_key
from .._exceptions import PartialApplyError, PortApiError
from ..resync._target import ResyncRun, ResyncWriter
from ._changes import EntityChanges, WriteOptions
from ._port_client import PortClient
from ._port_resync import open_port_resync

logger = logging.getLogger("ocean_trio.port")

_MERGED = ("properties", "relations")


@attrs.define
class _Op:
    """The net effect on one entity of a run of change sets, and the change sets behind it."""

    blueprint: str
    identifier: Any
    data: dict[str, Any] | None  # None: delete
    origins: list[int]


class PortSink:
    """The ``port`` catalog sink.

    A batch (the changes of many events) is reduced to one operation per entity: the last
    one wins, and successive merge-upserts of an entity are merged as Port would merge them.
    Upserts then go out in bulk per blueprint, deletes in bulk per blueprint. An entity Port
    refuses fails only the events that wrote it (``PartialApplyError``).
    """

    def __init__(self, client: PortClient) -> None:
        self.client = client

    def open_resync(self, run: ResyncRun) -> AbstractAsyncContextManager[ResyncWriter]:
        """A resync's writer: diffed upserts, then reconciliation over Port's owned entities."""
        return open_port_resync(self.client, run)

    def is_transient(self, error: Exception) -> bool:
        """Outages and rate limits (retried by the applier), not refused entities."""
        if isinstance(error, PortApiError):
            return error.transient
        return isinstance(error, httpx.TransportError)

    async def apply(self, batch: list[EntityChanges]) -> None:
        failures: dict[int, str] = {}
        for options, ops in _runs(batch):
            await self._apply_run(options, ops, failures)
        if failures:
            raise PartialApplyError(failures)

    async def _apply_run(
        self, options: WriteOptions, ops: dict[EntityKey, _Op], failures: dict[int, str]
    ) -> None:
        upserts: dict[str, list[_Op]] = {}
        deletes: dict[str, list[_Op]] = {}
        for op in ops.values():
            (upserts if op.data is not None else deletes).setdefault(op.blueprint, []).append(op)
        for blueprint, group in upserts.items():
            result = await self.client.upsert_entities(
                blueprint,
                [op.data for op in group if op.data is not None],
                merge=options.merge,
                create_missing_related_entities=options.create_missing_related_entities,
            )
            by_identifier = {identifier_key(op.identifier): op for op in group}
            for error in result.errors:
                source = by_identifier.get(identifier_key(error.identifier))
                message = (
                    f"Port refused {blueprint}/{error.identifier}: {error.code}: {error.message}"
                )
                logger.warning(message)
                for origin in source.origins if source is not None else ():
                    failures.setdefault(origin, message)
        for blueprint, group in deletes.items():
            await self.client.delete_entities(
                blueprint,
                [str(op.identifier) for op in group],
                delete_dependents=options.delete_dependent_entities,
            )


def _runs(batch: list[EntityChanges]) -> Iterator[tuple[WriteOptions, dict[EntityKey, _Op]]]:
    """Consecutive change sets with the same write options, reduced to one op per entity."""
    options: WriteOptions | None = None
    ops: dict[EntityKey, _Op] = {}
    for index, changes in enumerate(batch):
        if options is not None and changes.options != options:
            yield options, ops
            ops = {}
        options = changes.options
        for entity in changes.upserts:
            data = entity.to_port()
            previous = ops.get(entity.key)
            origins = [*previous.origins, index] if previous else [index]
            if previous is not None and previous.data is not None and options.merge:
                data = _merge(previous.data, data)
            ops[entity.key] = _Op(str(entity.blueprint), entity.identifier, data, origins)
        for entity in changes.deletes:
            previous = ops.get(entity.key)
            origins = [*previous.origins, index] if previous else [index]
            ops[entity.key] = _Op(str(entity.blueprint), entity.identifier, None, origins)
    if options is not None and ops:
        yield options, ops


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = {**old, **new}
    for name in _MERGED:
        if isinstance(old.get(name), dict) and isinstance(new.get(name), dict):
            merged[name] = {**old[name], **new[name]}
    return merged
