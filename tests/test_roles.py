"""Processes sharing a state folder: exactly one processes (the holder of the folder's lock),
the others journal webhooks and take over when it stops; the memory journal refuses a second."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import ocean_trio._state_wake
from ocean_trio import ConfigError, Integration, StartupError
from ocean_trio._state_lock import StateFolderLock
from ocean_trio.live_events._journal import JournalEntry
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .processors import ItemProcessor

HOLDER = """
import sys, time
from pathlib import Path
from ocean_trio._state_lock import StateFolderLock
from ocean_trio.live_events._journal import JournalEntry
lock = StateFolderLock(Path(sys.argv[1]))
assert lock.try_acquire()
print("held", flush=True)
time.sleep(60)
"""


def integration(root: Path) -> Integration:
    result = Integration(root)
    result.add_webhook_processor("/webhook", ItemProcessor)
    return result


async def test_without_pokes_the_processing_process_still_looks_every_few_seconds(
    integration_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocean_trio._state_wake.WakeSender, "notify", lambda self: None)
    settings = make_settings(tmp_path)
    async with (
        serve_integration(integration(integration_root), settings) as first,
        serve_integration(integration(integration_root), settings) as second,
    ):
        assert (await second.post_event("/webhook", item("D"))).status_code == 202
        with trio.fail_after(ocean_trio._state_wake.FALLBACK_SECONDS + 5):
            [(entry, _)] = await first.next_outcomes(1)
        assert payload(entry)["item"]["id"] == "D"


def item(identifier: str, title: str = "t") -> dict[str, Any]:
    return {"item": {"id": identifier, "title": title, "status": "open"}}


def payload(entry: JournalEntry) -> Any:
    """The event's body (entries paged in from the journal are observed unparsed)."""
    return json.loads(entry.event.body)


