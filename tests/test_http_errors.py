"""What a client sees when something is wrong, over real HTTP: JSON errors with the right status,
the admin API's answers on numbers it cannot replay, the retry log, and the health counters
after a replay."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio

from ocean_trio import (
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    RetryableError,
    WebhookEventRawResults,
)
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .processors import ItemProcessor

TOKEN = "admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DEEP = b"[" * 5000 + b"]" * 5000  # far past any depth limit, and past Python's recursion limit


class BrokenWhileToldProcessor(ItemProcessor):
    """Fails (non-retryably) items whose status is ``bad`` while ``broken``."""

    broken: ClassVar[bool] = True

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if BrokenWhileToldProcessor.broken and payload["item"]["status"] == "bad":
            raise ValueError(f"item {payload['item']['id']} refused")
        return await super().handle_event(payload, resource_config)


@pytest.fixture(autouse=True)
def _broken() -> None:
    BrokenWhileToldProcessor.broken = True


def integration(root: Path) -> Integration:
    result = Integration(root)
    result.add_webhook_processor("/webhook", BrokenWhileToldProcessor)

    @result.router.post("/legacy")
    async def legacy(data: dict[str, Any]) -> dict[str, Any]:
        return {"got": data}

    return result


async def post_items(server: TestServer, *items: dict[str, object]) -> dict[str, int]:
    """Post one event per item; wait until all have finished; their numbers by item id."""
    for item in items:
        assert (await server.post_event("/webhook", {"item": item})).status_code == 202
    return {
        entry.event.payload["item"]["id"]: entry.seq
        for entry, _ in await server.next_outcomes(len(items))
    }


# --- 5. JSON errors -------------------------------------------------------------------------


async def test_unknown_paths_and_wrong_methods_answer_json(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    with trio.fail_after(30):
        async with serve_integration(integration(integration_root), settings) as server:
            client = server.client
            for method, path, headers in [
                ("GET", "/nope", {}),
                ("POST", "/integration/nope", {}),
                ("GET", "/admin/nope", {}),
                ("GET", "/admin/nope", AUTH),
            ]:
                response = await client.request(method, path, headers=headers, json={})
                assert response.status_code == 404, (method, path)
                assert response.headers["content-type"] == "application/json"
                assert response.json() == {"error": f"nothing at {path}"}

            wrong = await client.post("/health/ready", json={})
            assert wrong.status_code == 405
            assert wrong.headers["content-type"] == "application/json"
            assert wrong.json() == {"error": "method POST not allowed on /health/ready"}
            assert "GET" in wrong.headers["allow"].split(", ")

            legacy = await client.get("/integration/legacy")
            assert legacy.status_code == 405
            assert legacy.json() == {"error": "method GET not allowed on /integration/legacy"}
            assert "POST" in legacy.headers["allow"].split(", ")


async def test_the_admin_replay_api_names_what_it_could_not_replay(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    with trio.fail_after(30):
        async with serve_integration(integration(integration_root), settings) as server:
            seqs = await post_items(
                server, {"id": "D", "status": "bad"}, {"id": "OK", "status": "open"}
            )
            dead, done = seqs["D"], seqs["OK"]

            async def replay(numbers: list[int]) -> tuple[int, dict[str, Any]]:
                answer = await server.client.post(
                    "/admin/events/replay", json={"seqs": numbers}, headers=AUTH
                )
                return answer.status_code, answer.json()

            assert await replay([999]) == (
                404,
                {"error": "event 999 does not exist", "replayed": 0, "seqs": [], "events": []},
            )
            assert await replay([done]) == (
                409,
                {
                    "error": f"event {done} is done, not dead or rejected",
                    "replayed": 0,
                    "seqs": [],
                    "events": [],
                },
            )

            # one replayable among them: it is replayed, and the answer says so with the error
            BrokenWhileToldProcessor.broken = False
            status, body = await replay([dead, done])
            assert status == 409
            [again] = body["seqs"]
            assert body == {
                "error": f"event {done} is done, not dead or rejected",
                "replayed": 1,
                "seqs": [again],
                "events": [{"old_seq": dead, "seq": again, "path": "/webhook"}],
            }
            [(entry, outcome)] = await server.next_outcomes(1)
            assert (entry.seq, outcome.status) == (again, EventStatus.DONE)


async def test_a_deeply_nested_body_is_a_400_everywhere(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    with trio.fail_after(30):
        async with serve_integration(integration(integration_root), settings) as server:
            client = server.client
            for path, headers in [
                ("/admin/events/replay", AUTH),
                ("/admin/events/purge", AUTH),
                ("/integration/legacy", {}),
                ("/integration/webhook", {}),
            ]:
                response = await client.post(
                    path, content=DEEP, headers={"content-type": "application/json", **headers}
                )
                assert response.status_code == 400, (path, response.text)
                assert "nested deeper than" in response.json()["error"], path

            # the legacy route still works with a good body
            fine = await client.post("/integration/legacy", json={"a": [1]})
            assert fine.json() == {"got": {"a": [1]}}


# --- 7. the retry log ------------------------------------------------------------------------


ONE_RESOURCE = """
resources:
  - kind: item
    selector:
      query: 'true'
    port:
      entity:
        mappings:
          identifier: .id
          blueprint: '"item"'
