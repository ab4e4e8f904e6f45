"""``PortRate``: how fast the Port client starts requests: a set rate, slowed to what Port says is left.

Port limits requests per organisation and tells where a client stands on every answer
(``x-ratelimit-limit`` per ``x-ratelimit-period``, ``x-ratelimit-remaining`` of it, reset in
``x-ratelimit-reset`` seconds). Sending at the set rate until refused wastes a window's tail
in 429s and retries; spreading what is left over the time to the reset does not. So after
each answer carrying them, the rate is the lower of the set one and ``remaining / reset``
(less the requests already in flight, which the count does not show yet) until the reset;
with nothing left, requests wait for the reset. Answers without the headers change nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import trio

EPOCH_THRESHOLD = 10_000.0
"""A reset above this many seconds is an epoch timestamp (as Ocean reads ``x-ratelimit-reset``)."""


class PortRate:
    """At most ``rate`` requests per second on average, bursts of up to ``burst``, slowed by
    what Port's rate-limit headers say is left (``observe``)."""

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0:
            raise ValueError(f"the request rate must be positive, not {rate!r}")
        self.rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = trio.current_time()
        self._lock = trio.Lock()
        self._slowed: float | None = None  # the rate Port's headers allow, until _slowed_until
        self._slowed_until = -math.inf
        self._paused_until = -math.inf

    @property
    def current(self) -> float:
        """The rate in force now: the set one, or lower while Port's budget is short."""
        if self._slowed is not None and trio.current_time() < self._slowed_until:
            return self._slowed
        return self.rate

    async def acquire(self) -> None:
        """Wait until one more request may start."""
        async with self._lock:  # first come, first served
            while True:
                now = trio.current_time()
                if now < self._paused_until:
                    # Port said nothing is left until its reset (also while this one slept).
                    await trio.sleep_until(self._paused_until)
                    continue
                rate = self.current
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await trio.sleep((1 - self._tokens) / rate)

    def observe(self, headers: Mapping[str, str], *, in_flight: int = 0) -> None:
        """Adapt to an answer's ``x-ratelimit-remaining`` and ``x-ratelimit-reset``."""
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset = _number(headers.get("x-ratelimit-reset"))
        if remaining is None or reset is None:
            return
        if reset > EPOCH_THRESHOLD:
            reset = reset - time.time()
        reset = max(reset, 0.0)
        now = trio.current_time()
        left = max(remaining - in_flight, 0.0)
        if left < 1:
            # Nothing left in this window: the next request waits for the reset.
            self._paused_until = max(self._paused_until, now + reset)
            self._tokens = min(self._tokens, 0.0)
            return
        if reset == 0:
            self._slowed = None
            return
        allowed = left / reset
        if allowed < self.rate:
            self._slowed, self._slowed_until = allowed, now + reset
            self._tokens = min(self._tokens, left)
        else:
            self._slowed = None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
