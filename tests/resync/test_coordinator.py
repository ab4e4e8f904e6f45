"""The coordinator in virtual time: one resync at a time, coalescing, aborts, starvation,
requests that survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from ocean_trio.resync._coordinator import ResyncCoordinator
from ocean_trio.resync._requests import MemoryRequestStore, SqliteRequestStore
from ocean_trio.resync._state import ResyncState, ResyncStatus


class Runs:
    """A ``run_one`` taking ``seconds`` of virtual time; records what ran and the states seen."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self.started: list[str] = []
        self.reported: list[tuple[str, ResyncStatus]] = []
        self.running = trio.Event()

    async def run_one(self, state: ResyncState) -> None:
        self.started.append(state.reason)
        self.running.set()
        await trio.sleep(self.seconds)
        state.status = ResyncStatus.COMPLETED

    async def report(self, state: ResyncState) -> None:
        await trio.lowlevel.checkpoint()
        self.reported.append((state.reason, state.status))


def coordinator(runs: Runs, **options: float) -> ResyncCoordinator:
    return ResyncCoordinator(
        runs.run_one,
        MemoryRequestStore(),
        coalesce_seconds=options.get("coalesce", 1.0),
        max_aborts=int(options.get("max_aborts", 3)),
        on_state=runs.report,
    )


async def test_a_burst_of_triggers_gives_one_resync(autojump_clock: trio.testing.MockClock) -> None:
    runs = Runs()
    coord = coordinator(runs)
    async with trio.open_nursery() as nursery:
        await nursery.start(coord.run)
        for n in range(5):
            coord.request(f"t{n}")
            await trio.sleep(0.1)  # all within the 1 s window
        state = await coord.wait_for_next()
        nursery.cancel_scope.cancel()
    assert runs.started == ["t0, t1, t2, t3, t4"]
    assert state.status is ResyncStatus.COMPLETED
    assert runs.reported == [
        (state.reason, ResyncStatus.RUNNING),
        (state.reason, ResyncStatus.COMPLETED),
    ]


async def test_a_trigger_during_a_resync_aborts_it_and_starts_afresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = Runs()
    coord = coordinator(runs)
    async with trio.open_nursery() as nursery:
        await nursery.start(coord.run)
        coord.request("first")
        await trio.sleep(5)  # 1 s coalescing, then 4 s into the 10 s resync
        coord.request("second")
        aborted = await coord.wait_for_next()
        fresh = await coord.wait_for_next()
        nursery.cancel_scope.cancel()
    assert (aborted.reason, aborted.status) == ("first", ResyncStatus.ABORTED)
    assert (fresh.reason, fresh.status) == ("second", ResyncStatus.COMPLETED)


async def test_a_stream_of_triggers_cannot_starve_resyncs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A trigger every 5 s, resyncs of 10 s: Ocean would abort every one of them forever.
    runs = Runs()
    coord = coordinator(runs, max_aborts=3)
    ended: list[ResyncState] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(coord.run)

        async def trigger() -> None:
            for n in range(20):
                coord.request(f"t{n}")
                await trio.sleep(5)

        nursery.start_soon(trigger)
        while not any(s.status is ResyncStatus.COMPLETED for s in ended):
            ended.append(await coord.wait_for_next())
        nursery.cancel_scope.cancel()
    assert [s.status for s in ended] == [ResyncStatus.ABORTED] * 3 + [ResyncStatus.COMPLETED]


@pytest.mark.parametrize("max_aborts", [0, 1])
async def test_max_aborts_is_the_limit(
    autojump_clock: trio.testing.MockClock, max_aborts: int
) -> None:
    runs = Runs()
    coord = coordinator(runs, max_aborts=max_aborts)
    async with trio.open_nursery() as nursery:
        await nursery.start(coord.run)
        coord.request("a")
        await trio.sleep(5)
        coord.request("b")
        first = await coord.wait_for_next()
        await trio.sleep(5)
        coord.request("c")
        second = await coord.wait_for_next()
        nursery.cancel_scope.cancel()
    expected = [ResyncStatus.ABORTED] * max_aborts + [ResyncStatus.COMPLETED] * (2 - max_aborts)
    assert [first.status, second.status] == expected


async def test_a_durable_request_survives_a_shutdown_mid_resync(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    runs = Runs()
    path = tmp_path / "resync.sqlite3"
    async with SqliteRequestStore.open(path) as store:
        coord = ResyncCoordinator(runs.run_one, store, on_state=runs.report)
        async with trio.open_nursery() as nursery:
            await nursery.start(coord.run)
            await coord.request_durably("kafka message 1")
            # the store works on a thread, so virtual time jumps while it does: wait for the
            # run itself rather than for a duration
            await runs.running.wait()
            await trio.sleep(1)  # running, not done
            nursery.cancel_scope.cancel()  # the process stops
        assert coord.last is not None
        assert coord.last.status is ResyncStatus.ABORTED
        assert runs.reported[-1] == ("kafka message 1", ResyncStatus.ABORTED)
        assert [r for _, r in await store.pending()] == ["kafka message 1"]
    # the next start runs it, then forgets it
    async with SqliteRequestStore.open(path) as store:
        again = Runs()
        coord = ResyncCoordinator(again.run_one, store)
        async with trio.open_nursery() as nursery:
            await nursery.start(coord.run)
            state = await coord.wait_for_next()
            nursery.cancel_scope.cancel()
        assert state.status is ResyncStatus.COMPLETED
        assert again.started == ["1 request(s) left pending by the last run"]
        assert await store.pending() == []


async def test_a_failed_run_is_recorded_and_serves_its_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(state: ResyncState) -> None:
        await trio.sleep(1)
        raise RuntimeError("the handler crashed")

    store = MemoryRequestStore()
    coord = ResyncCoordinator(broken, store)
    async with trio.open_nursery() as nursery:
        await nursery.start(coord.run)
        await coord.request_durably("r")
        state = await coord.wait_for_next()
        nursery.cancel_scope.cancel()
    assert (state.status, state.error) == (
        ResyncStatus.FAILED,
        "resync failed: RuntimeError('the handler crashed')",
    )
    assert await store.pending() == []  # it ran: a failure is not a reason to run again
