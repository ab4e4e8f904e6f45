"""The applier under sink failures: transient ones are retried with backoff, others split."""

from __future__ import annotations

import sqlite3

import pytest
import trio
import trio.testing

from ocean_trio import Entity, EntityChanges
from ocean_trio._retry import RetryPolicy
from ocean_trio.catalog._applier import Applier


class FlakySink:
    """Fails with ``error`` until ``recover_at`` (virtual time); records successful writes."""

    def __init__(self, error: Exception, recover_at: float) -> None:
        self.error = error
        self.recover_at = recover_at
        self.attempts: list[float] = []
        self.written: list[list[str]] = []

    async def apply(self, batch: list[EntityChanges]) -> None:
        await trio.lowlevel.checkpoint()
        self.attempts.append(trio.current_time())
        if trio.current_time() < self.recover_at or any(
            e.identifier == "poison" for c in batch for e in c.upserts
        ):
            raise self.error
        self.written.append([e.identifier for c in batch for e in c.upserts])

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.OperationalError)


def changes(identifier: str) -> EntityChanges:
    return EntityChanges((Entity(identifier, "svc"),))


async def test_an_outage_is_retried_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(sqlite3.OperationalError("database is locked"), recover_at=5.0)
    applier = Applier(
        sink, retry=RetryPolicy(max_attempts=None, initial_delay=0.5, max_delay=2.0, horizon=60.0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        await applier.apply(changes("a"))
        nursery.cancel_scope.cancel()
    # 0 → 0.5 → 1.5 → 3.5 → 5.5 (delays 0.5, 1, 2, 2): written once the sink is back
    assert sink.attempts == [0.0, 0.5, 1.5, 3.5, 5.5]
    assert sink.written == [["a"]]
    assert applier.statistics().failures == 4


async def test_an_outage_longer_than_the_horizon_fails_the_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = FlakySink(sqlite3.OperationalError("disk I/O error"), recover_at=1e9)
    applier = Applier(
        sink, retry=RetryPolicy(max_attempts=None, initial_delay=1.0, max_delay=1.0, horizon=3.0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await applier.apply(changes("a"))
        nursery.cancel_scope.cancel()
    assert sink.attempts == [0.0, 1.0, 2.0, 3.0]


async def test_a_bad_change_set_fails_alone(autojump_clock: trio.testing.MockClock) -> None:
    sink = FlakySink(ValueError("invalid entity"), recover_at=0.0)
    applier = Applier(sink)
    results: dict[str, str] = {}

    async def apply(identifier: str) -> None:
        try:
            await applier.apply(changes(identifier))
            results[identifier] = "ok"
        except ValueError as error:
            results[identifier] = str(error)

    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        async with trio.open_nursery() as writers:
            for identifier in ("a", "poison", "b"):
                writers.start_soon(apply, identifier)
        nursery.cancel_scope.cancel()
    assert results == {"a": "ok", "poison": "invalid entity", "b": "ok"}
    assert sorted(i for batch in sink.written for i in batch) == ["a", "b"]