async def entity(server: TestServer, identifier: str) -> dict[str, Any] | None:
    return await server.catalog.get_entity("item", identifier)


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only pokes wake the processing process (its look every 2 s would hide a lost one)."""
    monkeypatch.setattr(ocean_trio._state_wake, "FALLBACK_SECONDS", 3600.0)


@pytest.mark.usefixtures("no_fallback")
async def test_a_second_process_serves_webhooks_and_the_first_processes_them(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with (
        serve_integration(integration(integration_root), settings) as first,
        serve_integration(integration(integration_root), settings) as second,
    ):
        assert first.app.processing
        assert not second.app.processing
        ready = (await second.client.get("/health/ready")).json()
        assert (ready["role"], ready["processing"]) == ("all", False)

        # Both journal at once: the first's own events must not overtake (and so skip) the
        # second's, numbered below them.
        async def post(server: TestServer, name: str) -> None:
            for n in range(20):
                answer = await server.post_event("/webhook", item(f"{name}-{n % 2}", f"v{n}"))
                assert answer.status_code == 202

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post, first, "F")
            nursery.start_soon(post, second, "S")
        with trio.fail_after(10):
            outcomes = await first.next_outcomes(40)
        items = [payload(entry)["item"] for entry, _ in outcomes]
        for name in ("F-0", "F-1", "S-0", "S-1"):
            titles = [i["title"] for i in items if i["id"] == name]
            assert titles == [f"v{k}" for k in range(int(name[-1]), 20, 2)]  # in order
            found = await entity(first, name)
            assert found is not None
            assert found["title"] == titles[-1]
        # A delivery id is one event across the processes: the shared journal dedups it.
        repeat = {"X-GitHub-Delivery": "same-delivery"}
        accepted = await first.post_event("/webhook", item("S-0", "dup"), headers=repeat)
        again = await second.post_event("/webhook", item("S-0", "dup"), headers=repeat)
        assert (accepted.status_code, again.status_code) == (202, 200)
        assert again.json() == {"status": "duplicate", "trace_id": accepted.json()["trace_id"]}
        with trio.fail_after(10):
            [(entry, _)] = await first.next_outcomes(1)
        assert payload(entry)["item"]["title"] == "dup"
        # The first is idle now: only the second's poke tells it of a new event.
        assert (await second.post_event("/webhook", item("S-0", "last"))).status_code == 202
        with trio.fail_after(10):
            [(entry, _)] = await first.next_outcomes(1)
        assert payload(entry)["item"]["title"] == "last"
        await first.app.journal.flush()
        await second.app.journal.look_elsewhere()  # its count: as of its last look
        assert second.app.journal.statistics().pending == 0


async def test_the_standby_takes_over_when_the_processing_process_stops(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(integration(integration_root), settings) as second:
        async with serve_integration(integration(integration_root), settings) as first:
            assert first.app.processing or second.app.processing
        # whichever processed has stopped; events posted now wait in the journal, then run
        for n in range(5):
            assert (await second.post_event("/webhook", item(f"B-{n}"))).status_code == 202
        with trio.fail_after(10):
            outcomes = await second.next_outcomes(5)
        assert second.app.processing
        assert sorted(payload(e)["item"]["id"] for e, _ in outcomes) == [f"B-{n}" for n in range(5)]


async def test_an_ingress_process_never_processes(integration_root: Path, tmp_path: Path) -> None:
    ingress = make_settings(tmp_path, role="ingress")
    async with serve_integration(integration(integration_root), ingress) as server:
        assert (await server.post_event("/webhook", item("C"))).status_code == 202
        await trio.testing.wait_all_tasks_blocked()  # all it would do, it has done
        assert not server.app.processing
        assert server.app.journal.statistics().pending == 1
    # the event waits in the journal for the processing side
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as later:
        [(entry, _)] = await later.next_outcomes(1)
        assert payload(entry)["item"]["id"] == "C"


async def test_split_roles_need_a_shared_journal(integration_root: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, role="ingress", liveEvents={"journal": {"type": "memory"}})
    with pytest.raises(ConfigError, match="role ingress needs a journal other processes share"):
        async with serve_integration(integration(integration_root), settings):
            pass


async def test_with_the_memory_journal_a_second_process_stops_naming_the_first(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, liveEvents={"journal": {"type": "memory"}})
    async with serve_integration(integration(integration_root), settings):
        with pytest.raises(StartupError) as error:
            async with serve_integration(integration(integration_root), settings):
                pass
        other = make_settings(tmp_path / "other", liveEvents={"journal": {"type": "memory"}})
        async with serve_integration(integration(integration_root), other):
            pass
    message = str(error.value)
    assert f"another ocean-trio process (pid {os.getpid()})" in message
    assert str(tmp_path / "state") in message
    assert "use the sqlite journal to run several processes" in message
    async with serve_integration(integration(integration_root), settings):
        pass  # the first stopped: the folder is free again


async def test_the_lock_is_released_when_its_process_is_killed(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE
    )
    lock = StateFolderLock(folder)
    try:
        assert holder.stdout is not None
        with trio.fail_after(30):
            assert (await holder.stdout.receive_some(16)).startswith(b"held")
        assert not lock.try_acquire()
        assert lock.holder() == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await holder.wait()
    with trio.fail_after(5):
        await lock.acquire()
    assert (folder / "ocean-trio.lock").read_text().strip() == str(os.getpid())
    lock.close()


@pytest.mark.usefixtures("no_fallback")
async def test_a_resync_asked_of_the_ingress_process_runs_in_the_processing_one(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path, eventListener={"type": "WEBHOOK", "token": "t"}, resync={"coalesceSeconds": 0}
    )
    async with (
        serve_integration(integration(integration_root), settings) as first,
        serve_integration(integration(integration_root), settings) as second,
    ):
        assert first.app.resyncs is not None
        finished = trio.Event()

        async def wait() -> None:
            assert first.app.resyncs is not None
            await first.app.resyncs.wait_for_next()
            finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            answer = await second.client.post("/resync", headers={"authorization": "Bearer t"})
            assert answer.status_code == 202
            with trio.fail_after(10):
                await finished.wait()
        state = first.app.resyncs.last
        assert state is not None
        assert "recorded by another process" in state.reason
        assert second.app.resyncs is not None
        assert second.app.resyncs.last is None  # nothing ran in the ingress process


async def test_a_stopping_standby_never_takes_over(integration_root: Path, tmp_path: Path) -> None:
    # Every process of a folder stops together (hypercorn's workers on SIGINT): the standby
    # must not start processing (hooks, resyncs) in the middle of its own shutdown.
    settings = make_settings(tmp_path)
    first_ready, stop_first, first_done = trio.Event(), trio.Event(), trio.Event()

    async def run_first() -> None:
        async with serve_integration(integration(integration_root), settings) as first:
            assert first.app.processing
            first_ready.set()
            await stop_first.wait()
        first_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_first)
        await first_ready.wait()
        async with serve_integration(integration(integration_root), settings) as second:
            assert not second.app.processing
            second.app.stopping.set()  # its shutdown has begun
            stop_first.set()
            await first_done.wait()  # the lock is free now
            with trio.move_on_after(1.5):  # three of the standby's tries
                while not second.app.processing:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            assert not second.app.processing
