"""``Applier``: batches entity changes from many events into few sink writes (group commit)."""

from __future__ import annotations

import logging

import attrs
import trio

from .._exceptions import PartialApplyError, SinkRefusedError, WriteCancelledError
from .._retry import RetryPolicy
from ._changes import CatalogSink, EntityChanges

logger = logging.getLogger("ocean_trio.catalog")

SINK_RETRY = RetryPolicy(max_attempts=None, initial_delay=0.5, max_delay=30.0, horizon=900.0)
"""Transient sink failures: 0.5 s doubling to 30 s, for up to 15 minutes."""


@attrs.define(eq=False)
class _Request:
    changes: EntityChanges
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None


@attrs.frozen
class ApplierStatistics:
    batches: int
    changes_applied: int
    failures: int
    waiting: int
    retrying: bool


class Applier:
    """Applies ``EntityChanges`` to a sink; callers wait until their changes are written.

    While one write runs, new requests pile up in a bounded channel; the next write takes
    all of them (up to ``max_batch``) in one sink call, so the number of writes adapts to
    the load instead of being one per event. With ``fill`` (Port: the entities a bulk call
    holds), a write of fewer entities waits up to ``linger`` seconds for more: each write is
    a request to a rate-limited API, so a few milliseconds of latency buy several times
    fewer calls.
    """

    def __init__(
        self,
        sink: CatalogSink,
        *,
        max_batch: int = 500,
        queue_size: int = 1024,
        retry: RetryPolicy = SINK_RETRY,
        fill: int = 0,
        linger: float = 0.0,
    ) -> None:
        self._retry = retry
        self._retrying = False
        self._sink = sink
        self._max_batch = max_batch
        self._fill = fill
        self._linger = linger
        self._send, self._recv = trio.open_memory_channel[_Request](queue_size)
        self._batches = 0
        self._applied = 0
        self._failures = 0

    async def apply(self, changes: EntityChanges) -> None:
        """Write ``changes`` (with others waiting at the same time); raise if the write failed."""
        if not changes:
            await trio.lowlevel.checkpoint()
            return
        request = _Request(changes)
        await self._send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; ``started()`` as soon as requests are accepted."""
        task_status.started()
        async with self._recv:
            async for first in self._recv:
                await self._write(await self._gather(first))

    async def _gather(self, first: _Request) -> list[_Request]:
        """``first`` and the requests waiting behind it (lingering for ``fill`` entities)."""
        batch = [first]
        entities = _size(first.changes)
        deadline = trio.current_time() + self._linger
        while len(batch) < self._max_batch:
            request = await self._next(entities, deadline)
            if request is None:
                break
            batch.append(request)
            entities += _size(request.changes)
        return batch

    async def _next(self, entities: int, deadline: float) -> _Request | None:
        """A waiting request; with none waiting and fewer than ``fill`` entities gathered,
        the first to arrive before ``deadline``."""
        try:
            return self._recv.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            return None
        if entities >= self._fill:
            return None
        with trio.move_on_at(deadline):
            try:
                return await self._recv.receive()
            except trio.EndOfChannel:
                return None
        return None

    async def _write(self, batch: list[_Request]) -> None:
        # Stays set only if the write is cancelled mid-way: waiters must not take that as success.
        error: BaseException | None = WriteCancelledError("the catalog write was cancelled")
        try:
            error = await self._write_with_retries(batch)
        finally:
            for request in batch:
                if not request.done.is_set():
                    request.error = error
                    request.done.set()

    async def _write_with_retries(self, batch: list[_Request]) -> BaseException | None:
        """Write ``batch``; transient failures are retried per the retry policy (15 minutes).

        Meanwhile the waiting events stay pending (new ones queue behind them, up to the
        journal's limit), so a sink outage shorter than the horizon loses and dead-letters
        nothing. A batch failing for another reason is split, so one bad change set fails
        alone instead of taking the others with it.
        """
        retries = self._retry.start()
        while True:
            try:
                await self._sink.apply([r.changes for r in batch])
            except PartialApplyError as partial:
                # The sink wrote the rest: only the refused change sets fail.
                for index, message in partial.failures.items():
                    batch[index].error = SinkRefusedError(message)
                    batch[index].done.set()
                self._batches += 1
                self._applied += len(batch) - len(partial.failures)
                self._failures += len(partial.failures)
                return None
            except Exception as exc:
                self._failures += 1
                transient = self._sink.is_transient(exc)
                delay = retries.next_delay() if transient else None
                if delay is not None:
                    logger.warning(
                        "catalog write of %d change sets failed (%r); retrying in %.1fs",
                        len(batch),
                        exc,
                        delay,
                    )
                    self._retrying = True
                    await retries.wait(delay)
                    continue
                self._retrying = False
                if not transient and len(batch) > 1:
                    await self._write_each(batch)
                    return None
                logger.error("catalog write of %d change sets failed: %r", len(batch), exc)
                return exc
            self._retrying = False
            self._batches += 1
            self._applied += len(batch)
            return None

    async def _write_each(self, batch: list[_Request]) -> None:
        for request in batch:
            try:
                await self._sink.apply([request.changes])
            except Exception as exc:
                logger.error("catalog write failed: %r", exc)
                request.error = exc
            else:
                self._batches += 1
                self._applied += 1
            request.done.set()

    def statistics(self) -> ApplierStatistics:
        return ApplierStatistics(
            batches=self._batches,
            changes_applied=self._applied,
            failures=self._failures,
            waiting=self._send.statistics().current_buffer_used,
            retrying=self._retrying,
        )


def _size(changes: EntityChanges) -> int:
    return len(changes.upserts) + len(changes.deletes)
