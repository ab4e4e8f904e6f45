"""The demo integration end to end: FakeTracker's signed webhooks → processors → mapping → catalog.

The integration runs as ``make run`` runs it (``load_integration``; its ``on_start`` hook
starts the tracker), on a real hypercorn on 127.0.0.1 port 0, the tracker's API on port 0
too. Random changes are off (``senderInterval: 0``): the tests make changes through the
tracker's API, each of which sends one webhook, and wait for its outcome.
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from ocean_trio import EventStatus, load_integration
from ocean_trio.testing import TestServer, make_settings, serve_integration, sign_hmac_sha256

FAKE_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "fake"
SECRET = "test-secret"
SEEDED = 3 + 12  # the initial fill: one project_updated per project, one issue_created per issue
TIMEOUT = 10  # seconds; each test takes well under two


@asynccontextmanager
async def fake_integration(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[TestServer, httpx.AsyncClient]]:
    """The integration and a client for its tracker's API, once the initial fill is applied."""
    # The initial fill by webhook: these tests follow live events from a known start.
    config = {"fakeApiPort": 0, "senderInterval": 0, "webhookSecret": SECRET, "initialFill": True}
    # The demo's own config.yaml, with a free port, no random changes and our state folder.
    settings = make_settings(
        FAKE_ROOT,
        integration={"config": config},
        **{"statePath": str(tmp_path / "state"), **overrides},
    )
    async with serve_integration(load_integration(FAKE_ROOT), settings) as server:
        fill = await server.next_outcomes(SEEDED)
        assert [outcome.status for _, outcome in fill] == [EventStatus.DONE] * SEEDED
        # published by the on_start hook once the tracker's API was bound
        api_url = server.app.settings.integration.config["fake_api_url"]
        async with httpx.AsyncClient(base_url=api_url) as tracker:
            yield server, tracker


async def entities(server: TestServer, blueprint: str) -> dict[str, dict[str, Any]]:
    return {
        e["identifier"]: e
        for e in await server.catalog.list_entities()
        if e["blueprint"] == blueprint
    }


def is_urgent(issue: dict[str, Any]) -> bool:
    return bool(issue["priority"] == "high" and issue["status"] != "done")


async def test_the_tracker_fills_the_catalog_and_changes_follow(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, tracker):
            projects = (await tracker.get("/api/projects")).json()
            issues = (await tracker.get("/api/issues")).json()
            assert (len(projects), len(issues)) == (3, 12)

            in_catalog = await entities(server, "project")
            assert sorted(in_catalog) == sorted(p["key"] for p in projects)
            for project in projects:
                entity = in_catalog[project["key"]]
                assert entity["title"] == project["name"]
                assert entity["properties"] == {
                    "lead": project["lead"],
                    "status": "active",
                    "url": project["self"],
                }
            in_catalog = await entities(server, "issue")
            assert sorted(in_catalog) == sorted(i["key"] for i in issues)
            for issue in issues:
                entity = in_catalog[issue["key"]]
                assert entity["title"] == issue["title"]
                assert entity["properties"] == {
                    "status": issue["status"],
                    "assignee": issue["assignee"],
                    "priority": issue["priority"],
                    "labels": issue["labels"],
                    "updated": issue["updated"],
                    "url": issue["self"],
                }
                assert entity["relations"] == {"project": issue["projectKey"]}
            urgent = await entities(server, "urgentIssue")
            assert sorted(urgent) == sorted(i["key"] for i in issues if is_urgent(i))

            # a change in the tracker: one signed webhook, the fresh issue fetched and mapped
            response = await tracker.patch("/api/issues/10003", json={"title": "Renamed"})
            key = response.json()["key"]
            [(entry, outcome)] = await server.next_outcomes(1)
            assert (outcome.status, outcome.upserts) == (
                EventStatus.DONE,
                1 + is_urgent(response.json()),
            )
            assert entry.event.payload["webhookEvent"] == "issue_updated"
            assert entry.event.headers["x-fake-signature"] == sign_hmac_sha256(
                SECRET, entry.event.body
            )
            assert len(entry.event.headers["x-fake-delivery"]) == 36  # a uuid
            renamed = await server.catalog.get_entity("issue", key)
            assert renamed is not None
            assert renamed["title"] == "Renamed"

            await tracker.patch("/api/projects/OPS", json={"lead": "erin"})
            [(_, outcome)] = await server.next_outcomes(1)
            assert outcome.status is EventStatus.DONE
            project_entity = await server.catalog.get_entity("project", "OPS")
            assert project_entity is not None
            assert project_entity["properties"]["lead"] == "erin"

            created = (await tracker.post("/api/issues", json={"projectKey": "WEB"})).json()
            [(_, outcome)] = await server.next_outcomes(1)
            assert outcome.status is EventStatus.DONE
            assert await server.catalog.get_entity("issue", created["key"]) is not None


