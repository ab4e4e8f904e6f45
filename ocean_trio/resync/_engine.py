"""``run_resync``: one full resync, as Ocean runs it, batch by batch, then reconciliation.

Resources go in config order. For each, every ``on_resync`` handler of its kind (then the
catch-all ones) is called; a list is one batch, an async generator yields batches. Each batch
is mapped (Ocean's resync semantics: ``parse_all`` false) and written as it arrives. An
error in one kind is recorded and the resync goes on with the next; any error means no
reconciliation (no deletion), as in Ocean.

Mapping and writing overlap: while the sink writes batch N, the handler's next batch is
fetched and mapped (a pipeline per handler, through a channel of ``MAPPED_AHEAD``). Mapping is
CPU work (~70 µs an item, on the loop or in the mapping pool), writing mostly waits (SQLite on
its thread, Port's API over HTTP); done in turn, each waited for the other. Writes stay one at
a time and in the handler's order, so a later batch's entity still wins over an earlier one's,
and everything about a batch (items, issues, counts, errors) is recorded in that order. Memory
holds at most ``MAPPED_AHEAD + 2`` batches: the one being written, those waiting in the
channel, and the one being fetched or mapped; never the total.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Protocol

import attrs
import trio

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

HANDLER_CLOSE_SECONDS = 5.0
"""How long a handler's async generator gets to close (its ``finally``), even when cancelled."""

MAPPED_AHEAD = 1
"""Mapped batches waiting for the writer. One is enough to keep both sides busy when they
take about as long; more would only hold more memory while the slower side sets the pace."""


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


@attrs.frozen
class _Mapped:
    """Batch ``number`` of a handler, mapped: what the writer gets through the channel."""

    number: int
    changes: EntityChanges
    issues: list[MappingIssue]


@attrs.frozen
class _Refused:
    """Batch ``number`` was not a list of raw items (``problem``); nothing to write."""

    number: int
    problem: str


@attrs.frozen
class _Failed:
    """The handler (or the mapping of its batch) raised ``error``: the handler's last message."""

    error: Exception


_Step = _Mapped | _Refused | _Failed


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
        send, receive = trio.open_memory_channel[_Step](MAPPED_AHEAD)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_map_ahead, handler, mapping, mapper, kind, map_batch, send)
            async with receive:
                async for step in receive:
                    if isinstance(step, _Failed):
                        _error(kind, f"{name} failed: {step.error!r}")
                    elif isinstance(step, _Refused):
                        _error(kind, f"{name}: batch {step.number} {step.problem}")
                    else:
                        try:
                            await _write(step, name, kind, writer, state)
                            progress.batch(state, kind)
                        except Exception as error:
                            # The handler stops here, as when it raises. Closing the channel
                            # (on leaving this block) ends the mapper at its next send; it is
                            # not cancelled, so the handler's generator is closed normally.
                            _error(kind, f"{name} failed: {error!r}")
                            break


async def _map_ahead(
    handler: OnResync,
    mapping: CompiledPortAppConfig,
    mapper: ResourceMapper,
    kind: KindProgress,
    map_batch: MapBatch,
    send: trio.MemorySendChannel[_Step],
) -> None:
    """Fetch and map the handler's batches into ``send``, in order. Its errors are sent as
    ``_Failed``, so nothing but cancellation leaves this task (no exception group to undo);
    it stops early when the writer closes the channel."""
    async with send:
        try:
            number = 0
            async with aclosing(_batches(handler, mapper.kind)) as batches:
                async for batch in batches:
                    number += 1
                    problem = _invalid(batch)
                    if problem is not None:
                        step: _Step = _Refused(number, problem)
                    else:
                        kind.items += len(batch)
                        changes, issues = await map_batch(mapping, mapper.index, batch)
                        step = _Mapped(number, changes, issues)
                    if not await _send(send, step):
                        return
        except Exception as error:
            await _send(send, _Failed(error))


async def _send(send: trio.MemorySendChannel[_Step], step: _Step) -> bool:
    """Send ``step``; False when the writer has stopped reading."""
    try:
        await send.send(step)
    except trio.BrokenResourceError:
        return False
    return True


async def _write(
    step: _Mapped, name: str, kind: KindProgress, writer: ResyncWriter, state: ResyncState
) -> None:
    for issue in step.issues:
        _error(
            kind,
            f"{name}: batch {step.number}, item {issue.index}: {issue.field}: {issue.message}",
        )
    counts = await writer.write(step.changes)
    kind.upserted += counts.upserted
    kind.skipped += counts.skipped
    kind.failed += counts.failed
    for failure in counts.failures:
        logger.warning("resync %d: %s: %s", state.id, kind.kind, failure)


async def _batches(handler: OnResync, kind: str) -> AsyncGenerator[Any, None]:
    """What ``handler(kind)`` gives, as batches: a list is one, an async generator many."""
    result = handler(kind)
    if inspect.isasyncgen(result):
        try:
            async for batch in result:
                yield batch
        finally:
            # Also when the resync is cancelled: the handler's own finally (closing its HTTP
            # client) gets to run its awaits, for a bounded time.
            with trio.move_on_after(HANDLER_CLOSE_SECONDS, shield=True):
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
