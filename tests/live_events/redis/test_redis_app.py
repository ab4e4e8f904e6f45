"""The redis journal inside a running integration: Redis stopped mid-run (503s, nothing lost,
recovery when it returns), dead letters and replay through the admin API."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import trio

from ocean_trio import EventStatus, Integration, ResourceConfig, WebhookEventRawResults
from ocean_trio.live_events._events_cli import run_events_command
from ocean_trio.live_events._journal import JournalEntry
from ocean_trio.testing import TestServer, make_settings, serve_integration

from ...processors import ItemProcessor
from .conftest import RedisServer

TOKEN = "admin"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class GatedProcessor(ItemProcessor):
    """Waits for ``gate`` (when set) before handling; fails while ``broken``."""

    gate: ClassVar[trio.Event | None] = None
    broken: ClassVar[bool] = False

    async def handle_event(
        self, payload: dict[str, Any], resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if GatedProcessor.gate is not None:
            await GatedProcessor.gate.wait()
        if GatedProcessor.broken:
            raise ValueError("upstream said no")
        return await super().handle_event(payload, resource_config)


def integration(root: Path) -> Integration:
    GatedProcessor.gate = None
    GatedProcessor.broken = False
    result = Integration(root)
    result.add_webhook_processor("/webhook", GatedProcessor)
    return result


def settings(tmp_path: Path, redis: RedisServer) -> Any:
    return make_settings(
        tmp_path,
        admin={"token": TOKEN},
        eventListener={"type": "WEBHOOKS_ONLY"},
        liveEvents={
            "journal": {"type": "redis"},
            "redis": {"url": redis.url, "leaseSeconds": 0.6, "blockMs": 50},
        },
    )


def item(identifier: str) -> dict[str, Any]:
    return {"item": {"id": identifier, "title": identifier, "status": "open"}}


def ids(outcomes: list[tuple[JournalEntry, Any]]) -> set[str]:
    return {json.loads(entry.event.body)["item"]["id"] for entry, _ in outcomes}


async def catalog_ids(server: TestServer) -> set[str]:
    return {e["identifier"] for e in await server.catalog.list_entities("item")}


async def test_redis_stopped_mid_run_answers_503_loses_nothing_and_recovers(
    integration_root: Path, tmp_path: Path, durable_redis_server: RedisServer
) -> None:
    redis = durable_redis_server
    built = integration(integration_root)
    async with serve_integration(built, settings(tmp_path, redis)) as server:
        GatedProcessor.gate = trio.Event()  # held: the events wait in Redis, unacknowledged
        for n in range(5):
            assert (await server.post_event("/webhook", item(f"A-{n}"))).status_code == 202
        redis.stop()  # kill -9
        refused = await server.post_event("/webhook", item("B"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert "could not be recorded" in refused.json()["error"]
        GatedProcessor.gate.set()  # their writes go on; their acknowledgements wait for Redis
        redis.start()
        with trio.fail_after(20):
            while True:  # the sender's retry, once Redis is back
                answer = await server.post_event("/webhook", item("B"))
                if answer.status_code == 202:
                    break
                await trio.sleep(0.1)
            outcomes = await server.next_outcomes(6)
        assert ids(outcomes) >= {f"A-{n}" for n in range(5)} | {"B"}
        assert {f"A-{n}" for n in range(5)} | {"B"} <= await catalog_ids(server)
        await server.app.journal.flush()
        assert server.app.journal.statistics().pending == 0


async def test_dead_letters_over_the_admin_api_on_redis(
    integration_root: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    built = integration(integration_root)
    async with serve_integration(built, settings(tmp_path, redis_server)) as server:
        GatedProcessor.broken = True
        for n in range(3):
            await server.post_event("/webhook", item(f"D-{n}"))
        outcomes = await server.next_outcomes(3)
        assert {o.status for _, o in outcomes} == {EventStatus.DEAD}
        await server.app.journal.flush()
        listed = await server.client.get("/admin/events?status=dead", headers=AUTH)
        dead = listed.json()["events"]
        assert sorted(e["payload"]["item"]["id"] for e in dead) == ["D-0", "D-1", "D-2"]
        assert all("upstream said no" in e["error"] for e in dead)
        GatedProcessor.broken = False
        replayed = await server.client.post(
            "/admin/events/replay", json={"all": True}, headers=AUTH
        )
        assert replayed.json()["replayed"] == 3
        with trio.fail_after(10):
            outcomes = await server.next_outcomes(3)
        assert {o.status for _, o in outcomes} == {EventStatus.DONE}
        assert await catalog_ids(server) == {"D-0", "D-1", "D-2"}
        listed = await server.client.get("/admin/events?status=dead", headers=AUTH)
        assert listed.json()["events"] == []


async def test_the_events_cli_lists_replays_and_purges_redis_dead_letters(
    integration_root: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    # The command reads the folder's config.yaml, as an operator's shell would.
    (integration_root / "config.yaml").write_text(
        f"statePath: {tmp_path / 'state'}\n"
        "liveEvents:\n  journal:\n    type: redis\n"
        f"  redis:\n    url: {redis_server.url}\n    leaseSeconds: 0.6\n    blockMs: 50\n"
    )

    def cli(action: str, **options: Any) -> tuple[int, str]:
        out = io.StringIO()
        code = run_events_command(action, integration_root, stdout=out, stderr=out, **options)
        return code, out.getvalue()

    built = integration(integration_root)
    async with serve_integration(built, settings(tmp_path, redis_server)) as server:
        GatedProcessor.broken = True
        for n in range(3):
            await server.post_event("/webhook", item(f"C-{n}"))
        await server.next_outcomes(3)
        await server.app.journal.flush()
        code, listed = await trio.to_thread.run_sync(lambda: cli("list", status="dead"))
        assert code == 0
        assert listed.count(" dead ") == 3, listed
        GatedProcessor.broken = False
        seq = int(listed.splitlines()[1].split()[0])
        code, replayed = await trio.to_thread.run_sync(lambda: cli("replay", seqs=[seq]))
        assert code == 0, replayed
        with trio.fail_after(10):
            [(_, outcome)] = await server.next_outcomes(1)
        assert outcome.status is EventStatus.DONE
        code, purged = await trio.to_thread.run_sync(lambda: cli("purge"))
        assert (code, purged.strip()) == (0, "2 event(s) purged")
        code, listed = await trio.to_thread.run_sync(lambda: cli("list", status="dead"))
        assert listed.strip() == "no events"
