"""What a resync needs from a catalog sink: write what it produced, then reconcile.

Both sinks implement it: the local catalog in SQL (what a resync saw is a column, so memory
does not grow with the catalog), Port's API with its owned-entities search.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs

from ..catalog._changes import EntityChanges, WriteOptions
from ._state import Reconciliation


@attrs.frozen
class ResyncRun:
    """The resync a sink is writing for: a unique ``id`` and when it began (Unix time)."""

    id: int
    started_at: float


def deletion_refusal(owned: int, stale: int, threshold: float) -> str | None:
    """Why deleting ``stale`` of ``owned`` entities is refused, or None: Ocean's rule, delete
    only when ``stale / owned <= threshold`` (0 never deletes, 1 always does). Both sinks'
    ``reconcile`` apply it."""
    if not stale:
        return None
    rate = stale / owned
    if rate <= threshold:
        return None
    return (
        f"{stale} of {owned} owned entities ({rate:.0%}) would be deleted, more than"
        f" entityDeletionThreshold {threshold:g}: nothing deleted"
    )


@attrs.frozen
class WriteCounts:
    """What one ``write`` did: entities written, left as they were, refused (and why)."""

    upserted: int = 0
    skipped: int = 0
    failed: int = 0
    failures: tuple[str, ...] = ()


class ResyncWriter(Protocol):
    """One resync's writes into a sink (see ``ResyncTarget.open_resync``)."""

    async def write(self, changes: EntityChanges) -> WriteCounts:
        """Upsert the entities of one batch (``changes.deletes`` is empty for a resync).

        Every entity is recorded as produced by this resync. An entity that a live event
        wrote after the resync began is left as it is (counted ``skipped``): a resync's data
        may be older. A sink may also skip entities that would not change.
        """
        ...

    async def reconcile(self, threshold: float, options: WriteOptions) -> Reconciliation:
        """Delete the owned entities last written before the resync began that it did not
        produce, unless they are more than ``threshold`` of the owned entities that existed
        before it began (then none). ``options``: the mapping's write flags (dependents)."""
        ...


class ResyncTarget(Protocol):
    """A sink a resync can write into."""

    def open_resync(self, run: ResyncRun) -> AbstractAsyncContextManager[ResyncWriter]:
        """The writer of ``run``; whatever it keeps about the resync is dropped on exit."""
        ...
