"""``RateLimit``: Port's organisation-wide request limit, off unless a test sets it.

When set, every answer carries Port's headers (``x-ratelimit-period``, ``-limit``,
``-remaining``, ``-reset`` in whole seconds, rounded up) and a request past the limit of the
current window is answered ``429`` with them. Windows are fixed: the first request after one
ends opens the next.
"""

from __future__ import annotations

import math

import trio


class RateLimit:
    """``limit`` requests per ``period`` seconds (``set``); ``None``: no limit, no headers."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.period = 60.0
        self._opened = -math.inf
        self._used = 0

    def set(self, limit: int, period: float = 60.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the rate limit must be a positive int, not {limit!r}")
        if not period > 0:
            raise ValueError(f"the rate limit's period must be positive, not {period!r}")
        self.limit, self.period = limit, float(period)
        self._opened, self._used = -math.inf, 0

    def clear(self) -> None:
        self.limit = None

    def take(self) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """Count one request: whether it is within the limit, and the headers to answer with."""
        if self.limit is None:
            return True, []
        now = trio.current_time()
        if now >= self._opened + self.period:
            self._opened, self._used = now, 0
        allowed = self._used < self.limit
        if allowed:
            self._used += 1
        reset = math.ceil(max(0.0, self._opened + self.period - now))
        headers = {
            "x-ratelimit-period": f"{self.period:g}",
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.limit - self._used),
            "x-ratelimit-reset": str(reset),
        }
        return allowed, [(k.encode(), v.encode()) for k, v in headers.items()]
