"""A resync into Port: upsert what changed, remember what was produced, reconcile the rest away.

``write`` (Ocean's resync upsert, plus a freshness rule):
- A batch that Ocean would diff (``_port_diff.diffable``: more than 10 entities, no search
  identifier or relation) is looked up in Port (the diff search: 50 identifiers a search, only
  the mapped fields and ``updatedAt``); only new and changed entities are upserted. If the
  lookup fails in any way, every entity is upserted (Ocean's fallback).
- Beyond Ocean: an entity whose ``updatedAt`` in Port is at or after the resync's start was
  written during the resync by someone else (a live event, most likely) and is left as it is
  (counted skipped), unless this resync wrote it itself earlier (the same entity produced by two
  kinds or batches: that one is compared and upserted as usual).

  What this guarantees, and what not: the check runs only on batches that are diffed. A batch
  of 10 entities or fewer, or one with a search identifier or relation, is upserted without it
  (as in Ocean). A live write that lands after the diff search and before the upsert (a window
  of one request) is overwritten; so is one made to an entity this resync had already written.
  Port's ``updatedAt`` is Port's clock and the start is ours: skew between the two widens or
  narrows the window accordingly.
- Every entity of every batch is recorded as produced, upserted or not (skipped, refused): an
  entity that the source still has is never deleted because Port refused it.

Memory: a produced entity costs one 64-bit blake2b digest of ``(blueprint, identifier)`` in a
set (about 80 bytes with CPython's int and set overheads), whatever the entity's size; its
lowest bit says whether this resync upserted it. Relation targets (kept when Port creates
missing related entities, as Ocean's ``_safe_delete`` keeps them) cost one digest each.

``reconcile`` (Ocean's ``delete_diff`` over the owned-entities search with ``before``): the
owned entities are those whose datasource is this integration's that existed before the resync
began (``createdAt``); stale ones were last updated before it began and not produced. Ocean's
rule: nothing is deleted unless ``stale / owned <= threshold``; Ocean's ``owned`` leaves out the
entities the resync changed, so a resync that changes most of the catalog is refused for the
few it would delete. The rule needs the totals before deleting anything, and only one page
(1,000 entities, trimmed to their keys and times) is held at a time, so reconciling takes two
passes: the first counts over all owned entities, the second (only when something is to be deleted) lists those last updated
before the resync began (``before``, as Ocean) and deletes the stale ones of each page as it
arrives. Between the passes an entity may be written again (it leaves the
``before`` set: not deleted) or deleted (nothing to do). An entity written after its page was
read and before its delete request (one request's window) is deleted: Port offers no
conditional delete. Deleting while paging is safe even if Port's cursor were an offset: pages
would then shift and some stale entities be missed (left for the next resync), never the
wrong ones deleted.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from .._entity import Entity, EntityKey, identifier_key
from ..resync._state import Reconciliation
from ..resync._target import ResyncRun, WriteCounts, deletion_refusal
from ._changes import EntityChanges, WriteOptions
from ._port_client import OWNED_PAGE_SIZE, PortClient
from ._port_diff import (
    DIFF_MIN_ENTITIES,
    created_before,
    diff_fields,
    diffable,
    differs,
    updated_since,
)

logger = logging.getLogger("ocean_trio.port")


def resync_start(started_at: float) -> datetime:
    """The resync's start as compared with Port's times: Port keeps milliseconds, so the start is
    rounded down to one. An entity written in that very millisecond counts as written during
    the resync (never deleted, never overwritten): the safe side of the rounding."""
    return datetime.fromtimestamp(math.floor(started_at * 1000) / 1000, UTC)


class ProducedKeys:
    """The entities a resync produced, as 64-bit digests; the lowest bit: upserted by it."""

    def __init__(self) -> None:
        self._digests: set[int] = set()
        self._targets: set[int] = set()

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, key: EntityKey, *, written: bool) -> None:
        digest = _digest(*key)
        if written:
            self._digests.discard(digest)
            self._digests.add(digest | 1)
        elif digest | 1 not in self._digests:
            self._digests.add(digest)

    def __contains__(self, key: EntityKey) -> bool:
        digest = _digest(*key)
        return digest in self._digests or digest | 1 in self._digests

    def written(self, key: EntityKey) -> bool:
        return _digest(*key) | 1 in self._digests

    def add_targets(self, entity: Entity) -> None:
        """Remember the identifiers ``entity`` relates to (any blueprint: Ocean finds the target
        blueprints in the blueprints' schemas; keying by identifier alone keeps a few more)."""
        relations = entity.relations if isinstance(entity.relations, Mapping) else {}
        for value in relations.values():
            for target in value if isinstance(value, list) else [value]:
                if isinstance(target, str):
                    self._targets.add(_digest("", target))

    def is_target(self, identifier: str) -> bool:
        return _digest("", identifier) in self._targets

    def clear(self) -> None:
        self._digests.clear()
        self._targets.clear()


def _digest(blueprint: str, identifier: str) -> int:
    data = f"{blueprint}\0{identifier}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") & ~1


