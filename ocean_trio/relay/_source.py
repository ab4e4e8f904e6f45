"""``RelaySource``: live events taken from a relay, for an integration no webhook can reach.

The integration connects out (trio-websocket) to the relay's ``/relay/connect`` and gives
each event it receives to its own ingress (``WebhookIngress.accept``), so a relayed event
follows exactly the path of a direct webhook: the integration's signature check, parsing,
dedup, journal, processing. It acknowledges an event only once the ingress journaled it
(``202``, or ``200`` for a duplicate), or refused it for good (a ``4xx``: recorded rejected
at the relay); on a ``503`` (journal full, shutting down) it acknowledges nothing more,
closes, backs off and reconnects, and the relay sends the unacknowledged events again, in
order. A redelivered event is a duplicate here: by the sender's delivery id, or else by
``relay:<relay id>:<seq>``. Events are journaled one at a time, in the relay's order.

Only the processing process of a state folder runs it (``_process``), so one process
consumes the relay at a time.
"""

from __future__ import annotations

import logging

import attrs
import trio
import trio_websocket

from .._app import WEBHOOK_PREFIX
from .._log import LogLimiter
from .._retry import RetryPolicy
from .._settings import RelayConnectionSettings
from .._websocket import CLOSE_SECONDS, CONNECT_SECONDS, connect
from ..live_events._ingress import WebhookIngress
from ._protocol import (
    CLOSE_TRY_AGAIN_LATER,
    Ack,
    AckStatus,
    Hello,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    RelayedEvent,
    decode_from_relay,
    encode,
    fallback_delivery_id,
)

logger = logging.getLogger("ocean_trio.relay")

BACKOFF = RetryPolicy(max_attempts=None, initial_delay=0.5, max_delay=30.0, jitter=0.5)
"""Between connection attempts: 0.5 s doubling to 30 s, each ± half, from the last session
that got as far as the relay's hello."""

SILENT_HEARTBEATS = 3  # a relay silent for this many of its heartbeats is presumed gone
MAX_QUEUE = 1024  # events received and not journaled yet, at most (the relay sends fewer)
HEADERS_ROOM = 1024 * 1024  # a message holds the body in base64 plus headers and fields


class _Unavailable(Exception):
    """This integration cannot journal now (``503``): back off, the relay sends it again."""


class _Silent(Exception):
    """Nothing came from the relay within its heartbeats' horizon."""


_SESSION_ERRORS = (
    trio_websocket.ConnectionClosed,
    trio_websocket.HandshakeError,
    OSError,
    trio.BrokenResourceError,
    _Silent,
    _Unavailable,
    ProtocolError,
    trio.Cancelled,
)
"""How a session ends; anything else is a bug and propagates."""


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found += _leaves(error)
        elif not isinstance(error, trio.Cancelled):
            found.append(error)
    return found


@attrs.frozen
class SourceStatistics:
    """``received``: events the relay sent (redeliveries included); each then ``journaled``,
    a ``duplicate`` (journaled before) or ``refused``, or not acknowledged (a ``503``)."""

    url: str
    connected: bool
    relay_id: str | None
    received: int
    journaled: int
    duplicates: int
    refused: int


