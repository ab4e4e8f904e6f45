"""Resync values: where a resync stands, kind by kind, and what reconciliation did.

What ``GET /resync`` shows and what is reported to Port's resync state (Ocean's statuses
``running``, ``completed``, ``failed``, ``aborted``).
"""

from __future__ import annotations

import enum
import time
from typing import Any

import attrs


class ResyncStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


@attrs.define
class KindProgress:
    """One resource of the mapping (``index``: its position in ``resources``) in one resync."""

    kind: str
    index: int
    items: int = 0  # raw items the handlers returned
    upserted: int = 0  # entities written
    skipped: int = 0  # entities left as they were: unchanged, or newer from a live event
    failed: int = 0  # entities the sink refused
    errors: list[str] = attrs.field(factory=list)
    started_at: float | None = None
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "items": self.items,
            "upserted": self.upserted,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": list(self.errors),
            "seconds": _seconds(self.started_at, self.finished_at),
        }


@attrs.frozen
class Reconciliation:
    """What deleting stale entities did (or why it did not)."""

    owned: int  # entities the integration owned that existed before the resync began
    stale: int  # of those, last written before it began and not produced by it
    deleted: int
    skipped_reason: str | None = None  # e.g. over the threshold; None when it deleted

    def to_json(self) -> dict[str, Any]:
        return {
            "owned": self.owned,
            "stale": self.stale,
            "deleted": self.deleted,
            "skipped_reason": self.skipped_reason,
        }


@attrs.define
class ResyncState:
    """One resync: why it ran, where it stands, each kind's figures, the reconciliation."""

    id: int
    reason: str
    started_at: float = attrs.field(factory=time.time)
    status: ResyncStatus = ResyncStatus.RUNNING
    finished_at: float | None = None
    kinds: list[KindProgress] = attrs.field(factory=list)
    reconciliation: Reconciliation | None = None
    error: str | None = None

    @property
    def errors(self) -> list[str]:
        """Every kind's errors, and the resync's own."""
        found = [f"{k.kind}: {e}" for k in self.kinds for e in k.errors]
        return found + ([self.error] if self.error else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "status": self.status.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": _seconds(self.started_at, self.finished_at),
            "kinds": [k.to_json() for k in self.kinds],
            "reconciliation": None
            if self.reconciliation is None
            else self.reconciliation.to_json(),
            "error": self.error,
        }


def _seconds(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return round((end if end is not None else time.time()) - start, 3)
