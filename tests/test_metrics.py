"""``/metrics`` (Prometheus' text format) and ``/health/ready``'s meaning, on a real server."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from ocean_trio import (
    EventHeaders,
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    WebhookEventRawResults,
)
from ocean_trio.testing import make_settings, serve_integration
from ocean_trio.testing._port_emulator import PortEmulator

from .processors import ItemProcessor
from .test_port_sink import served


class RetryingProcessor(ItemProcessor):
    """Fails ``failures`` times (retryably) before it succeeds; ``never`` always fails."""

    failures: ClassVar[int] = 2

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        return headers.get("x-token") != "wrong"

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if payload.get("never") or self.retry_count < RetryingProcessor.failures:
            raise ConnectionError("upstream flaked")
        return await super().handle_event(payload, resource_config)

    def should_retry(self, error: Exception) -> bool:
        return isinstance(error, ConnectionError)

    def calculate_retry_delay(self) -> float:
        return 0.0


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics answer, by name and labels (parsed by prometheus_client)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_metrics_count_requests_outcomes_retries_and_latency(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", RetryingProcessor)
    settings = make_settings(tmp_path, live_events={"maxBodyBytes": 1000})
    async with serve_integration(integration, settings) as server:
        item = {"item": {"id": "A", "status": "open"}}
        assert (await server.post_event("/webhook", item)).status_code == 202
        assert (await server.post_event("/webhook", {**item, "never": True})).status_code == 202
        rejected = await server.post_event("/webhook", item, headers={"x-token": "wrong"})
        assert rejected.status_code == 202
        bad = await server.client.post("/integration/webhook", content=b"{not json")
        assert bad.status_code == 400
        big = await server.client.post("/integration/webhook", content=b"x" * 2000)
        assert big.status_code == 413
        statuses = sorted(o.status.value for _, o in await server.next_outcomes(3))
        assert statuses == ["dead", "done", "rejected"]

        answer = await server.client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=")
        found = samples(answer.text)

    received = "ocean_trio_webhooks_received_total"
    assert value(found, received, path="/webhook", result="accepted") == 3
    assert value(found, received, path="/webhook", result="invalid_body") == 1
    assert value(found, received, path="/webhook", result="too_large") == 1
    finished = "ocean_trio_events_finished_total"
    for status in ("done", "dead", "rejected"):
        assert value(found, finished, path="/webhook", status=status) == 1
    assert value(found, "ocean_trio_dead_letters_total", path="/webhook") == 1
    # each event runs once per resource of kind item (two): the done event's runs retried
    # twice, the dead one's gave up after their 3 retries (max_retries)
    retries = value(
        found, "ocean_trio_event_retries_total", path="/webhook", processor="RetryingProcessor"
    )
    assert retries == 2 * (2 + RetryingProcessor.max_retries)
    histogram = "ocean_trio_event_latency_seconds_count"
    assert value(found, histogram, path="/webhook", processor="RetryingProcessor") == 3
    assert (
        value(
            found,
            "ocean_trio_event_processing_seconds_count",
            path="/webhook",
            processor="RetryingProcessor",
        )
        == 3
    )
    assert value(found, "ocean_trio_journal_pending_events") == 0
    assert value(found, "ocean_trio_journal_appended_total") == 3
    assert value(found, "ocean_trio_journal_size_bytes") > 0
    assert value(found, "ocean_trio_events_in_flight", path="/webhook") == 0
    assert value(found, "ocean_trio_sink_writes_total") >= 1
    assert value(found, "ocean_trio_ready") == 1
    assert value(found, "process_resident_memory_bytes") > 0
    # no "_created" twin of every counter
    assert not any(name.endswith("_created") for name, _ in found)


async def test_resync_progress_and_last_result(integration_root: Path, tmp_path: Path) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)

    @integration.on_resync("item")
    async def items(kind: str) -> list[dict[str, object]]:
        return [{"id": "A", "status": "open"}, {"id": "B", "status": "done"}]

    async with serve_integration(integration, make_settings(tmp_path)) as server:
        state = await server.resync()
        assert state.status.value == "completed"
        found = samples((await server.client.get("/metrics")).text)

    assert value(found, "ocean_trio_resync_running") == 0
    assert value(found, "ocean_trio_resyncs_total", status="completed") == 1
    assert value(found, "ocean_trio_resync_last_status", status="completed") == 1
    assert value(found, "ocean_trio_resync_last_completed_timestamp_seconds") > 0
    assert value(found, "ocean_trio_resync_items", kind="item", index="0") == 2


async def test_ready_is_503_while_the_sink_fails_and_while_draining(
    integration_root: Path, tmp_path: Path
) -> None:
    emulator = PortEmulator()
    async with served(integration_root, tmp_path, emulator) as server:
        client = server.client
        assert (await client.get("/health/ready")).status_code == 200
        emulator.faults.fail(500, path="/v1/blueprints/item/entities", times=None)
        await server.post_event("/webhook", {"item": {"id": "A", "status": "open"}})
        with trio.fail_after(10):
            # The applier retries on its own schedule: poll its readiness, bounded.
            while (answer := await client.get("/health/ready")).status_code == 200:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert answer.status_code == 503
        # Port's client retries first; once it gives up, the applier does
        assert answer.json()["reason"].startswith(
            (
                "Port's API is failing (retrying): POST /v1/blueprints/item/entities/bulk: HTTP 500",
                "the catalog sink is failing",
            )
        )
        assert samples((await client.get("/metrics")).text)[("ocean_trio_ready", frozenset())] == 0

        emulator.faults.clear()
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        assert (await client.get("/health/ready")).status_code == 200

        server.app.stopping.set()  # what a SIGTERM does first
        answer = await client.get("/health/ready")
        assert answer.status_code == 503
        assert answer.json()["reason"].startswith("stopping")
        assert (await client.get("/health/live")).status_code == 200


async def test_metrics_is_text_even_for_a_browser(integration_root: Path, tmp_path: Path) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        answer = await server.client.get("/metrics", headers={"accept": "text/html"})
    assert answer.status_code == 200
    assert b"ocean_trio_info{" in answer.content
    assert isinstance(answer, httpx.Response)
