"""Dead letters: what lands there, and listing, replaying and purging over HTTP and the CLI."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import trio

import ocean_trio._state_wake
from ocean_trio import (
    ConfigError,
    EventHeaders,
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    WebhookEventRawResults,
)
from ocean_trio.live_events._events_cli import run_events_command
from ocean_trio.testing import make_settings, serve_integration

from .processors import ItemProcessor

TOKEN = "admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class FlakyProcessor(ItemProcessor):
    """Fails (non-retryably) while ``broken``; returns the payload's item otherwise."""

    broken: ClassVar[bool] = True

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        return headers.get("x-token") != "wrong"

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if FlakyProcessor.broken:
            raise ValueError("upstream said no")
        return WebhookEventRawResults(updated_raw_results=[payload["item"]], deleted_raw_results=[])


@pytest.fixture(autouse=True)
def _broken() -> None:
    FlakyProcessor.broken = True


def integration(root: Path) -> Integration:
    result = Integration(root)
    result.add_webhook_processor("/webhook", FlakyProcessor)
    return result


def item(identifier: str, **fields: object) -> dict[str, object]:
    return {"item": {"id": identifier, "status": "open", **fields}}


async def test_failed_and_rejected_events_are_kept_and_replayable_over_http(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    async with serve_integration(integration(integration_root), settings) as server:
        await server.post_event("/webhook", item("A"))
        await server.post_event("/webhook", item("B"), headers={"x-token": "wrong"})
        outcomes = [o.status for _, o in await server.next_outcomes(2)]
        assert outcomes == [EventStatus.DEAD, EventStatus.REJECTED]

        client = server.client
        assert (await client.get("/admin/events")).status_code == 401
        listed = (await client.get("/admin/events?status=dead", headers=AUTH)).json()["events"]
        [dead] = listed
        assert dead["payload"] == item("A")
        assert "upstream said no" in dead["error"]
        assert dead["attempts"] == 1
        bad = await client.get("/admin/events?status=lost", headers=AUTH)
        assert bad.status_code == 400
        assert "unknown status 'lost'" in bad.json()["error"]
        for limit in ("0", "1001", "x", "²"):  # "²".isdigit() is true; int("²") fails
            bad = await client.get("/admin/events", params={"limit": limit}, headers=AUTH)
            assert (bad.status_code, bad.json()["error"]) == (
                400,
                "limit must be an integer from 1 to 1000",
            )

        FlakyProcessor.broken = False
        replayed = await client.post("/admin/events/replay", json={"all": True}, headers=AUTH)
        # replayed at the tail of the journal: a new number, the same trace id
        [again] = replayed.json()["seqs"]
        assert again > dead["seq"]
        assert replayed.json() == {
            "replayed": 1,
            "seqs": [again],
            "events": [{"old_seq": dead["seq"], "seq": again, "path": "/webhook"}],
        }
        [(entry, outcome)] = await server.next_outcomes(1)
        assert (entry.seq, entry.event.trace_id) == (again, dead["trace_id"])
        assert outcome.status is EventStatus.DONE
        assert [e["identifier"] for e in await server.catalog.list_entities("item")] == ["A"]

        refused = await client.post("/admin/events/replay", json={"seqs": "x"}, headers=AUTH)
        assert refused.status_code == 400
        purged = await client.post("/admin/events/purge", json={}, headers=AUTH)
        assert purged.json() == {"purged": 1}  # the rejected one
        assert (await client.get("/admin/events?status=rejected", headers=AUTH)).json() == {
            "events": []
        }


async def test_the_admin_api_is_off_without_a_token(integration_root: Path, tmp_path: Path) -> None:
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        response = await server.client.get("/admin/events", headers=AUTH)
        assert response.status_code == 404
        assert "admin API is off" in response.json()["error"]


async def test_items_the_mapping_cannot_take_dead_letter_the_event(
    integration_root: Path, tmp_path: Path
) -> None:
    FlakyProcessor.broken = False
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    mapping.write_text(mapping.read_text().replace('.priority == "high"', ".priority"))
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        await server.post_event("/webhook", item("A", priority="high"))
        [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DEAD
        assert outcome.error is not None
        assert "must give a boolean" in outcome.error
        # the item's other resource was still applied
        assert [e["identifier"] for e in await server.catalog.list_entities("item")] == ["A"]


async def test_the_events_cli(integration_root: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (integration_root / "config.yaml").write_text(f"statePath: {state}\n")
    settings = make_settings(tmp_path)
    async with serve_integration(integration(integration_root), settings) as server:
        await server.post_event("/webhook", item("A"))
        await server.next_outcomes(1)
        await server.app.journal.flush()

    async def cli(*args: str) -> str:
        done = await trio.run_process(
            [sys.executable, "-m", "ocean_trio", "events", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    root = str(integration_root)
    listed = json.loads(await cli("list", root, "--status", "dead", "--json"))["events"]
    assert [e["payload"] for e in listed] == [item("A")]
    assert "upstream said no" in await cli("list", root, "--status", "dead")
    assert "1 event(s) pending again" in await cli("replay", root, "--all")
    assert await cli("list", root, "--status", "dead") == "no events\n"

    FlakyProcessor.broken = False
    async with serve_integration(integration(integration_root), settings) as server:
        for pipeline in server.app.pipelines.values():
            await pipeline.wait_idle()
        assert [e["identifier"] for e in await server.catalog.list_entities("item")] == ["A"]
    assert "0 event(s) purged" in await cli("purge", root)


def test_the_events_cli_refuses_a_memory_journal(integration_root: Path) -> None:
    (integration_root / "config.yaml").write_text("liveEvents:\n  journal:\n    type: memory\n")
    with pytest.raises(ConfigError, match="the journal is in memory"):
        run_events_command("list", integration_root, stdout=io.StringIO(), stderr=io.StringIO())


async def test_a_cli_replay_into_a_running_integration_runs_at_once(
    integration_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the command's poke can tell the running integration (its look every 2 s is off).
    monkeypatch.setattr(ocean_trio._state_wake, "FALLBACK_SECONDS", 3600.0)
    state = tmp_path / "state"
    (integration_root / "config.yaml").write_text(f"statePath: {state}\n")
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        for n in range(3):
            await server.post_event("/webhook", item(f"R-{n}"))
            [(_, outcome)] = await server.next_outcomes(1)
            assert outcome.status is EventStatus.DEAD
        await server.app.journal.flush()
        FlakyProcessor.broken = False
        out = io.StringIO()
        code = await trio.to_thread.run_sync(
            lambda: run_events_command(
                "replay", integration_root, replay_all=True, stdout=out, stderr=io.StringIO()
            )
        )
        assert code == 0, out.getvalue()
        with trio.fail_after(5):
            outcomes = await server.next_outcomes(3)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}


async def test_a_cli_replay_of_ten_times_the_pending_limit_runs_at_the_next_start(
    integration_root: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    (integration_root / "config.yaml").write_text(
        f"statePath: {state}\nliveEvents:\n  maxPendingEvents: 3\n  maxInMemoryEvents: 2\n"
    )
    settings = make_settings(tmp_path)
    async with serve_integration(integration(integration_root), settings) as server:
        for n in range(30):
            await server.post_event("/webhook", item(f"C-{n}"))
            await server.next_outcomes(1)
        await server.app.journal.flush()
    out = io.StringIO()
    code = await trio.to_thread.run_sync(
        lambda: run_events_command(
            "replay", integration_root, replay_all=True, stdout=out, stderr=io.StringIO()
        )
    )
    assert (code, out.getvalue().split(" event(s)")[0]) == (0, "30")

    FlakyProcessor.broken = False
    async with serve_integration(integration(integration_root), settings) as server:
        outcomes = await server.next_outcomes(30)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}
        ids = {e["identifier"] for e in await server.catalog.list_entities("item")}
        assert ids == {f"C-{n}" for n in range(30)}


async def test_an_events_details_show_its_payload_and_headers_with_secrets_masked(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    async with serve_integration(integration(integration_root), settings) as server:
        headers = {
            "x-hub-signature-256": "sha256=abcdef",
            "x-gitlab-token": "glt-secret",
            "authorization": "Bearer upstream",
            "x-github-event": "issues",
        }
        await server.post_event("/webhook", item("A"), headers=headers)
        await server.next_outcomes(1)
        client = server.client
        assert (await client.get("/admin/events/1")).status_code == 401
        details = (await client.get("/admin/events/1", headers=AUTH)).json()["event"]
        missing = await client.get("/admin/events/99", headers=AUTH)
    assert details["status"] == "dead"
    assert details["payload"] == item("A")
    shown = details["headers"]
    assert shown["x-github-event"] == "issues"
    for name in ("x-hub-signature-256", "x-gitlab-token", "authorization"):
        assert shown[name] == "***"
    assert missing.status_code == 404
    assert missing.json()["error"] == "event 99 is not in the journal (unknown, or pruned)"
