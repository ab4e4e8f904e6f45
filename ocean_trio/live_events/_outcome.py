"""``EventOutcome``: how the processing of one live event ended; ``Prepared``: an event
processed up to its write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from ._journal import EventStatus
from ._run import RunOutcome

if TYPE_CHECKING:
    from ..catalog._changes import EntityChanges
    from ..mapping._mapper import MappingIssue


@attrs.frozen
class EventOutcome:
    """How one event ended: its status, every run, what was applied and what mapping reported."""

    status: EventStatus
    runs: tuple[RunOutcome, ...] = ()
    upserts: int = 0
    deletes: int = 0
    mapping_issues: tuple[MappingIssue, ...] = ()
    error: str | None = None


@attrs.frozen
class Prepared:
    """An event processed up to its write: ``finish()`` applies ``changes`` and gives the outcome.

    The split is where a pipeline frees its worker: waiting for the write (batched with other
    events' by the applier) does not hold one. Without ``changes``, ``outcome`` is final.
    """

    outcome: EventOutcome
    changes: EntityChanges | None = None
    apply: Callable[[EntityChanges], Awaitable[None]] | None = None

    @property
    def writes(self) -> bool:
        """Whether ``finish`` has a write to wait for."""
        return bool(self.changes) and self.apply is not None

    async def finish(self) -> EventOutcome:
        """Apply the changes; the outcome, or a dead letter naming the write's error."""
        if self.changes is None or self.apply is None:
            await trio.lowlevel.checkpoint()
            return self.outcome
        try:
            await self.apply(self.changes)
        except Exception as error:
            runs = self.outcome.runs
            return EventOutcome(EventStatus.DEAD, runs, error=f"apply failed: {error!r}")
        return self.outcome
