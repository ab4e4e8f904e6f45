"""``ComponentsCollector``: the gauges and counters ``/metrics`` reads from an app's components
(pipelines, journal, sink, Port, resyncs) when Prometheus scrapes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._version import __version__
from .relay._source import SourceStatistics

if TYPE_CHECKING:
    from ._app import App


class ComponentsCollector(Collector):
    """Gauges and counters read from the app's components when Prometheus scrapes."""

    def __init__(self, app: App) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        app = self._app
        info = GaugeMetricFamily(
            "ocean_trio_info",
            "This process: version, role, and whether it processes its state folder's events",
            labels=["version", "role", "processing"],
        )
        info.add_metric([__version__, app.settings.role, str(app.processing).lower()], 1)
        yield info
        ready = GaugeMetricFamily("ocean_trio_ready", "1 while /health/ready answers 200")
        ready.add_metric([], 1 if app.readiness() is None else 0)
        yield ready
        yield from self._pipelines()
        yield from self._journal()
        yield from self._sink()
        yield from self._resync()
        yield from self._relay()

    def _pipelines(self) -> Iterator[Metric]:
        gauges = {
            "in_memory": "Pending events held in memory (queued or in flight), by path",
            "backlog": "Pending events in the journal only, paged in as workers free room",
            "queued": "Events waiting for a worker, by path",
            "in_flight": "Events being processed, by path",
        }
        families = {
            name: GaugeMetricFamily(f"ocean_trio_events_{name}", text, labels=["path"])
            for name, text in gauges.items()
        }
        for pipeline in self._app.pipelines.values():
            stats = pipeline.statistics()
            families["in_memory"].add_metric([stats.path], stats.in_memory)
            families["backlog"].add_metric([stats.path], stats.backlog)
            families["queued"].add_metric([stats.path], stats.dispatcher.queued)
            families["in_flight"].add_metric([stats.path], stats.dispatcher.in_flight)
        yield from families.values()

    def _journal(self) -> Iterator[Metric]:
        stats = self._app.journal.statistics()
        yield _gauge(
            "ocean_trio_journal_pending_events", "Events pending in the journal", stats.pending
        )
        yield _gauge(
            "ocean_trio_journal_max_pending_events",
            "maxPendingEvents: beyond it, webhooks are answered 503",
            stats.max_pending,
        )
        for name, text, value in (
            ("appended", "Events appended to the journal by this process", stats.appended),
            ("completed", "Events this process marked finished", stats.completed),
            ("duplicates", "Deliveries refused as duplicates", stats.duplicates),
            ("replayed", "Events replayed (dead letters made pending again)", stats.replayed),
        ):
            yield _counter(f"ocean_trio_journal_{name}", text, value)
        size = _journal_bytes(self._app)
        if size is not None:
            yield _gauge(
                "ocean_trio_journal_size_bytes",
                "The SQLite journal's files on disk (with its write-ahead log)",
                size,
            )

    def _sink(self) -> Iterator[Metric]:
        app = self._app
        stats = app.applier.statistics()
        yield _counter(
            "ocean_trio_sink_writes", "Writes to the catalog sink (batches)", stats.batches
        )
        yield _counter(
            "ocean_trio_sink_changes", "Entity changes written to the sink", stats.changes_applied
        )
        yield _counter("ocean_trio_sink_write_failures", "Sink writes that failed", stats.failures)
        yield _gauge(
            "ocean_trio_sink_waiting_changes", "Changes waiting for a write", stats.waiting
        )
        yield _gauge(
            "ocean_trio_sink_retrying",
            "1 while the sink's writes fail and are retried",
            stats.retrying,
        )
        if app.port is not None:
            port = app.port.statistics()
            yield _counter("ocean_trio_port_requests", "Requests sent to Port's API", port.requests)
            yield _counter("ocean_trio_port_retries", "Port API requests retried", port.retries)
            yield _counter(
                "ocean_trio_port_token_refreshes",
                "Port access tokens fetched",
                port.token_refreshes,
            )

    def _resync(self) -> Iterator[Metric]:
        resyncs = self._app.resyncs
        if resyncs is None:
            return
        current = resyncs.current
        yield _gauge("ocean_trio_resync_running", "1 while a resync runs", current is not None)
        ended = CounterMetricFamily(
            "ocean_trio_resyncs", "Resyncs that ended, by status", labels=["status"]
        )
        for status in ("completed", "failed", "aborted"):
            ended.add_metric([status], resyncs.ended[status])
        yield ended
        if resyncs.last_completed_at is not None:
            yield _gauge(
                "ocean_trio_resync_last_completed_timestamp_seconds",
                "When the last completed resync ended (Unix time)",
                resyncs.last_completed_at,
            )
        last = resyncs.last
        if last is not None and last.finished_at is not None:
            yield _gauge(
                "ocean_trio_resync_last_duration_seconds",
                "How long the last resync ran",
                last.finished_at - last.started_at,
            )
            outcome = GaugeMetricFamily(
                "ocean_trio_resync_last_status",
                "1 for how the last resync ended",
                labels=["status"],
            )
            for name in ("completed", "failed", "aborted"):
                outcome.add_metric([name], 1 if last.status.value == name else 0)
            yield outcome
        state = current or last
        if state is not None:
            labels = ["kind", "index"]
            families = {
                name: GaugeMetricFamily(
                    f"ocean_trio_resync_{name}",
                    f"The running (else the last) resync's {text}, by resource",
                    labels=labels,
                )
                for name, text in (
                    ("items", "raw items fetched"),
                    ("upserted", "entities written"),
                    ("failed", "entities the sink refused"),
                )
            }
            for kind in state.kinds:
                key = [kind.kind, str(kind.index)]
                families["items"].add_metric(key, kind.items)
                families["upserted"].add_metric(key, kind.upserted)
                families["failed"].add_metric(key, kind.failed)
            yield from families.values()

    def _relay(self) -> Iterator[Metric]:
        if self._app.relay_statistics is None:
            return
        stats = self._app.relay_statistics()
        assert isinstance(stats, SourceStatistics)
        yield _gauge(
            "ocean_trio_relay_connected", "1 while connected to the relay", stats.connected
        )
        yield _counter(
            "ocean_trio_relay_events_received", "Events received from the relay", stats.received
        )
        taken = CounterMetricFamily(
            "ocean_trio_relay_events",
            "Events from the relay by what became of them (journaled, duplicate, refused)",
            labels=["result"],
        )
        taken.add_metric(["journaled"], stats.journaled)
        taken.add_metric(["duplicate"], stats.duplicates)
        taken.add_metric(["refused"], stats.refused)
        yield taken


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=float(value))


def _journal_bytes(app: App) -> int | None:
    if app.settings.live_events.journal_type != "sqlite":
        return None
    path = app.settings.journal_path(app.root)
    size = 0
    for suffix in ("", "-wal"):
        try:
            size += os.stat(f"{path}{suffix}").st_size
        except OSError:
            continue
    return size
