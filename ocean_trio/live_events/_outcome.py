"""``EventOutcome``: how the processing of one live event ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._journal import EventStatus
from ._run import RunOutcome

if TYPE_CHECKING:
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