def forged_issue_event() -> bytes:
    issue = {"id": "99999", "key": "WEB-999", "projectKey": "WEB", "title": "Forged"}
    return json.dumps({"webhookEvent": "issue_created", "issue": issue}).encode()


async def test_by_default_the_resync_at_start_fills_the_catalog_without_webhooks(
    tmp_path: Path,
) -> None:
    # The demo as `make run` starts it: no initial fill by webhook, the resync brings it all.
    config = {"fakeApiPort": 0, "senderInterval": 0, "webhookSecret": SECRET}
    settings = make_settings(
        FAKE_ROOT, integration={"config": config}, statePath=str(tmp_path / "state")
    )
    async with serve_integration(load_integration(FAKE_ROOT), settings) as server:
        resyncs = server.app.resyncs
        assert resyncs is not None
        with trio.fail_after(TIMEOUT):
            state = resyncs.last or await resyncs.wait_for_next()
        assert state.status == "completed"
        stored = await server.catalog.list_entities()
        assert sum(kind.upserted for kind in state.kinds) == len(stored)
        assert len(await entities(server, "project")) == 3
        assert len(await entities(server, "issue")) == 12
        assert server.app.journal.statistics().appended == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="unsigned"),
        pytest.param({"x-fake-signature": "sha256=" + "0" * 64}, id="wrong-digest"),
        pytest.param(
            {"x-fake-signature": sign_hmac_sha256("not-the-secret", forged_issue_event())},
            id="wrong-secret",
        ),
        pytest.param(
            {"x-fake-signature": sign_hmac_sha256(SECRET, forged_issue_event() + b" ")},
            id="other-body",
        ),
    ],
)
async def test_a_badly_signed_event_is_refused_at_ingress_and_creates_nothing(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, _):
            journaled = server.app.journal.statistics().appended  # the initial fill
            response = await server.post_event("/webhook", forged_issue_event(), headers)
            assert response.status_code == 401  # verified at ingress, before the journal
            assert "X-Fake-Signature" in response.json()["error"]
            assert server.app.journal.statistics().appended == journaled
            assert await server.catalog.get_entity("issue", "WEB-999") is None


async def test_a_redelivery_of_the_tracker_counts_once(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, _):
            body = forged_issue_event()
            headers = {
                "x-fake-signature": sign_hmac_sha256(SECRET, body),
                "x-fake-delivery": "d-1",
            }
            assert (await server.post_event("/webhook", body, headers)).status_code == 202
            again = await server.post_event("/webhook", body, headers)
            assert (again.status_code, again.json()["status"]) == (200, "duplicate")


async def test_a_signed_event_for_an_issue_the_tracker_does_not_have_deletes_it(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, _):
            body = forged_issue_event()
            signature = {"x-fake-signature": sign_hmac_sha256(SECRET, body)}
            await server.post_event("/webhook", body, signature)
            [(_, outcome)] = await server.next_outcomes(1)
            # the tracker answers 404: both issue resources report the issue as deleted
            assert outcome.status is EventStatus.DONE
            assert outcome.upserts == 0
            reference = json.loads(body)["issue"]
            assert [r.results.deleted_raw_results for r in outcome.runs if r.results] == [
                [reference],
                [reference],
            ]


async def test_a_deleted_issue_disappears(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, tracker):
            urgent = {"priority": "high", "status": "todo"}
            key = (await tracker.patch("/api/issues/10001", json=urgent)).json()["key"]
            await server.next_outcomes(1)
            assert await server.catalog.get_entity("urgentIssue", key) is not None

            assert (await tracker.delete("/api/issues/10001")).status_code == 200
            [(entry, outcome)] = await server.next_outcomes(1)
            assert entry.event.payload["webhookEvent"] == "issue_deleted"
            assert (outcome.status, outcome.upserts, outcome.deletes) == (EventStatus.DONE, 0, 2)
            assert await server.catalog.get_entity("issue", key) is None
            assert await server.catalog.get_entity("urgentIssue", key) is None


