"""FakeTracker on its own: seeded data, its REST API, and the webhook sender's delivery rules."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

FAKE_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "fake"
# As ``load_integration`` does: the integration's folder is on sys.path, its modules top-level.
if str(FAKE_ROOT) not in sys.path:
    sys.path.insert(0, str(FAKE_ROOT))

import fake_service  # noqa: E402
from processors import verify_signature  # noqa: E402

TIMEOUT = 5  # seconds; no test here does real I/O but the API one


def test_seed_is_deterministic_and_complete() -> None:
    first, second = fake_service.TrackerState(seed=7), fake_service.TrackerState(seed=7)
    assert first.issues() == second.issues()
    assert first.projects() == second.projects()
    assert fake_service.TrackerState(seed=8).issues() != first.issues()
    assert [p["key"] for p in first.projects()] == ["WEB", "API", "OPS"]
    issues = first.issues()
    assert len(issues) == 12
    assert [i["id"] for i in issues] == [str(10001 + n) for n in range(12)]
    assert {i["projectKey"] for i in issues} == {"WEB", "API", "OPS"}
    assert set(issues[0]) == {
        "id",
        "key",
        "projectKey",
        "title",
        "status",
        "assignee",
        "priority",
        "labels",
        "updated",
    }
    fill = first.snapshot_changes()
    assert [c.event for c in fill] == ["project_updated"] * 3 + ["issue_created"] * 12


def test_random_changes_keep_the_data_valid() -> None:
    state = fake_service.TrackerState(seed=7)
    rng = random.Random(1)
    events = [state.random_change(rng) for _ in range(500)]
    assert {c.event for c in events} == {
        "issue_created",
        "issue_updated",
        "issue_deleted",
        "project_updated",
    }
    assert 6 <= len(state.issues()) <= 30
    for change in events:
        assert change.payload()[change.kind] == change.obj


async def test_api_reads_writes_and_announces_changes() -> None:
    with trio.fail_after(TIMEOUT):
        state = fake_service.TrackerState(seed=7)
        state.api_url = "http://tracker.test"
        changes: list[fake_service.Change] = []
        api = fake_service.TrackerAPI(state, changes.append)
        # httpx types ASGI messages as MutableMapping, hypercorn (which serves the API) as its
        # TypedDicts; TrackerAPI takes plain dicts, what both really send.
        transport = httpx.ASGITransport(app=api)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client:
            issue = (await client.get("/api/issues/10001")).json()
            assert issue["key"] == "WEB-1"
            assert issue["self"] == "http://tracker.test/api/issues/10001"
            web = (await client.get("/api/issues", params={"project": "WEB"})).json()
            assert [i["key"] for i in web] == ["WEB-1", "WEB-2", "WEB-3", "WEB-4"]
            assert (await client.get("/api/projects/WEB")).json()["name"] == "Website"

            missing = await client.get("/api/issues/424242")
            assert (missing.status_code, missing.json()) == (
                404,
                {"error": "issue '424242' not found"},
            )
            assert (await client.get("/api/projects/NOPE")).status_code == 404
            bad = await client.patch("/api/issues/10001", json={"priority": "urgent"})
            assert (bad.status_code, bad.json()) == (
                400,
                {"error": "invalid value for 'priority': \"urgent\""},
            )
            assert (
                await client.patch("/api/issues/10001", json={"colour": "red"})
            ).status_code == 400
            assert changes == []  # refused writes announce nothing

            updated = await client.patch("/api/issues/10001", json={"title": "Renamed"})
            assert updated.json()["title"] == "Renamed"
            created = await client.post("/api/issues", json={"projectKey": "OPS", "title": "New"})
            assert (created.status_code, created.json()["key"]) == (201, "OPS-5")
            assert (await client.delete("/api/issues/10002")).status_code == 200
            assert (await client.get("/api/issues/10002")).status_code == 404
            await client.patch("/api/projects/API", json={"lead": "erin"})
        assert [(c.event, c.obj.get("key")) for c in changes] == [
            ("issue_updated", "WEB-1"),
            ("issue_created", "OPS-5"),
            ("issue_deleted", "API-1"),
            ("project_updated", "API"),
        ]


class Receiver:
    """A webhook receiver behind ``httpx.MockTransport``: answers from a script, records what came."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.received: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        assert verify_signature("s3cret", body, request.headers["x-fake-signature"])
        payload = json.loads(body)
        self.received.append((request.headers["x-fake-delivery"], payload["webhookEvent"], payload))
        return httpx.Response(self.answers.pop(0) if self.answers else 202)


