"""The event listeners end to end: ONCE's exit codes, POLLING without Port, WEBHOOK's token,
the scheduled resync."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ocean_trio import ConfigError, Integration
from ocean_trio.resync._listeners import run_scheduled
from ocean_trio.resync._state import ResyncStatus
from ocean_trio.testing import make_settings, serve_integration

from ..conftest import ITEM_MAPPING
from ..test_servers import _env, read_all

RESYNC_MAIN = textwrap.dedent(
    """
    from ocean_trio import ocean

    @ocean.on_resync("item")
    async def items(kind):
        if {fail!r}:
            raise RuntimeError("the source is down")
        yield [{{"id": "O-1", "title": "once", "status": "open"}}]

    app = ocean.asgi_app(__file__)
    """
)


def resync_package(tmp_path: Path, *, fail: bool) -> Path:
    root = tmp_path / "once_integration"
    (root / ".port" / "resources").mkdir(parents=True)
    (root / ".port" / "resources" / "port-app-config.yml").write_text(ITEM_MAPPING)
    (root / "main.py").write_text(RESYNC_MAIN.format(fail=fail))
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("fail", "code"), [(False, 0), (True, 1)])
async def test_once_resyncs_then_exits_with_its_outcome(
    tmp_path: Path, fail: bool, code: int
) -> None:
    root = resync_package(tmp_path, fail=fail)
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(root), "--once", "--port", "0"]
    process = await trio.lowlevel.open_process(
        argv, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    with trio.fail_after(30):
        await process.wait()
    log = await read_all(process.stderr)
    assert process.returncode == code, log
    assert ("completed" if code == 0 else "failed") in log
    assert log.strip().splitlines()[-1].endswith("stopped" if code == 0 else f"(exit code {code})")


async def test_polling_without_port_resyncs_on_start_and_when_the_mapping_changes(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)
    produced: list[str] = []

    @integration.on_resync("item")
    async def items(kind: str) -> list[dict[str, Any]]:
        produced.append(kind)
        return [{"id": "P-1", "title": "polled", "status": "open", "priority": "high"}]

    settings = make_settings(
        tmp_path,
        eventListener={"type": "POLLING", "interval": 0.05},
        resync={"coalesceSeconds": 0},
    )
    mapping = integration_root / ".port" / "resources" / "port-app-config.yml"
    async with serve_integration(integration, settings) as server:
        coordinator = server.app.resyncs
        assert coordinator is not None
        with trio.fail_after(10):
            first = await coordinator.wait_for_next()
        assert (first.reason, first.status) == ("start (resyncOnStart)", ResyncStatus.COMPLETED)
        # drop the urgentItem resource: the next resync maps with the new mapping
        mapping.write_text(
            ITEM_MAPPING.split("  - kind: item\n    selector:\n      query: '.priority")[0]
        )
        with trio.fail_after(10):
            second = await coordinator.wait_for_next()
        assert second.reason == "port-app-config.yml changed"
        assert [k.index for k in second.kinds] == [0]
        # the entity only the dropped resource produced is reconciled away
        blueprints = {e["blueprint"] for e in await server.catalog.list_entities()}
        assert blueprints == {"item"}


async def test_webhook_listener_needs_a_token(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, eventListener={"type": "WEBHOOK"})
    with pytest.raises(ConfigError, match=r"needs eventListener\.token"):
        async with serve_integration(Integration(integration_root), settings):
            raise AssertionError("started without a token")


async def test_webhook_listener_resyncs_on_an_authenticated_post_and_answers_at_once(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)
    release = trio.Event()

    @integration.on_resync("item")
    async def items(kind: str) -> list[dict[str, Any]]:
        await release.wait()  # the POST must not wait for this (Ocean's does)
        return [{"id": "W-1", "title": "hooked", "status": "open"}]

    settings = make_settings(
        tmp_path, eventListener={"type": "WEBHOOK", "token": "t0ken"}, resync={"coalesceSeconds": 0}
    )
    async with serve_integration(integration, settings) as server:
        client = server.client
        assert (await client.post("/resync")).status_code == 401
        wrong = await client.post("/resync", headers={"authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["error"]) == (
            401,
            "missing or wrong token (Authorization: Bearer <token>)",
        )
        assert server.app.resyncs is not None
        assert server.app.resyncs.last is None
        accepted = await client.post("/resync", headers={"authorization": "Bearer t0ken"})
        assert (accepted.status_code, accepted.json()) == (
            202,
            {"status": "accepted", "status_url": "/resync"},
        )
        release.set()
        with trio.fail_after(10):
            state = await server.app.resyncs.wait_for_next()
        assert (state.reason, state.status) == ("POST /resync", ResyncStatus.COMPLETED)
        assert [e["identifier"] for e in await server.catalog.list_entities("item")] == ["W-1"]


async def test_scheduled_resyncs_come_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[tuple[float, str]] = []

    class Recorder:
        def request(self, reason: str) -> None:
            asked.append((trio.current_time(), reason))

        async def wait_for_next(self) -> Any:
            raise AssertionError("not used")

    async with trio.open_nursery() as nursery:
        await nursery.start(run_scheduled, Recorder(), 30)
        await trio.sleep(95 * 60)
        nursery.cancel_scope.cancel()
    assert asked == [(t * 60.0, "scheduled (every 30 min)") for t in (30, 60, 90)]
