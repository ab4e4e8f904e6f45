"""``Applier``: batches entity changes from many events into few sink writes (group commit)."""

from __future__ import annotations

import logging

import attrs
import trio

from .._exceptions import OceanError
from ._changes import CatalogSink, EntityChanges

logger = logging.getLogger("ocean_trio.catalog")


class WriteCancelledError(OceanError):
    """The write carrying these changes was cancelled (shutdown) before it completed."""


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


class Applier:
    """Applies ``EntityChanges`` to a sink; callers wait until their changes are written.

    While one write runs, new requests pile up in a bounded channel; the next write takes
    all of them (up to ``max_batch``) in one sink call, so the number of writes adapts to
    the load instead of being one per event. Writes start at least ``min_interval`` apart:
    under load each write then carries more changes (a commit costs far more than a row),
    at the price of at most that much latency.
    """

    def __init__(
        self,
        sink: CatalogSink,
        *,
        max_batch: int = 500,
        queue_size: int = 1024,
        min_interval: float = 0.0,
    ) -> None:
        self._sink = sink
        self._max_batch = max_batch
        self._min_interval = min_interval
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
                started = trio.current_time()
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._write(batch)
                await trio.sleep_until(started + self._min_interval)

    async def _write(self, batch: list[_Request]) -> None:
        # Stays set only if the write is cancelled mid-way: waiters must not take that as success.
        error: BaseException | None = WriteCancelledError("the catalog write was cancelled")
        try:
            await self._sink.apply([r.changes for r in batch])
            error = None
            self._batches += 1
            self._applied += len(batch)
        except Exception as exc:
            self._failures += 1
            logger.error("catalog write of %d change sets failed: %r", len(batch), exc)
            error = exc
        finally:
            for request in batch:
                request.error = error
                request.done.set()

    def statistics(self) -> ApplierStatistics:
        return ApplierStatistics(
            batches=self._batches,
            changes_applied=self._applied,
            failures=self._failures,
            waiting=self._send.statistics().current_buffer_used,
        )