def change(n: int) -> fake_service.Change:
    return fake_service.Change("issue_updated", "issue", {"id": str(n), "key": f"WEB-{n}"})


async def target() -> str:
    return "http://integration.test/integration/webhook"


async def test_sender_retries_a_failed_delivery_on_the_next_tick_in_order() -> None:
    with trio.fail_after(TIMEOUT):
        receiver = Receiver([503, 202, 202])
        async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
            sender = fake_service.WebhookSender(client, target, "s3cret")
            async with trio.open_nursery() as nursery:
                await nursery.start(sender.run)
                sender.send_nowait(change(1))
                await trio.testing.wait_all_tasks_blocked()
                assert sender.statistics() == fake_service.SenderStatistics(
                    queued=1, sent=0, dropped=0
                )
                sender.send_nowait(change(2))  # the next tick: the failed one goes first
                await trio.testing.wait_all_tasks_blocked()
                assert sender.statistics() == fake_service.SenderStatistics(
                    queued=0, sent=2, dropped=0
                )
                nursery.cancel_scope.cancel()
        ids = [delivery for delivery, _, _ in receiver.received]
        assert [p["issue"]["key"] for _, _, p in receiver.received] == ["WEB-1", "WEB-1", "WEB-2"]
        assert ids[0] == ids[1] != ids[2]  # a retry keeps its delivery id


async def test_sender_gives_up_after_max_attempts_and_on_client_errors() -> None:
    with trio.fail_after(TIMEOUT):
        receiver = Receiver([500, 500, 400])
        async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
            sender = fake_service.WebhookSender(client, target, "s3cret", max_attempts=2)
            async with trio.open_nursery() as nursery:
                await nursery.start(sender.run)
                sender.send_nowait(change(1))
                await trio.testing.wait_all_tasks_blocked()
                # the next tick: 1 fails a second time and is dropped; a failure ends the tick
                sender.send_nowait(change(2))
                await trio.testing.wait_all_tasks_blocked()
                assert sender.statistics() == fake_service.SenderStatistics(
                    queued=1, sent=0, dropped=1
                )
                # 2 is refused with 400: dropped at once; 3 goes
                sender.send_nowait(change(3))
                await trio.testing.wait_all_tasks_blocked()
                assert sender.statistics() == fake_service.SenderStatistics(
                    queued=0, sent=1, dropped=2
                )
                nursery.cancel_scope.cancel()
        assert [p["issue"]["key"] for _, _, p in receiver.received] == [
            "WEB-1",
            "WEB-1",
            "WEB-2",
            "WEB-3",
        ]


async def test_sender_queue_is_bounded() -> None:
    async def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as client:
        sender = fake_service.WebhookSender(client, target, "s3cret", max_queued=3)
        for n in range(5):
            sender.send_nowait(change(n))
        assert sender.statistics() == fake_service.SenderStatistics(queued=3, sent=0, dropped=2)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (fake_service.sign("s3cret", b'{"a":1}'), True),
        (fake_service.sign("other", b'{"a":1}'), False),
        (fake_service.sign("s3cret", b'{"a":2}'), False),
        ("sha256=", False),
        ("", False),
        (None, False),
    ],
)
def test_processors_verify_what_the_tracker_signs(header: str | None, expected: bool) -> None:
    assert verify_signature("s3cret", b'{"a":1}', header) is expected


def test_config_from_integration_config() -> None:
    config = fake_service.FakeTrackerConfig.from_integration_config(
        {"webhook_secret": "x", "fake_api_port": "0", "sender_interval": "0.5"}
    )
    assert (config.api_port, config.interval, config.seed) == (0, 0.5, 7)
    assert config.initial_fill is False
    for text, expected in (("true", True), ("0", False), (True, True)):
        filled = fake_service.FakeTrackerConfig.from_integration_config(
            {"webhook_secret": "x", "initial_fill": text}
        )
        assert filled.initial_fill is expected
    with pytest.raises(ValueError, match="initialFill must be true or false"):
        fake_service.FakeTrackerConfig.from_integration_config(
            {"webhook_secret": "x", "initial_fill": "sometimes"}
        )
    with pytest.raises(ValueError, match="webhookSecret is required"):
        fake_service.FakeTrackerConfig.from_integration_config({})
    with pytest.raises(ValueError, match="invalid fake tracker settings"):
        fake_service.FakeTrackerConfig.from_integration_config(
            {"webhook_secret": "x", "fake_api_port": "eighty"}
        )