class RelaySource:
    """Connects to the relay and journals its events through ``ingress``, until cancelled.

    ``max_body_bytes`` is this integration's limit: the relay refuses bigger events for it
    (so no message exceeds what it reads).
    """

    def __init__(
        self,
        settings: RelayConnectionSettings,
        ingress: WebhookIngress,
        *,
        max_body_bytes: int,
        backoff: RetryPolicy = BACKOFF,
    ) -> None:
        self.url = settings.url
        self._authorization = f"Bearer {settings.token}".encode()
        self._ingress = ingress
        self._max_body_bytes = max_body_bytes
        self._backoff = backoff
        self._state: str | None = None
        self._refusals = LogLimiter(logger)
        self.relay_id: str | None = None
        self.connected = False
        self._received = 0
        self._journaled = 0
        self._duplicates = 0
        self._refused = 0

    def statistics(self) -> SourceStatistics:
        """Whether connected, to which relay, and what became of the events received."""
        return SourceStatistics(
            url=self.url,
            connected=self.connected,
            relay_id=self.relay_id,
            received=self._received,
            journaled=self._journaled,
            duplicates=self._duplicates,
            refused=self._refused,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take events from the relay until cancelled, reconnecting with backoff.

        ``started()`` at once: a relay that is down (or not there yet) is retried, never a
        reason not to start.
        """
        task_status.started()
        retries = self._backoff.start()
        while True:
            try:
                await self._session()
            except trio_websocket.ConnectionRejected as error:
                self._rejected(error)
            except trio_websocket.ConnectionTimeout:
                self._change("timeout", "no answer from the relay at %s in %gs", CONNECT_SECONDS)
            except trio_websocket.HandshakeError as error:
                self._change("unreachable", "cannot reach the relay at %s: %s", error.__cause__)
            except trio_websocket.ConnectionClosed as error:
                reason = error.reason
                if reason is None:
                    self._change("closed", "the relay at %s closed the connection")
                else:
                    why = f"{reason.code} {reason.reason or reason.name}"
                    self._change(
                        f"closed:{reason.code}", "the relay at %s closed the connection (%s)", why
                    )
            except (OSError, trio.BrokenResourceError) as error:
                self._change("unreachable", "lost the relay at %s: %r", error)
            except _Silent as error:
                self._change("silent", "the relay at %s went silent: %s", error)
            except _Unavailable as error:
                self._change(
                    "unavailable",
                    "stopped taking events from the relay at %s: this integration cannot"
                    " journal them now (%s); the relay keeps them",
                    error,
                )
            except ProtocolError as error:
                self._change("protocol", "the relay at %s broke the protocol: %s", error)
            if self.connected:  # the last session got as far as the relay's hello
                retries = self._backoff.start()
            self.connected = False
            delay = retries.next_delay()
            assert delay is not None  # the policy never gives up
            await retries.wait(delay)

    def _change(self, state: str, message: str, *args: object) -> None:
        # Once per change of state: a relay down for an hour is one line, not one per attempt.
        if state == self._state:
            logger.debug(message, self.url, *args)
            return
        self._state = state
        level = logging.ERROR if state in ("auth", "protocol") else logging.WARNING
        logger.log(
            level,
            message + "; reconnecting (backoff up to %gs)",
            self.url,
            *args,
            self._backoff.max_delay,
        )

    def _rejected(self, error: trio_websocket.ConnectionRejected) -> None:
        status = error.status_code
        if status in (401, 403):
            self._change(
                "auth",
                "the relay at %s refused this integration's token (HTTP %s): set"
                " liveEvents.relay.token (OCEAN__LIVE_EVENTS__RELAY__TOKEN) to the relay's token",
                status,
            )
        else:
            body = (error.body or b"").decode("utf-8", "replace")[:200]
            self._change(
                f"rejected:{status}", "the relay at %s refused to connect: HTTP %s %s", status, body
            )

    async def _session(self) -> None:
        """One connection, until it ends (always by an exception)."""
        async with connect(
            self.url,
            headers=[(b"authorization", self._authorization)],
            max_message_size=4 * ((self._max_body_bytes + 2) // 3) + HEADERS_ROOM,
        ) as ws:
            with trio.move_on_after(CONNECT_SECONDS) as waited:
                hello = decode_from_relay(await ws.get_message())
            if waited.cancelled_caught:
                raise trio_websocket.ConnectionTimeout
            if not isinstance(hello, Hello):
                raise ProtocolError("the relay's first message must be hello")
            await ws.send_message(encode(Ready(self._max_body_bytes)))
            self.relay_id = hello.relay_id
            self.connected = True
            if self._state != "connected":
                self._state = "connected"
                logger.info(
                    "taking live events from the relay at %s (relay %s)", self.url, hello.relay_id
                )
            try:
                await self._converse(ws, hello)
            except _Unavailable:
                # Said, so the relay's log tells why; it sends the events again later.
                with trio.move_on_after(CLOSE_SECONDS):
                    await ws.aclose(CLOSE_TRY_AGAIN_LATER, "the integration cannot journal now")
                raise

    async def _converse(self, ws: trio_websocket.WebSocketConnection, hello: Hello) -> None:
        events, received = trio.open_memory_channel[RelayedEvent](
            min(hello.max_in_flight, MAX_QUEUE)
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, ws, events, hello)
                nursery.start_soon(self._journal, ws, received, hello)
        except BaseExceptionGroup as group:
            # The connection's end often fails both tasks (the reader and a send): the first
            # error is the session's. Anything else stays the group it is.
            expected, unexpected = group.split(_SESSION_ERRORS)
            leaves = _leaves(expected) if expected is not None else []
            if unexpected is not None or not leaves:
                raise
            raise leaves[0] from None

    async def _receive(
        self,
        ws: trio_websocket.WebSocketConnection,
        events: trio.MemorySendChannel[RelayedEvent],
        hello: Hello,
    ) -> None:
        horizon = SILENT_HEARTBEATS * hello.heartbeat_seconds
        async with events:
            while True:
                with trio.move_on_after(horizon) as waited:
                    text = await ws.get_message()
                if waited.cancelled_caught:
                    raise _Silent(f"nothing received for {horizon:g}s")
                message = decode_from_relay(text)
                if isinstance(message, Ping):
                    await ws.send_message(encode(Pong()))
                elif isinstance(message, RelayedEvent):
                    self._received += 1
                    await events.send(message)
                else:
                    raise ProtocolError("hello sent twice")

    async def _journal(
        self,
        ws: trio_websocket.WebSocketConnection,
        events: trio.MemoryReceiveChannel[RelayedEvent],
        hello: Hello,
    ) -> None:
        # One at a time, in the relay's order: so the journal here keeps the senders' order.
        async with events:
            async for event in events:
                ack = await self._take(event, hello)
                await ws.send_message(encode(ack))

    async def _take(self, event: RelayedEvent, hello: Hello) -> Ack:
        """Journal one relayed event here; the acknowledgement owed to the relay."""
        pipeline = self._ingress.route(WEBHOOK_PREFIX + event.path)
        if pipeline is None:
            return self._refuse(event, f"no processors on {event.path} in this integration")
        answer = await self._ingress.accept(
            pipeline,
            event.body,
            event.headers,
            fallback_delivery_id=fallback_delivery_id(hello.relay_id, event.seq),
        )
        trace_id = answer.body.get("trace_id")
        trace_id = trace_id if isinstance(trace_id, str) else None
        if answer.status == 202:
            self._journaled += 1
            return Ack(event.seq, AckStatus.JOURNALED, trace_id=trace_id)
        if answer.status == 200:
            self._duplicates += 1
            return Ack(event.seq, AckStatus.DUPLICATE, trace_id=trace_id)
        error = f"{answer.status}: {answer.body.get('error', 'refused')}"
        if 400 <= answer.status < 500:
            return self._refuse(event, error)
        raise _Unavailable(error)

    def _refuse(self, event: RelayedEvent, error: str) -> Ack:
        self._refused += 1
        self._refusals.warning(
            ("refused", event.path),
            "refused relayed event %s on %s (relay trace %s): %s",
            event.seq,
            event.path,
            event.trace_id,
            error,
        )
        return Ack(event.seq, AckStatus.REFUSED, error=error)
