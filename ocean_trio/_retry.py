"""``RetryPolicy``: the one description of retries (attempts, backoff, jitter, horizon, Retry-After).

Processor runs, the applier and the Port client each decide *whether* an error is worth
another try (by its type or status); how many tries and how long to wait between them is
always a ``RetryPolicy``, and the waiting is always ``Retries.wait`` (``trio.sleep``, so
cancellation interrupts it and tests run it on virtual time).
"""

from __future__ import annotations

import random

import attrs
import trio


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff: the ``n``-th retry waits ``initial_delay * base ** (n - 1)``.

    Each wait is capped at ``max_delay`` and spread by ``± jitter`` (a fraction). Retries stop
    after ``max_attempts`` attempts in all (``None``: no count limit) or when the next wait
    would end more than ``horizon`` seconds after the first attempt (``None``: no time limit).
    A delay the other side asks for (``Retry-After``) replaces the computed one, still capped.
    """

    max_attempts: int | None = 4
    initial_delay: float = attrs.field(default=1.0, validator=_positive)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    base: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.0, validator=_positive)
    horizon: float | None = None

    def delay(self, retry: int, *, asked: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 is the first retry)."""
        if asked is not None:
            return min(max(asked, 0.0), self.max_delay)
        delay = self.initial_delay * self.base ** (retry - 1)
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return min(delay, self.max_delay)

    def start(self) -> Retries:
        """The retries of one operation starting now."""
        return Retries(self, trio.current_time())


@attrs.define
class Retries:
    """Where one operation stands under its policy: how many retries so far, since when."""

    policy: RetryPolicy
    started: float
    count: int = 0

    def next_delay(self, *, asked: float | None = None) -> float | None:
        """The wait before the next attempt, or ``None`` when the policy allows no more."""
        retry = self.count + 1
        limit = self.policy.max_attempts
        if limit is not None and retry >= limit:
            return None
        delay = self.policy.delay(retry, asked=asked)
        horizon = self.policy.horizon
        if horizon is not None and trio.current_time() + delay > self.started + horizon:
            return None
        return delay

    async def wait(self, delay: float) -> None:
        """Sleep ``delay`` (from ``next_delay``) and count one more retry."""
        self.count += 1
        await trio.sleep(delay)