async def test_an_issue_that_is_no_longer_urgent_leaves_urgent_issues_only(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path) as (server, tracker):
            issue = (
                await tracker.patch(
                    "/api/issues/10005", json={"priority": "high", "status": "todo"}
                )
            ).json()
            [(_, outcome)] = await server.next_outcomes(1)
            assert (outcome.upserts, outcome.deletes) == (2, 0)

            await tracker.patch("/api/issues/10005", json={"priority": "low"})
            [(_, outcome)] = await server.next_outcomes(1)
            # the urgentIssue selector now fails: that entity is deleted, the issue updated
            assert (outcome.status, outcome.upserts, outcome.deletes) == (EventStatus.DONE, 1, 1)
            assert await server.catalog.get_entity("urgentIssue", issue["key"]) is None
            entity = await server.catalog.get_entity("issue", issue["key"])
            assert entity is not None
            assert entity["properties"]["priority"] == "low"

            # one change at a time: the processor fetches the issue as it is when it runs
            await tracker.patch("/api/issues/10005", json={"priority": "high"})
            [(_, outcome)] = await server.next_outcomes(1)
            assert (outcome.upserts, outcome.deletes) == (2, 0)
            await tracker.patch("/api/issues/10005", json={"status": "done"})
            [(_, outcome)] = await server.next_outcomes(1)
            assert (outcome.upserts, outcome.deletes) == (1, 1)
            assert await server.catalog.get_entity("urgentIssue", issue["key"]) is None


async def test_events_of_one_issue_are_applied_in_order_with_four_workers(
    tmp_path: Path,
) -> None:
    ids = ["10002", "10004", "10006", "10008"]
    rounds = 6
    with trio.fail_after(TIMEOUT):
        async with fake_integration(tmp_path, eventWorkersCount=4) as (server, tracker):
            assert server.app.pipelines["/integration/webhook"].statistics().workers == 4
            for n in range(rounds):
                for issue_id in ids:
                    await tracker.patch(f"/api/issues/{issue_id}", json={"title": f"round {n}"})
            outcomes = await server.next_outcomes(rounds * len(ids))

            assert {o.status for _, o in outcomes} == {EventStatus.DONE}
            by_issue: dict[str, list[int]] = collections.defaultdict(list)
            for entry, _ in outcomes:  # completion order
                issue_id = entry.event.payload["issue"]["id"]
                assert entry.event.group_id == issue_id  # the processor's group_key
                by_issue[issue_id].append(entry.seq)
            for issue_id, seqs in by_issue.items():
                assert len(seqs) == rounds, issue_id
                assert seqs == sorted(seqs), f"events of issue {issue_id} finished out of order"
            arrivals: dict[str, list[str]] = collections.defaultdict(list)
            for entry, _ in sorted(outcomes, key=lambda pair: pair[0].seq):
                arrivals[entry.event.payload["issue"]["id"]].append(
                    entry.event.payload["issue"]["title"]
                )
            assert all(
                titles == [f"round {n}" for n in range(rounds)] for titles in arrivals.values()
            )
            for issue_id in ids:
                key = (await tracker.get(f"/api/issues/{issue_id}")).json()["key"]
                entity = await server.catalog.get_entity("issue", key)
                assert entity is not None
                assert entity["title"] == f"round {rounds - 1}"


async def test_main_imports_as_a_package_module_for_hypercorn() -> None:
    """``hypercorn integrations.fake.main:app`` imports main.py as part of the package."""
    code = (
        "import integrations.fake.main as m; "
        "print(type(m.app).__name__, sorted(p.__module__ + '.' + p.__name__ "
        "for p in m.ocean.webhook_processors['/webhook']))"
    )
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [sys.executable, "-c", code], cwd=FAKE_ROOT.parents[1], capture_stdout=True
        )
    assert done.stdout.decode().split(maxsplit=1) == [
        "IntegrationASGI",
        "['integrations.fake.processors.IssueWebhookProcessor', "
        "'integrations.fake.processors.ProjectWebhookProcessor']\n",
    ]
