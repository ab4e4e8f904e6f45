"""``RelayHub``: the relay's side of the WebSocket: one consuming integration at a time.

A session pages the journal's pending events in ``seq`` order (from the start of what is
pending: a new connection gets again whatever the last one left unacknowledged), keeps at
most ``max_in_flight`` events and ``max_in_flight_bytes`` of bodies sent and unacknowledged,
and finishes each event in the journal when the integration acknowledges it: ``done`` when
journaled there (or a duplicate), ``rejected`` with the integration's reason when refused.
Nothing is finished otherwise, so an event is kept until acknowledged, across reconnects and
restarts of either side.

A newer connection replaces the current one (closed with 4000) once the current one has
ended, so two sessions never send at once. A heartbeat (``ping`` every
``heartbeat_seconds``) and a horizon of three of them notice a peer that went silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import attrs
import trio

from .._log import LogLimiter
from ..live_events._journal import EventStatus, Journal, JournalEntry
from ._protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REPLACED,
    CLOSE_SILENT,
    Ack,
    AckStatus,
    Hello,
    Ping,
    ProtocolError,
    Ready,
    RelayedEvent,
    decode_from_integration,
    encode,
)

logger = logging.getLogger("ocean_trio.relay")

SILENT_HEARTBEATS = 3  # a peer silent for this many heartbeats is presumed gone
CLOSE_SECONDS = 2.0  # how long closing a connection may take (the peer may be gone)


class Peer(Protocol):
    """One WebSocket connection, as the hub sees it (the ASGI adapter in production)."""

    async def send(self, text: str) -> None:
        """Send one text message (callable from several tasks)."""
        ...

    async def receive(self) -> str | bytes | None:
        """The next message; ``None`` once the peer disconnected."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code``."""
        ...


@attrs.frozen
class HubStatistics:
    """What ``/health/ready`` shows of the consuming integration."""

    connected: bool
    peer: str | None
    connected_since: float | None  # Unix time
    in_flight: int
    in_flight_bytes: int
    connections: int
    delivered: int  # event messages sent, redeliveries included
    acknowledged: int  # journaled by the integration (or duplicates there)
    refused: int  # refused by the integration (recorded rejected)


@attrs.define(eq=False)
class _Session:
    peer: str
    connected_at: float = attrs.field(factory=time.time)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    wake: trio.Event = attrs.field(factory=trio.Event)
    in_flight: dict[int, JournalEntry] = attrs.field(factory=dict)
    in_flight_bytes: int = 0
    last_heard: float = 0.0  # trio time
    ready: Ready | None = None
    close_code: int | None = None
    reason: str = ""

    def end(self, code: int | None, reason: str) -> None:
        """Stop the session; the first reason given is the one reported (and sent)."""
        if not self.reason:
            self.close_code, self.reason = code, reason
        self.scope.cancel()


