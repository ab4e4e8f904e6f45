"""``EventMonitor``: what ingress and pipelines report as events arrive and finish.

Metrics and the live feed implement it; ``Monitors`` fans out to several. The calls are
synchronous and must not block: they run on the event loop in the hot path of every event.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from ._journal import JournalEntry
from ._outcome import EventOutcome


class Received(enum.StrEnum):
    """How ingress answered one webhook request (``accepted`` is the 202)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    BAD_SIGNATURE = "bad_signature"
    INVALID_BODY = "invalid_body"
    TOO_LARGE = "too_large"
    JOURNAL_FULL = "journal_full"
    JOURNAL_UNAVAILABLE = "journal_unavailable"
    SHUTTING_DOWN = "shutting_down"
    METHOD_NOT_ALLOWED = "method_not_allowed"


class EventMonitor(Protocol):
    """Told about every webhook request, journaled event and finished event of a process."""

    def received(self, path: str, result: Received) -> None:
        """Ingress answered a request on ``path`` (a pipeline's path, e.g. ``/webhook``)."""

    def accepted(self, entry: JournalEntry) -> None:
        """This process journaled ``entry`` (it is pending)."""

    def finished(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        """``entry`` ended with ``outcome`` after ``seconds`` of processing here."""


class Monitors:
    """An ``EventMonitor`` telling each of several."""

    def __init__(self, monitors: Iterable[EventMonitor] = ()) -> None:
        self._monitors = list(monitors)

    def add(self, monitor: EventMonitor) -> None:
        self._monitors.append(monitor)

    def received(self, path: str, result: Received) -> None:
        for monitor in self._monitors:
            monitor.received(path, result)

    def accepted(self, entry: JournalEntry) -> None:
        for monitor in self._monitors:
            monitor.accepted(entry)

    def finished(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        for monitor in self._monitors:
            monitor.finished(entry, outcome, seconds)
