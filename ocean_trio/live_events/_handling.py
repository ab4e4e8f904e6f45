"""Processing one event: match processors, fan out over resources, map the results, apply them."""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..catalog._changes import EntityChanges
from ..mapping._compiled import CompiledPortAppConfig
from ..mapping._live_changes import live_event_changes
from ..mapping._mapper import MappingIssue
from ..mapping._models import ResourceConfig
from ..mapping._pool import MappingPool
from ._event import EventPayload, WebhookEvent
from ._journal import EventStatus
from ._json import BodyParser, exceeds
from ._outcome import EventOutcome, Prepared
from ._processor import AbstractWebhookProcessor, WebhookProcessorType
from ._run import RunOutcome, RunStatus, run_outcome, run_processor

logger = logging.getLogger("ocean_trio.live_events")

# Mapping more JSON nodes than this runs off the event loop (in the mapping pool's worker
# processes, or on a thread without a pool); below it, the hop costs more than the jq work.
MAP_OFF_LOOP_NODES = 5000

ITEM_ERROR_FIELDS = frozenset({"selector", "itemsToParse", "item", "icon"})


_Work = tuple[AbstractWebhookProcessor, ResourceConfig | None, int | None]


class EventHandler:
    """Turns an event into catalog changes with the processors registered on its path."""

    def __init__(
        self,
        processors: Sequence[type[AbstractWebhookProcessor]],
        *,
        mapping: Callable[[], CompiledPortAppConfig],
        apply: Callable[[EntityChanges], Awaitable[None]],
        max_event_processing_seconds: float,
        parser: BodyParser,
        pool: MappingPool | None = None,
    ) -> None:
        self._processors = tuple(processors)
        self._mapping = mapping
        self._apply = apply
        self._timeout = max_event_processing_seconds
        self._parser = parser
        self._pool = pool
        self._map_limiter = trio.CapacityLimiter(1)

    def group_of(self, event: WebhookEvent) -> str | None:
        """The first group key a processor declares for ``event`` (registration order).

        A ``group_key`` that raises is logged and skipped: the event is still accepted, in
        its path's default group, rather than refused for an integration bug.
        """
        for cls in self._processors:
            try:
                key = cls.group_key(event)
            except Exception as error:
                logger.error("%s.group_key raised %r; using the default group", cls.__name__, error)
                continue
            if key is not None:
                return str(key)
        return None

    async def handle(self, event: WebhookEvent) -> EventOutcome:
        """Process ``event`` to the end; errors become the outcome, only ``Cancelled`` escapes."""
        return await (await self.prepare(event)).finish()

    async def prepare(self, event: WebhookEvent) -> Prepared:
        """Process ``event`` up to its write (``Prepared.finish`` writes); errors become the
        outcome, only ``Cancelled`` escapes."""
        compiled = self._mapping()
        try:
            accepted, work = await self._match(event, compiled)
        except Exception as error:
            return Prepared(EventOutcome(EventStatus.DEAD, error=f"matching failed: {error!r}"))
        if not accepted:
            return Prepared(EventOutcome(EventStatus.NO_MATCH))
        if not work:
            logger.info(
                "processors accepted the event but its kinds have no resource in the mapping (trace %s)",
                event.trace_id,
            )
            return Prepared(EventOutcome(EventStatus.DONE))

        runs = await self._run_all(event, work)
        succeeded = [r for r in runs if r.status is RunStatus.SUCCEEDED]
        failed = [r for r in runs if r.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)]
        if not succeeded and not failed:
            return Prepared(EventOutcome(EventStatus.REJECTED, tuple(runs), error=runs[0].error))

        mapped = [
            (r.resource_index, r.results.updated_raw_results, r.results.deleted_raw_results)
            for r in succeeded
            if r.resource_index is not None and r.results is not None
        ]
        try:
            changes, issues = await self._map(compiled, mapped)
        except Exception as error:
            outcome = EventOutcome(
                EventStatus.DEAD, tuple(runs), error=f"mapping failed: {error!r}"
            )
            return Prepared(outcome)
        # Items the mapping could not take (selector not boolean, itemsToParse not an array)
        # were skipped while the rest is applied; the event is kept as a dead letter so it
        # can be replayed once the mapping is fixed. Null fields are only misconfigurations.
        skipped = [i for i in issues if i.field in ITEM_ERROR_FIELDS]
        errors = [f"{r.processor}: {r.error}" for r in failed]
        if skipped:
            errors.append(f"mapping skipped {len(skipped)} item(s): {skipped[0].message}")
        status = EventStatus.DEAD if errors else EventStatus.DONE
        outcome = EventOutcome(
            status,
            tuple(runs),
            upserts=len(changes.upserts),
            deletes=len(changes.deletes),
            mapping_issues=tuple(issues),
            error="; ".join(errors) or None,
        )
        return Prepared(outcome, changes, self._apply)

    async def _match(
        self, event: WebhookEvent, compiled: CompiledPortAppConfig
    ) -> tuple[bool, list[_Work]]:
        # One instance per (processor, resource) run, so retry counts and hooks are per run;
        # extra runs get a shallow copy of the instance that matched, keeping any state its
        # should_process_event() set (Ocean shares one instance across all its resources).
        accepted = False
        work: list[_Work] = []
        for cls in self._processors:
            processor = cls(event)
            if not await processor.should_process_event(event):
                continue
            accepted = True
            if cls.get_processor_type() is WebhookProcessorType.ACTION:
                work.append((processor, None, None))
                continue
            first = True
            for kind in await processor.get_matching_kinds(event):
                for index, resource in compiled.config.resources_of_kind(kind):
                    work.append((processor if first else copy.copy(processor), resource, index))
                    first = False
        return accepted, work

    async def _run_all(self, event: WebhookEvent, work: list[_Work]) -> list[RunOutcome]:
        outcomes: list[RunOutcome | None] = [None] * len(work)

        async def run_one(i: int) -> None:
            processor, resource, index = work[i]
            # A bare cancel scope is fail_after without its context-manager overhead.
            with trio.CancelScope(deadline=trio.current_time() + self._timeout) as deadline:
                # Each run gets its own payload, so runs cannot see each other's changes:
                # the first the one parsed at ingress, the others a parse of the body (several
                # times faster than a deep copy, and on a thread when the body is big).
                payload: EventPayload = (
                    event.payload if i == 0 else await self._parser.parse_object_async(event.body)
                )
                outcomes[i] = await run_processor(processor, resource, index, payload)
            if deadline.cancelled_caught:
                logger.warning(
                    "%s timed out after %gs (trace %s)",
                    type(processor).__name__,
                    self._timeout,
                    processor.event.trace_id,
                )
                outcomes[i] = run_outcome(
                    processor,
                    resource,
                    index,
                    RunStatus.TIMED_OUT,
                    error=f"timed out after {self._timeout:g}s",
                )

        if len(work) == 1:
            await run_one(0)
        else:
            async with trio.open_nursery() as nursery:
                for i in range(len(work)):
                    nursery.start_soon(run_one, i)
        return [o for o in outcomes if o is not None]

    async def _map(
        self,
        compiled: CompiledPortAppConfig,
        mapped: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]],
    ) -> tuple[EntityChanges, list[MappingIssue]]:
        items = [item for _, updated, deleted in mapped for item in (*updated, *deleted)]
        if exceeds(items, MAP_OFF_LOOP_NODES):
            if self._pool is not None:
                return await self._pool.map(live_event_changes, compiled, mapped)
            return await trio.to_thread.run_sync(
                live_event_changes, compiled, mapped, limiter=self._map_limiter
            )
        await trio.lowlevel.checkpoint()
        return live_event_changes(compiled, mapped)
