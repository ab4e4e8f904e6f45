"""``Metrics``: the process's Prometheus metrics, served at ``/metrics`` in the text format.

Counters and histograms are updated as events arrive and finish (``Metrics`` is an
``EventMonitor``); gauges and the components' own counters (journal, sink, Port, resync)
are read from their statistics when Prometheus scrapes (``_metrics_components``). Each app
has a registry of its own, so several apps in one process (tests) never share series.
Names: docs/operations.md.
"""

from __future__ import annotations

import time

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

from .live_events._journal import JournalEntry
from .live_events._monitor import Received
from .live_events._outcome import EventOutcome

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# Without this, every counter and histogram child gets a "_created" twin (its creation time):
# twice the series for what no dashboard reads. A process-wide switch of prometheus_client.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds: a processor that answers from memory (a millisecond) to one stuck on a slow API
# (the 90 s deadline).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 90)

NO_PROCESSOR = "none"  # the processor label of an event no processor accepted


class Metrics:
    """The metrics of one running app; ``render()`` is the ``/metrics`` answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds…: read from
        # /proc at scrape time (nothing on platforms without it).
        prometheus_client.ProcessCollector(registry=self.registry)
        self._received = Counter(
            "ocean_trio_webhooks_received",
            "Webhook requests by path and how ingress answered them (accepted is the 202;"
            " the others are refusals, by reason)",
            ["path", "result"],
            registry=self.registry,
        )
        self._journaled = Counter(
            "ocean_trio_events_accepted",
            "Events this process journaled, by path",
            ["path"],
            registry=self.registry,
        )
        self._finished = Counter(
            "ocean_trio_events_finished",
            "Events processed here, by path and outcome (done, no_match, rejected, dead)",
            ["path", "status"],
            registry=self.registry,
        )
        self._dead = Counter(
            "ocean_trio_dead_letters",
            "Events that became dead letters, by path",
            ["path"],
            registry=self.registry,
        )
        self._retries = Counter(
            "ocean_trio_event_retries",
            "handle_event calls retried, by path and processor",
            ["path", "processor"],
            registry=self.registry,
        )
        self._processing = Histogram(
            "ocean_trio_event_processing_seconds",
            "Time from an event's start to its entities applied, by path and processor",
            ["path", "processor"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._latency = Histogram(
            "ocean_trio_event_latency_seconds",
            "Time from the webhook's arrival (POST) to its event finished and applied,"
            " by path and processor",
            ["path", "processor"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def register(self, collector: Collector) -> None:
        """Add metrics read at scrape time."""
        self.registry.register(collector)

    def render(self) -> bytes:
        """Every metric, in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)

    # --- EventMonitor ------------------------------------------------------------------------

    def received(self, path: str, result: Received) -> None:
        self._received.labels(path, result.value).inc()

    def accepted(self, entry: JournalEntry) -> None:
        self._journaled.labels(entry.event.path).inc()

    def finished(self, entry: JournalEntry, outcome: EventOutcome, seconds: float) -> None:
        path = entry.event.path
        self._finished.labels(path, outcome.status.value).inc()
        if outcome.status.value == "dead":
            self._dead.labels(path).inc()
        latency = max(0.0, time.time() - entry.event.received_at)
        processors = {run.processor for run in outcome.runs} or {NO_PROCESSOR}
        for processor in processors:
            self._processing.labels(path, processor).observe(seconds)
            self._latency.labels(path, processor).observe(latency)
        for run in outcome.runs:
            if run.attempts > 1:
                self._retries.labels(path, run.processor).inc(run.attempts - 1)
