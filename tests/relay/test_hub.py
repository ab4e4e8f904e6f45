"""``RelayHub`` over the in-memory journal and a peer made of memory channels: no thread, no
socket, so ``wait_all_tasks_blocked`` proves what the hub does not send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._journal import EventStatus
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.relay._hub import RelayHub
from ocean_trio.relay._protocol import (
    CLOSE_GOING_AWAY,
    Ack,
    AckStatus,
    Hello,
    Ready,
    RelayedEvent,
    decode_from_relay,
    encode,
)


class FakePeer:
    """The integration's end: what the hub sent, and what to send it."""

    def __init__(self) -> None:
        self._to_peer, self.sent = trio.open_memory_channel[str](1000)
        self.incoming, self._from_peer = trio.open_memory_channel[str](1000)
        self.closed: tuple[int, str] | None = None

    async def send(self, text: str) -> None:
        await self._to_peer.send(text)

    async def receive(self) -> str | bytes | None:
        try:
            return await self._from_peer.receive()
        except trio.EndOfChannel:
            return None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    async def say(self, message: Ready | Ack) -> None:
        await self.incoming.send(encode(message))

    def received(self) -> list[RelayedEvent]:
        """The events sent since the last call (everything the hub could send by now)."""
        events: list[RelayedEvent] = []
        while True:
            try:
                message = decode_from_relay(self.sent.receive_nowait())
            except trio.WouldBlock:
                return events
            if isinstance(message, RelayedEvent):
                events.append(message)
            else:
                assert isinstance(message, Hello)


async def append(journal: MemoryJournal, hub: RelayHub, size: int, path: str = "/webhook") -> None:
    body = b"{" + b" " * (size - 2) + b"}"
    await journal.append(WebhookEvent.from_body(path, body, {}, {}), lambda entry: None)
    hub.appended()


@asynccontextmanager
async def session(
    *, max_in_flight: int = 10, max_bytes: int = 1 << 20
) -> AsyncIterator[tuple[MemoryJournal, RelayHub, FakePeer]]:
    journal = MemoryJournal(max_pending=100)
    hub = RelayHub(
        journal,
        ["/webhook"],
        relay_id="r",
        max_in_flight=max_in_flight,
        max_in_flight_bytes=max_bytes,
        heartbeat_seconds=3600,
    )
    peer = FakePeer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.serve, peer, "peer")
        await peer.say(Ready(max_body_bytes=1 << 20))
        yield journal, hub, peer
        nursery.cancel_scope.cancel()


async def test_at_most_max_in_flight_events_are_unacknowledged() -> None:
    async with session(max_in_flight=3) as (journal, hub, peer):
        for _ in range(5):
            await append(journal, hub, 10)
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [1, 2, 3]
        await peer.say(Ack(2, AckStatus.JOURNALED))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [4]
        await peer.say(Ack(1, AckStatus.DUPLICATE))
        await peer.say(Ack(3, AckStatus.REFUSED, error="401: no"))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [5]
        assert hub.statistics().in_flight == 2
        assert hub.statistics().acknowledged == 2
        assert hub.statistics().refused == 1
        finished = {r.seq: (r.status, r.error) for r in await journal.records()}
        assert finished[3] == (EventStatus.REJECTED, "integration: 401: no")
        assert finished[1] == (EventStatus.DONE, None)
        assert finished[4][0] is EventStatus.PENDING


async def test_the_bytes_in_flight_are_bounded_but_one_event_always_goes() -> None:
    async with session(max_bytes=25) as (journal, hub, peer):
        for size in (20, 20, 40, 5):
            await append(journal, hub, size)
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [1]  # 20 + 20 > 25
        await peer.say(Ack(1, AckStatus.JOURNALED))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [2]
        await peer.say(Ack(2, AckStatus.JOURNALED))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [3]  # 40 > 25, alone
        await peer.say(Ack(3, AckStatus.JOURNALED))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [4]


async def test_a_new_event_goes_out_as_soon_as_it_is_journaled() -> None:
    async with session() as (journal, hub, peer):
        await trio.testing.wait_all_tasks_blocked()
        assert peer.received() == []
        await append(journal, hub, 10)
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [1]


async def test_shutdown_waits_for_the_acknowledgements_in_flight_then_closes() -> None:
    async with session() as (journal, hub, peer):
        await append(journal, hub, 10)
        await trio.testing.wait_all_tasks_blocked()
        assert [e.seq for e in peer.received()] == [1]
        async with trio.open_nursery() as nursery:
            drained = trio.Event()

            async def drain() -> None:
                await hub.drain()
                drained.set()

            nursery.start_soon(drain)
            await append(journal, hub, 10)  # not sent: the hub is stopping
            await trio.testing.wait_all_tasks_blocked()
            assert not drained.is_set()
            assert peer.received() == []
            await peer.say(Ack(1, AckStatus.JOURNALED))
        assert drained.is_set()
        hub.close()
        await trio.testing.wait_all_tasks_blocked()
        assert peer.closed == (CLOSE_GOING_AWAY, "the relay is shutting down")
        assert hub.statistics().connected is False
