"""Outgoing webhooks: signed, delivered in order, retried a bounded number of times."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

import attrs
import httpx
import trio

from ._state import Change

logger = logging.getLogger("fake_tracker")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Fake-Signature`` value of ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


Target = Callable[[], Awaitable[str]]
"""Gives the URL to post webhooks to; may wait until the receiver is up."""


@attrs.define
class Delivery:
    """One webhook to deliver; its body, signature and id stay the same across retries."""

    id: str
    event: str
    body: bytes
    signature: str
    attempts: int = 0


@attrs.frozen
class SenderStatistics:
    queued: int
    sent: int
    dropped: int


# Answers after which the same delivery may succeed later; any other failure is final.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSender:
    """Delivers changes as signed webhooks, one at a time and in order.

    ``send_nowait`` queues a change and wakes the sender. A delivery that fails with a
    transport error or a retryable status stays at the head of the queue and ends the
    round; it is tried again on the next wake-up (the next change: with the simulator on,
    the next tick), at most ``max_attempts`` times, so a receiver that is down gets one
    attempt per tick. Any other error status drops the delivery at once. The queue holds at
    most ``max_queued`` deliveries; beyond that the oldest is dropped with an error, so a
    dead receiver cannot grow memory.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: Target,
        secret: str,
        *,
        max_queued: int = 1000,
        max_attempts: int = 5,
    ) -> None:
        self._client = client
        self._target = target
        self._secret = secret
        self._max_attempts = max_attempts
        self._queue: collections.deque[Delivery] = collections.deque()
        self._max_queued = max_queued
        self._wake = trio.Event()
        self._sent = 0
        self._dropped = 0

    def send_nowait(self, change: Change) -> None:
        """Queue ``change`` for delivery; never blocks."""
        body = json.dumps(change.payload(), separators=(",", ":")).encode()
        if len(self._queue) >= self._max_queued:
            lost = self._queue.popleft()
            self._dropped += 1
            logger.error("webhook queue full: dropped %s delivery %s", lost.event, lost.id)
        self._queue.append(
            Delivery(str(uuid.uuid4()), change.event, body, sign(self._secret, body))
        )
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Resolve the target URL (waits for the receiver), ``started()`` with it, then deliver forever."""
        url = await self._target()
        task_status.started(url)
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._flush(url)

    async def _flush(self, url: str) -> None:
        while self._queue:
            delivery = self._queue[0]
            headers = {
                "content-type": "application/json",
                "user-agent": "FakeTracker-Webhooks/1.0",
                "x-fake-event": delivery.event,
                "x-fake-delivery": delivery.id,
                "x-fake-signature": delivery.signature,
            }
            try:
                response = await self._client.post(url, content=delivery.body, headers=headers)
            except httpx.TransportError as error:
                self._failed(delivery, repr(error))
                return
            if response.is_success:
                self._queue.popleft()
                self._sent += 1
            elif response.status_code in _RETRY_STATUSES:
                self._failed(delivery, f"HTTP {response.status_code}")
                return
            else:
                self._queue.popleft()
                self._dropped += 1
                logger.error(
                    "webhook %s %s refused with HTTP %d: %s; dropped",
                    delivery.event,
                    delivery.id,
                    response.status_code,
                    response.text[:200],
                )

    def _failed(self, delivery: Delivery, why: str) -> None:
        delivery.attempts += 1
        if delivery.attempts >= self._max_attempts:
            self._queue.popleft()
            self._dropped += 1
            logger.error(
                "webhook %s %s failed %d times (%s); dropped",
                delivery.event,
                delivery.id,
                delivery.attempts,
                why,
            )
        else:
            logger.warning(
                "webhook %s %s failed (%s); retrying on the next tick",
                delivery.event,
                delivery.id,
                why,
            )

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(queued=len(self._queue), sent=self._sent, dropped=self._dropped)
