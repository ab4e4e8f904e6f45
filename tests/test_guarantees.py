"""The guarantees of docs/guarantees.md on a real hypercorn: verify before ack, dedup, replay."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio

from ocean_trio import (
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    WebhookEventRawResults,
)
from ocean_trio.catalog._local import LocalCatalog
from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._signatures import GitHubSignature
from ocean_trio.live_events._sqlite_journal import SqliteJournal
from ocean_trio.testing import make_settings, serve_integration, sign_hmac_sha256

from .processors import ItemProcessor as BaseItemProcessor

SECRET = "s3cret"


class ItemProcessor(BaseItemProcessor):
    """Returns the payload's item; counts what reached it; can be held at a gate."""

    seen: ClassVar[list[str]] = []
    gate: ClassVar[trio.Event | None] = None
    broken: ClassVar[bool] = False
    started: ClassVar[trio.Event] = trio.Event()  # set once two runs have started

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        ItemProcessor.seen.append(payload["item"]["id"])
        if len(ItemProcessor.seen) >= 2:
            ItemProcessor.started.set()
        if ItemProcessor.gate is not None:
            await ItemProcessor.gate.wait()
        if ItemProcessor.broken:
            raise ValueError("upstream is down")
        return WebhookEventRawResults(updated_raw_results=[payload["item"]], deleted_raw_results=[])


@pytest.fixture(autouse=True)
def _reset() -> None:
    ItemProcessor.seen = []
    ItemProcessor.gate = None
    ItemProcessor.broken = False
    ItemProcessor.started = trio.Event()


def integration(root: Path, *, verified: bool = False) -> Integration:
    result = Integration(root)
    result.add_webhook_processor("/webhook", ItemProcessor)
    if verified:
        result.add_webhook_verifier("/webhook", GitHubSignature(SECRET))
    return result


def item(identifier: str) -> dict[str, Any]:
    return {"item": {"id": identifier, "title": identifier, "status": "open"}}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Hub-Signature-256"),
        ({"x-hub-signature-256": "sha256=" + "0" * 64}, "X-Hub-Signature-256"),
        ({"x-hub-signature-256": "garbage"}, "X-Hub-Signature-256"),
    ],
)
async def test_a_bad_signature_is_401_and_never_reaches_a_processor(
    integration_root: Path, tmp_path: Path, headers: dict[str, str], message: str
) -> None:
    app_integration = integration(integration_root, verified=True)
    async with serve_integration(app_integration, make_settings(tmp_path)) as server:
        response = await server.post_event("/webhook", item("A"), headers=headers)
        assert response.status_code == 401
        assert message in response.json()["error"]
        good = json.dumps(item("B")).encode()
        signed = {"x-hub-signature-256": sign_hmac_sha256(SECRET, good)}
        assert (await server.post_event("/webhook", good, headers=signed)).status_code == 202
        [(entry, _)] = await server.next_outcomes(1)
        assert entry.event.payload == item("B")
        assert ItemProcessor.seen == ["B", "B"]  # one run per resource of kind item
        assert [r.event.payload for r in await server.app.journal.records()] == [item("B")]


async def test_a_verifier_from_the_settings(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        liveEvents={"webhooks": {"/webhook": {"verifier": {"type": "gitlab", "token": "tok"}}}},
    )
    async with serve_integration(integration(integration_root), settings) as server:
        wrong = await server.post_event("/webhook", item("A"), headers={"x-gitlab-token": "no"})
        assert wrong.status_code == 401
        right = await server.post_event("/webhook", item("A"), headers={"x-gitlab-token": "tok"})
        assert right.status_code == 202


