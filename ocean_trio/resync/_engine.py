"""``run_resync``: one full resync, as Ocean runs it, batch by batch, then reconciliation.

Resources go in config order. For each, every ``on_resync`` handler of its kind (then the
catch-all ones) is called; a list is one batch, an async generator yields batches. Each batch
is mapped (Ocean's resync semantics: ``parse_all`` false) and written as it arrives, so
memory holds one batch, never the total. An error in one kind is recorded and the resync
goes on with the next; any error means no reconciliation (no deletion), as in Ocean.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .._integration import Integration, OnResync
from ..catalog._changes import EntityChanges
from ..mapping._compiled import CompiledPortAppConfig
from ..mapping._mapper import MappingIssue, ResourceMapper
from ._context import EventContext, event_context
from ._state import KindProgress, ResyncState, ResyncStatus
from ._target import ResyncRun, ResyncTarget, ResyncWriter

logger = logging.getLogger("ocean_trio.resync")

MapBatch = Callable[
    [CompiledPortAppConfig, int, list[dict[str, Any]]],
    Awaitable[tuple[EntityChanges, list[MappingIssue]]],
]
"""Maps one batch of resource ``index`` (``resync_changes``, off the loop when it is big)."""

MAX_ERRORS_KEPT = 20  # per kind; the rest are counted, so a broken kind cannot grow memory


class Progress(Protocol):
    """Told how a resync advances (the console, tests)."""

    def batch(self, state: ResyncState, kind: KindProgress) -> None: ...

    def kind_done(self, state: ResyncState, kind: KindProgress) -> None: ...


async def run_resync(
    state: ResyncState,
    *,
    integration: Integration,
    mapping: CompiledPortAppConfig,
    target: ResyncTarget,
    map_batch: MapBatch,
    progress: Progress,
) -> None:
    """Run the resync ``state`` stands for and fill it in: kinds, reconciliation, status.

    Ends ``completed`` or ``failed``; cancellation propagates (the caller records
    ``aborted``).
    """
    attributes: dict[str, Any] = {}
    run = ResyncRun(state.id, state.started_at)
    with event_context(EventContext(mapping.config, None, attributes)):
        await _hooks("on_resync_start", integration.on_resync_start_hooks, state)
    async with target.open_resync(run) as writer:
        for mapper in mapping.mappers:
            kind = KindProgress(mapper.kind, mapper.index, started_at=time.time())
            state.kinds.append(kind)
            with event_context(EventContext(mapping.config, mapper.resource, attributes)):
                await _resync_kind(
                    integration, mapping, mapper, kind, writer, map_batch, progress, state
                )
            kind.finished_at = time.time()
            progress.kind_done(state, kind)
        if state.errors:
            state.status = ResyncStatus.FAILED
            return
        state.reconciliation = await writer.reconcile(
            mapping.config.entity_deletion_threshold, mapping.options
        )
    with event_context(EventContext(mapping.config, None, attributes)):
        await _hooks("on_resync_complete", integration.on_resync_complete_hooks, state)
    state.status = ResyncStatus.FAILED if state.errors else ResyncStatus.COMPLETED


async def _hooks(name: str, hooks: list[Callable[[], Awaitable[None]]], state: ResyncState) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception as error:
            # Ocean skips deletion when a start hook fails: here any error does.
            state.error = f"{name} hook {getattr(hook, '__name__', hook)} failed: {error!r}"
            logger.error("resync %d: %s", state.id, state.error)


async def _resync_kind(
    integration: Integration,
    mapping: CompiledPortAppConfig,
    mapper: ResourceMapper,
    kind: KindProgress,
    writer: ResyncWriter,
    map_batch: MapBatch,
    progress: Progress,
    state: ResyncState,
) -> None:
    handlers = [
        *integration.resync_handlers.get(mapper.kind, []),
        *integration.resync_handlers.get(None, []),
    ]
    if not handlers:
        _error(kind, f"no @ocean.on_resync handler for kind {mapper.kind!r}")
        return
    for handler in handlers:
        name = getattr(handler, "__name__", repr(handler))
        try:
            number = 0
            async for batch in _batches(handler, mapper.kind):
                number += 1
                problem = _invalid(batch)
                if problem is not None:
                    _error(kind, f"{name}: batch {number} {problem}")
                    continue
                kind.items += len(batch)
                changes, issues = await map_batch(mapping, mapper.index, batch)
                for issue in issues:
                    _error(
                        kind,
                        f"{name}: batch {number}, item {issue.index}: {issue.field}: {issue.message}",
                    )
                counts = await writer.write(changes)
                kind.upserted += counts.upserted
                kind.skipped += counts.skipped
                kind.failed += counts.failed
                for failure in counts.failures:
                    logger.warning("resync %d: %s: %s", state.id, mapper.kind, failure)
                progress.batch(state, kind)
        except Exception as error:
            _error(kind, f"{name} failed: {error!r}")


async def _batches(handler: OnResync, kind: str) -> AsyncIterator[Any]:
    """What ``handler(kind)`` gives, as batches: a list is one, an async generator many."""
    result = handler(kind)
    if inspect.isasyncgen(result):
        try:
            async for batch in result:
                yield batch
        finally:
            await result.aclose()
    else:
        yield await result


def _invalid(batch: Any) -> str | None:
    """Why ``batch`` is not a list of raw items (JSON objects with string keys), or None."""
    if not isinstance(batch, list):
        return f"is {type(batch).__name__}, not a list of raw items"
    for position, item in enumerate(batch):
        if not isinstance(item, dict) or not all(isinstance(key, str) for key in item):
            return f"item {position} is not a JSON object with string keys"
    return None


def _error(kind: KindProgress, message: str) -> None:
    if len(kind.errors) < MAX_ERRORS_KEPT:
        kind.errors.append(message)
    elif len(kind.errors) == MAX_ERRORS_KEPT:
        kind.errors.append("(more errors, not kept)")
    logger.warning("resync of %s (resources[%d]): %s", kind.kind, kind.index, message)