@asynccontextmanager
async def open_port_resync(
    client: PortClient,
    run: ResyncRun,
    *,
    diff_min_entities: int = DIFF_MIN_ENTITIES,
    page_size: int = OWNED_PAGE_SIZE,
) -> AsyncIterator[PortResync]:
    """The writer of ``run``; what it recorded is dropped on exit."""
    writer = PortResync(client, run, diff_min_entities=diff_min_entities, page_size=page_size)
    try:
        yield writer
    finally:
        writer.close()


class PortResync:
    """``ResyncWriter`` for Port (see the module's docstring)."""

    def __init__(
        self,
        client: PortClient,
        run: ResyncRun,
        *,
        diff_min_entities: int = DIFF_MIN_ENTITIES,
        page_size: int = OWNED_PAGE_SIZE,
    ) -> None:
        self._client = client
        self._run = run
        self._since = resync_start(run.started_at)
        self._diff_min = diff_min_entities
        self._page_size = page_size
        self._produced = ProducedKeys()
        # reconcile() has no options of its own: those of the last batch written (the port
        # app config's), else the defaults.
        self._options = WriteOptions()

    @property
    def produced(self) -> int:
        """How many distinct entities were produced so far."""
        return len(self._produced)

    def close(self) -> None:
        self._produced.clear()

    async def write(self, changes: EntityChanges) -> WriteCounts:
        options = self._options = changes.options
        entities = changes.upserts
        if not entities:
            return WriteCounts()
        send: Sequence[Entity] = entities
        same = newer = 0
        if diffable(entities, min_entities=self._diff_min):
            try:
                send, same, newer = await self._changed(entities)
            except Exception as error:  # Ocean: whatever went wrong, upsert them all
                logger.warning(
                    "comparing %d entities with Port failed (%r): upserting them all",
                    len(entities),
                    error,
                )
                send, same, newer = entities, 0, 0
        for entity in entities:
            self._produced.add(entity.key, written=False)
            if options.create_missing_related_entities:
                self._produced.add_targets(entity)
        for entity in send:
            self._produced.add(entity.key, written=True)
        upserted, failures = await self._upsert(send, options)
        if newer:
            logger.info(
                "%d entities written in Port since the resync began left as they are", newer
            )
        return WriteCounts(
            upserted=upserted,
            skipped=same + newer,
            failed=len(failures),
            failures=tuple(failures),
        )

    async def _changed(self, entities: Sequence[Entity]) -> tuple[list[Entity], int, int]:
        """The entities to upsert, how many are unchanged, how many are newer in Port."""
        current: dict[EntityKey, Mapping[str, Any]] = {}
        for blueprint, group in _by_blueprint(entities).items():
            found = await self._client.current_entities(
                blueprint, [str(e.identifier) for e in group], include=diff_fields(group)
            )
            for stored in found:
                current[(blueprint, identifier_key(stored.get("identifier")))] = stored
        send: list[Entity] = []
        same = newer = 0
        for entity in entities:
            now = current.get(entity.key)
            if now is None:
                send.append(entity)
            elif updated_since(now, self._since) and not self._produced.written(entity.key):
                newer += 1
            elif differs(now, entity):
                send.append(entity)
            else:
                same += 1
        return send, same, newer

    async def _upsert(
        self, entities: Sequence[Entity], options: WriteOptions
    ) -> tuple[int, list[str]]:
        upserted = 0
        failures: list[str] = []
        for blueprint, group in _by_blueprint(entities).items():
            result = await self._client.upsert_entities(
                blueprint,
                [e.to_port() for e in group],
                merge=options.merge,
                create_missing_related_entities=options.create_missing_related_entities,
            )
            upserted += len(result.upserted)
            for error in result.errors:
                message = (
                    f"Port refused {blueprint}/{error.identifier}: {error.code}: {error.message}"
                )
                logger.warning(message)
                failures.append(message)
        return upserted, failures

    async def reconcile(self, threshold: float, options: WriteOptions) -> Reconciliation:
        self._options = options
        owned, stale = await self._count()
        reason = deletion_refusal(owned, stale, threshold)
        if reason is not None:
            logger.warning("resync %d: %s", self._run.id, reason)
            return Reconciliation(owned=owned, stale=stale, deleted=0, skipped_reason=reason)
        deleted = kept = 0
        if stale:
            async with aclosing(self._pages()) as pages:
                async for page in pages:
                    doomed: dict[str, list[str]] = {}
                    for blueprint, identifier in self._stale(page):
                        if self._options.create_missing_related_entities and (
                            self._produced.is_target(identifier)
                        ):
                            kept += 1  # a produced entity relates to it (Ocean's _safe_delete)
                        else:
                            doomed.setdefault(blueprint, []).append(identifier)
                    deleted += await self._delete(doomed)
        logger.info(
            "resync %d: %d owned entities existed before it began, %d stale, %d deleted%s",
            self._run.id,
            owned,
            stale,
            deleted,
            f", {kept} kept as relation targets" if kept else "",
        )
        return Reconciliation(owned=owned, stale=stale, deleted=deleted)

    async def _count(self) -> tuple[int, int]:
        """Owned entities that existed before the resync began, and of them the stale ones
        (an unreadable ``updatedAt`` counts as stale, so the count errs towards refusing)."""
        owned = stale = 0
        listing = self._client.owned_entity_pages(limit=self._page_size)
        async with aclosing(listing) as pages:
            async for page in pages:
                for entity in page:
                    key = _key(entity)
                    if key is None:
                        continue  # not an entity: nothing to delete or count
                    old = not updated_since(entity, self._since)
                    if old and key not in self._produced:
                        stale += 1
                    if old or created_before(entity, self._since):
                        owned += 1
        return owned, stale

    def _pages(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        return self._client.owned_entity_pages(before=self._since, limit=self._page_size)

    def _stale(self, page: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
        for entity in page:
            key = _key(entity)
            if key is not None and key not in self._produced:
                yield key

    async def _delete(self, doomed: dict[str, list[str]]) -> int:
        """Delete one page's stale entities, in bulk per blueprint; the number deleted."""
        dependents = self._options.delete_dependent_entities
        deleted = 0
        # With delete_dependents Port cascades: one round. Without it, an entity with
        # dependents in another blueprint is refused until they are gone (Ocean orders them
        # topologically; rounds reach the same end without the relations): repeat while a
        # round deletes something.
        while doomed:
            left: dict[str, list[str]] = {}
            progress = 0
            for blueprint, identifiers in doomed.items():
                gone = set(
                    await self._client.delete_entities(
                        blueprint, identifiers, delete_dependents=dependents
                    )
                )
                progress += len(gone)
                rest = [i for i in identifiers if i not in gone]
                if rest:
                    left[blueprint] = rest
            deleted += progress
            if dependents or not progress:
                break
            doomed = left
        return deleted


def _key(entity: Mapping[str, Any]) -> tuple[str, str] | None:
    blueprint, identifier = entity.get("blueprint"), entity.get("identifier")
    if isinstance(blueprint, str) and isinstance(identifier, str):
        return blueprint, identifier
    return None


def _by_blueprint(entities: Iterable[Entity]) -> dict[str, list[Entity]]:
    groups: dict[str, list[Entity]] = {}
    for entity in entities:
        groups.setdefault(str(entity.blueprint), []).append(entity)
    return groups