async def test_a_repeated_delivery_is_acknowledged_and_processed_once(
    integration_root: Path, tmp_path: Path
) -> None:
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        headers = {"x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
        first = await server.post_event("/webhook", item("A"), headers=headers)
        again = await server.post_event("/webhook", item("A"), headers=headers)
        assert first.status_code == 202
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate", "trace_id": first.json()["trace_id"]}
        other = await server.post_event("/webhook", item("B"), headers={"webhook-id": "msg_1"})
        assert other.status_code == 202
        await server.next_outcomes(2)
        assert sorted(ItemProcessor.seen) == ["A", "A", "B", "B"]  # two resources each
    # and across a restart (the SQLite journal is the default)
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        again = await server.post_event("/webhook", item("A"), headers=headers)
        assert again.json()["status"] == "duplicate"


async def test_a_configured_delivery_id_header(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, liveEvents={"webhooks": {"/webhook": {"deliveryIdHeader": "X-Request-Id"}}}
    )
    async with serve_integration(integration(integration_root), settings) as server:
        headers = {"x-request-id": "r-1"}
        assert (await server.post_event("/webhook", item("A"), headers=headers)).status_code == 202
        assert (await server.post_event("/webhook", item("A"), headers=headers)).status_code == 200
        # the default headers no longer count on this path
        github = {"x-github-delivery": "g-1"}
        assert (await server.post_event("/webhook", item("B"), headers=github)).status_code == 202
        assert (await server.post_event("/webhook", item("B"), headers=github)).status_code == 202


async def test_unfinished_events_run_after_a_restart_in_order(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, maxWaitSecondsBeforeShutdown=0.2)
    ItemProcessor.gate = trio.Event()  # never set: the events are still running at shutdown
    async with serve_integration(integration(integration_root), settings) as server:
        for name in ("A", "B"):
            assert (await server.post_event("/webhook", item(name))).status_code == 202
        with trio.fail_after(10):
            await ItemProcessor.started.wait()  # A's two runs started; B waits (one worker)
    ItemProcessor.gate = None
    ItemProcessor.seen = []
    async with serve_integration(integration(integration_root), settings) as server:
        for pipeline in server.app.pipelines.values():
            await pipeline.wait_idle()
        assert ItemProcessor.seen == ["A", "A", "B", "B"]  # replayed in arrival order
        ids = [e["identifier"] for e in await server.catalog.list_entities("item")]
        assert ids == ["A", "B"]
        await server.app.journal.flush()  # completions are written behind the workers
        assert await server.app.journal.pending_counts() == {}


async def test_a_catalog_outage_delays_events_and_loses_none(
    integration_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = 2
    real_apply = LocalCatalog.apply

    async def flaky_apply(self: LocalCatalog, batch: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise sqlite3.OperationalError("database is locked")
        await real_apply(self, batch)

    monkeypatch.setattr(LocalCatalog, "apply", flaky_apply)
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        assert (await server.post_event("/webhook", item("A"))).status_code == 202
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        assert failures == 0
        assert [e["identifier"] for e in await server.catalog.list_entities("item")] == ["A"]
        assert await server.app.journal.records(EventStatus.DEAD) == []


async def test_a_journal_that_cannot_write_answers_503_and_recovers(
    integration_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = 1
    real_write = SqliteJournal._write_sync

    def failing_write(self: SqliteJournal, appends: Any, completes: Any) -> tuple[int, int]:
        nonlocal failures
        if failures and appends:
            failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real_write(self, appends, completes)

    monkeypatch.setattr(SqliteJournal, "_write_sync", failing_write)
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        refused = await server.post_event("/webhook", item("A"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert "could not be recorded" in refused.json()["error"]
        assert (await server.post_event("/webhook", item("A"))).status_code == 202
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        assert server.app.journal.statistics().pending == 0


async def test_a_start_up_backlog_ten_times_the_pending_limit_is_replayed(
    integration_root: Path, tmp_path: Path
) -> None:
    # A previous run (or a CLI replay) left 100 pending events, in 100 groups, in a journal
    # whose limit is 10: all of them come back, a window at a time, and new events are
    # refused (503) while the journal is over its limit, never lost.
    settings = make_settings(tmp_path, liveEvents={"maxPendingEvents": 10, "maxInMemoryEvents": 5})
    path = settings.journal_path(integration_root)
    async with SqliteJournal.open(path, max_pending=1000) as old, trio.open_nursery() as nursery:
        await nursery.start(old.run)
        for n in range(100):
            body = json.dumps(item(f"B-{n}")).encode()
            event = WebhookEvent.from_body("/webhook", body, {}, {}, group_id=f"B-{n}")
            await old.append(event, lambda entry: None)
        nursery.cancel_scope.cancel()
    ItemProcessor.gate = trio.Event()  # held until the start-up state is checked
    async with serve_integration(integration(integration_root), settings) as server:
        assert server.app.journal.statistics().pending == 100
        refused = await server.post_event("/webhook", item("late"))
        assert refused.status_code == 503
        ItemProcessor.gate.set()
        outcomes = await server.next_outcomes(100)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}
        stats = server.app.pipelines["/integration/webhook"].statistics()
        assert (stats.backlog, stats.in_memory) == (0, 0)
        ids = {e["identifier"] for e in await server.catalog.list_entities("item")}
        assert ids == {f"B-{n}" for n in range(100)}
        assert (await server.post_event("/webhook", item("late"))).status_code == 202


async def test_replaying_ten_times_the_pending_limit_of_dead_letters(
    integration_root: Path, tmp_path: Path
) -> None:
    ItemProcessor.broken = True
    settings = make_settings(
        tmp_path,
        admin={"token": "t"},
        liveEvents={"maxPendingEvents": 10, "maxInMemoryEvents": 5},
    )
    async with serve_integration(integration(integration_root), settings) as server:
        for n in range(100):  # one at a time: the journal never holds more than one pending
            await server.post_event("/webhook", item(f"D-{n}"))
            [(_, outcome)] = await server.next_outcomes(1)
            assert outcome.status is EventStatus.DEAD
        ItemProcessor.broken = False
        response = await server.client.post(
            "/admin/events/replay", json={"all": True}, headers={"authorization": "Bearer t"}
        )
        assert (response.status_code, response.json()["replayed"]) == (200, 100)
        outcomes = await server.next_outcomes(100)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}
        health = (await server.client.get("/health/ready")).json()
        assert health["journal"]["pending"] == 0
        assert health["live_events"]["/integration/webhook"]["accepted"] == 100  # webhooks
        assert health["journal"]["replayed"] == 100
        assert health["live_events"]["/integration/webhook"]["outcomes"] == {
            "dead": 100,
            "done": 100,
        }
        ids = {e["identifier"] for e in await server.catalog.list_entities("item")}
        assert ids == {f"D-{n}" for n in range(100)}