class RelayHub:
    """Streams the journal's pending events of ``paths`` to the one connected integration."""

    def __init__(
        self,
        journal: Journal,
        paths: Sequence[str],
        *,
        relay_id: str,
        max_in_flight: int,
        max_in_flight_bytes: int,
        heartbeat_seconds: float,
    ) -> None:
        self._journal = journal
        self._paths = list(paths)
        self.relay_id = relay_id
        self._max_in_flight = max_in_flight
        self._max_bytes = max_in_flight_bytes
        self._heartbeat = heartbeat_seconds
        self._current: _Session | None = None
        # Held by the session that streams: a newer one waits for the one it replaced.
        self._turn = trio.Lock()
        self._stopping = False
        self._changed = trio.Event()  # set (and replaced) on every ack and session end
        self._connections = 0
        self._delivered = 0
        self._acknowledged = 0
        self._refused = 0
        self._log = LogLimiter(logger)

    def appended(self) -> None:
        """The journal committed new events (its ``on_append``): send them."""
        if self._current is not None:
            self._current.wake.set()

    async def serve(self, peer: Peer, name: str) -> None:
        """Serve one authenticated connection until it ends, then close it with the reason.

        ``name`` says who it is in the log (its address).
        """
        if self._stopping:
            await _close(peer, CLOSE_GOING_AWAY, "the relay is shutting down")
            return
        session = _Session(name)
        previous, self._current = self._current, session
        self._connections += 1
        if previous is not None:
            logger.info("integration connected from %s: it replaces %s", name, previous.peer)
            previous.end(CLOSE_REPLACED, "replaced by a newer connection of the integration")
        try:
            with session.scope:
                async with self._turn:
                    await self._converse(session, peer)
        finally:
            if self._current is session:
                self._current = None
            self._notify()
        if session.close_code is not None:
            await _close(peer, session.close_code, session.reason)
        kept = len(session.in_flight)
        logger.info(
            "integration at %s gone: %s%s",
            name,
            session.reason or "connection ended",
            f"; {kept} events it had not acknowledged stay pending" if kept else "",
        )

    async def drain(self) -> None:
        """Send no more events; wait until those in flight are acknowledged (bounded by the
        caller) or the integration is gone."""
        self._stopping = True
        while (session := self._current) is not None and session.in_flight:
            session.wake.set()
            await self._changed.wait()

    def close(self) -> None:
        """End the session (1001: the relay is shutting down) and refuse new ones."""
        self._stopping = True
        if self._current is not None:
            self._current.end(CLOSE_GOING_AWAY, "the relay is shutting down")

    @property
    def stopping(self) -> bool:
        return self._stopping

    def statistics(self) -> HubStatistics:
        session = self._current
        ready = session is not None and session.ready is not None
        return HubStatistics(
            connected=ready,
            peer=session.peer if session is not None and ready else None,
            connected_since=session.connected_at if session is not None and ready else None,
            in_flight=len(session.in_flight) if session is not None else 0,
            in_flight_bytes=session.in_flight_bytes if session is not None else 0,
            connections=self._connections,
            delivered=self._delivered,
            acknowledged=self._acknowledged,
            refused=self._refused,
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- one session ----------------------------------------------------------------------

    async def _converse(self, session: _Session, peer: Peer) -> None:
        # What the previous session had acknowledged is on disk before paging from the start.
        await self._journal.flush()
        hello = Hello(
            relay_id=self.relay_id,
            max_in_flight=self._max_in_flight,
            heartbeat_seconds=self._heartbeat,
        )
        await peer.send(encode(hello))
        horizon = SILENT_HEARTBEATS * self._heartbeat
        first: str | bytes | None = None
        with trio.move_on_after(horizon):
            first = await peer.receive()
            if first is None:
                session.end(None, "it disconnected before saying ready")
                return
        if first is None:
            session.end(CLOSE_SILENT, f"no ready message within {horizon:g}s")
            return
        try:
            ready = decode_from_integration(first)
        except ProtocolError as error:
            session.end(CLOSE_PROTOCOL_ERROR, str(error))
            return
        if not isinstance(ready, Ready):
            session.end(CLOSE_PROTOCOL_ERROR, "the first message must be ready")
            return
        session.ready = ready
        session.last_heard = trio.current_time()
        pending = self._journal.statistics().pending
        logger.info("integration connected from %s; %d events pending", session.peer, pending)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, session, peer)
            nursery.start_soon(self._stream, session, peer, ready)
            nursery.start_soon(self._keep_alive, session, peer)

    async def _receive(self, session: _Session, peer: Peer) -> None:
        while True:
            text = await peer.receive()
            if text is None:
                session.end(None, "it disconnected")
                return
            session.last_heard = trio.current_time()
            try:
                message = decode_from_integration(text)
                if isinstance(message, Ready):
                    raise ProtocolError("ready sent twice")
            except ProtocolError as error:
                session.end(CLOSE_PROTOCOL_ERROR, str(error))
                return
            if isinstance(message, Ack):
                entry = session.in_flight.pop(message.seq, None)
                if entry is None:
                    session.end(
                        CLOSE_PROTOCOL_ERROR, f"ack of event {message.seq}, which is not in flight"
                    )
                    return
                session.in_flight_bytes -= entry.size
                await self._finish(entry, message)
                session.wake.set()
                self._notify()

    async def _finish(self, entry: JournalEntry, ack: Ack) -> None:
        if ack.status is AckStatus.REFUSED:
            self._refused += 1
            error = ack.error or "refused by the integration"
            self._log.warning(
                ("refused", entry.event.path),
                "the integration refused event %s on %s (kept as rejected): %s",
                entry.seq,
                entry.event.path,
                error,
            )
            await self._journal.complete(entry, EventStatus.REJECTED, f"integration: {error}")
        else:
            self._acknowledged += 1
            await self._journal.complete(entry, EventStatus.DONE)

    async def _stream(self, session: _Session, peer: Peer, ready: Ready) -> None:
        cursor = 0  # the last seq sent in this session: each session starts from the start
        while True:
            progressed = False
            room = self._max_in_flight - len(session.in_flight)
            budget = self._max_bytes - session.in_flight_bytes
            if not self._stopping and room > 0 and budget > 0:
                session.wake = trio.Event()  # appends and acks from now on wake us
                for entry in await self._page(cursor, room, max(budget, 1)):
                    if session.in_flight and session.in_flight_bytes + entry.size > self._max_bytes:
                        break
                    cursor = entry.seq
                    progressed = True
                    if entry.size > ready.max_body_bytes:
                        await self._too_large(entry, ready.max_body_bytes)
                        continue
                    session.in_flight[entry.seq] = entry
                    session.in_flight_bytes += entry.size
                    await peer.send(encode(_relayed(entry)))
                    self._delivered += 1
            if not progressed:
                await session.wake.wait()
                session.wake = trio.Event()

    async def _page(self, after: int, limit: int, max_bytes: int) -> list[JournalEntry]:
        """The next pending events of every path, in ``seq`` order."""
        merged: list[JournalEntry] = []
        cut: int | None = None
        for path in self._paths:
            page = await self._journal.pending_page(
                path, after=after, limit=limit, max_bytes=max_bytes, at_least_one=True
            )
            if page:
                merged += page
                # A path's page may stop early (limit, bytes): beyond its last seq, another
                # path's events could overtake one of its own still unread.
                cut = page[-1].seq if cut is None else min(cut, page[-1].seq)
        merged.sort(key=lambda entry: entry.seq)
        return [entry for entry in merged if cut is not None and entry.seq <= cut][:limit]

    async def _too_large(self, entry: JournalEntry, limit: int) -> None:
        # The integration could not even read the message; its ingress would answer 413.
        self._refused += 1
        error = (
            f"the body ({entry.size} bytes) is larger than the integration's maxBodyBytes ({limit})"
        )
        self._log.warning(
            ("too-large", entry.event.path),
            "event %s on %s is not sent (kept as rejected): %s",
            entry.seq,
            entry.event.path,
            error,
        )
        await self._journal.complete(entry, EventStatus.REJECTED, error)

    async def _keep_alive(self, session: _Session, peer: Peer) -> None:
        horizon = SILENT_HEARTBEATS * self._heartbeat
        while True:
            await trio.sleep(self._heartbeat)
            silent = trio.current_time() - session.last_heard
            if silent > horizon:
                session.end(CLOSE_SILENT, f"nothing heard from it for {silent:.0f}s")
                return
            # A send stuck behind a full socket must not hold the silence check up.
            with trio.move_on_after(self._heartbeat):
                await peer.send(encode(Ping()))


def _relayed(entry: JournalEntry) -> RelayedEvent:
    event = entry.event
    return RelayedEvent(
        seq=entry.seq,
        path=event.path,
        headers=event.headers,
        body=event.body,
        trace_id=event.trace_id,
        received_at=event.received_at,
        delivery_id=event.delivery_id,
    )


async def _close(peer: Peer, code: int, reason: str) -> None:
    # Shielded and bounded: a close is owed even when shutdown cancels us, and the peer may
    # be gone.
    with trio.move_on_after(CLOSE_SECONDS, shield=True):
        await peer.close(code, reason)