"""


class RetryingProcessor(ItemProcessor):
    """``handle_event`` by item id: ``plain`` raises a ValueError, ``flaky`` a RetryableError on
    its first attempt only, ``hopeless`` a RetryableError on every attempt."""

    max_retries = 2
    initial_retry_delay_seconds = 0.0  # retries at once: the log is the point, not the wait

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        identifier = payload["item"]["id"]
        if identifier == "plain":
            raise ValueError("plain refused")
        if identifier == "hopeless" or (identifier == "flaky" and self.retry_count == 0):
            raise RetryableError(f"{identifier} unavailable")
        return await super().handle_event(payload, resource_config)


async def test_the_retry_log_says_whether_a_failure_is_retried(
    integration_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    mapping.write_text(ONE_RESOURCE)  # one run per event
    source = Integration(integration_root)
    source.add_webhook_processor("/webhook", RetryingProcessor)
    caplog.set_level(logging.WARNING, logger="ocean_trio.live_events")
    with trio.fail_after(30):
        async with serve_integration(source, make_settings(tmp_path)) as server:
            for identifier in ["plain", "flaky", "hopeless"]:
                await post_items(server, {"id": identifier, "status": "open"})

    def attempts(identifier: str) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("RetryingProcessor attempt")
            and f"{identifier} " in r.getMessage()
        ]

    assert attempts("plain") == [
        "RetryingProcessor attempt 1/3 failed: ValueError('plain refused');"
        " not retried (not a retryable error)"
    ]
    assert attempts("flaky") == [
        "RetryingProcessor attempt 1/3 failed: RetryableError('flaky unavailable'); retrying"
    ]
    assert attempts("hopeless") == [
        "RetryingProcessor attempt 1/3 failed: RetryableError('hopeless unavailable'); retrying",
        "RetryingProcessor attempt 2/3 failed: RetryableError('hopeless unavailable'); retrying",
        "RetryingProcessor attempt 3/3 failed: RetryableError('hopeless unavailable');"
        " not retried (no attempts left)",
    ]


# --- 8. health counters after a replay -------------------------------------------------------


async def test_health_counters_agree_after_a_replay(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    n = 3
    with trio.fail_after(30):
        async with serve_integration(integration(integration_root), settings) as server:
            bad: list[dict[str, object]] = [{"id": f"I-{i}", "status": "bad"} for i in range(n)]
            await post_items(server, *bad)
            BrokenWhileToldProcessor.broken = False
            replayed = await server.client.post(
                "/admin/events/replay", json={"all": True}, headers=AUTH
            )
            assert replayed.json()["replayed"] == n
            outcomes = await server.next_outcomes(n)
            assert [o.status for _, o in outcomes] == [EventStatus.DONE] * n

            health = (await server.client.get("/health/ready")).json()

    assert health["journal"]["pending"] == 0
    [pipeline] = health["live_events"].values()
    assert (pipeline["backlog"], pipeline["in_memory"]) == (0, 0)
    assert pipeline["accepted"] == n  # the webhooks; their replays are the journal's
    assert health["journal"]["replayed"] == n
    assert pipeline["outcomes"] == {"dead": n, "done": n}
