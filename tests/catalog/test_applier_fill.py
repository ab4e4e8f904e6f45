"""The applier's linger: with ``fill`` (Port's bulk size), a short write waits a little for
other events' entities; without it, every write goes at once."""

from __future__ import annotations

import trio
import trio.testing

from ocean_trio import Entity, EntityChanges
from ocean_trio.catalog._applier import Applier


class RecordingSink:
    """Records each write's identifiers and when it started (virtual time, in ms)."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, list[str]]] = []

    async def apply(self, batch: list[EntityChanges]) -> None:
        # Milliseconds, rounded: virtual time still adds floats.
        at = round(trio.current_time() * 1000)
        self.writes.append((at, [e.identifier for c in batch for e in c.upserts]))
        await trio.sleep(0.001)

    def is_transient(self, error: Exception) -> bool:
        return False


def changes(*identifiers: str) -> EntityChanges:
    return EntityChanges(tuple(Entity(i, "svc") for i in identifiers))


async def written(
    spaced: float, batches: list[EntityChanges], *, fill: int = 0, linger: float = 0.0
) -> list[tuple[int, list[str]]]:
    """The writes an applier makes of ``batches`` applied one every ``spaced`` seconds."""
    sink = RecordingSink()
    applier = Applier(sink, fill=fill, linger=linger)

    async def one(index: int, batch: EntityChanges) -> None:
        await trio.sleep(index * spaced)
        await applier.apply(batch)

    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        async with trio.open_nursery() as senders:
            for index, batch in enumerate(batches):
                senders.start_soon(one, index, batch)
        nursery.cancel_scope.cancel()
    return sink.writes


async def test_a_short_write_waits_for_more_up_to_the_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # three events 10 ms apart: one write, once the linger is over
    writes = await written(0.01, [changes("a"), changes("b"), changes("c")], fill=5, linger=0.05)
    assert writes == [(50, ["a", "b", "c"])]


async def test_a_write_goes_as_soon_as_it_is_full(autojump_clock: trio.testing.MockClock) -> None:
    batches = [changes("a", "b"), changes("c"), changes("d"), changes("e")]
    # a, b, c, d are four entities: written at 20 ms without waiting out the linger; "e"
    # arrives at 30 ms and waits for more until 80 ms
    writes = await written(0.01, batches, fill=4, linger=0.05)
    assert writes == [(20, ["a", "b", "c", "d"]), (80, ["e"])]


async def test_without_fill_every_write_goes_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await written(0.01, [changes("a"), changes("b")]) == [(0, ["a"]), (10, ["b"])]
