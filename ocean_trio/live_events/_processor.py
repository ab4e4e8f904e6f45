"""``AbstractWebhookProcessor``: Ocean's live event processor contract, same names and defaults."""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod

from .._exceptions import RetryableError
from .._retry import RetryPolicy
from ..mapping._models import ResourceConfig
from ._event import EventHeaders, EventPayload, WebhookEvent, WebhookEventRawResults

logger = logging.getLogger("ocean_trio.live_events")


class WebhookProcessorType(enum.StrEnum):
    """``WEBHOOK`` results are mapped per matching resource; ``ACTION`` results are not mapped."""

    WEBHOOK = "webhook"
    ACTION = "action"


class AbstractWebhookProcessor(ABC):
    """Subclass to turn a live event into raw items to upsert and delete.

    One instance is made per event (and per matching resource), so ``self.event`` and
    ``self.retry_count`` belong to one run. ``handle_event`` is retried per the class
    attributes below while ``should_retry`` says so; everything else runs once. The whole
    run (hooks, authentication, validation, all attempts) is limited by
    ``max_event_processing_seconds``; ``cancel()`` is called when the run is cancelled by
    shutdown or that timeout.
    """

    max_retries: int = 3
    initial_retry_delay_seconds: float = 1.0
    max_retry_delay_seconds: float = 30.0
    exponential_base_seconds: float = 2.0

    def __init__(self, event: WebhookEvent) -> None:
        self.event = event
        self.retry_count = 0

    @classmethod
    def get_processor_type(cls) -> WebhookProcessorType:
        """``WEBHOOK`` by default; ``ACTION`` processors get ``resource_config=None``."""
        return WebhookProcessorType.WEBHOOK

    @classmethod
    def group_key(cls, event: WebhookEvent) -> str | None:
        """The ordering key of ``event`` (e.g. the issue id), or None to leave it to others.

        Computed at ingress. Events with the same key are processed one at a time in arrival
        order; events whose processors all return None share one group per webhook path.
        """
        return None

    @abstractmethod
    async def should_process_event(self, event: WebhookEvent) -> bool:
        """Whether this processor handles ``event`` at all."""

    @abstractmethod
    async def get_matching_kinds(self, event: WebhookEvent) -> list[str]:
        """The resource kinds ``event`` affects; each matches every resource of that kind."""

    @abstractmethod
    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        """False rejects the event (not retried)."""

    @abstractmethod
    async def validate_payload(self, payload: EventPayload) -> bool:
        """False rejects the event (not retried)."""

    @abstractmethod
    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        """Fetch fresh data and return the raw items to upsert and to delete."""

    async def before_processing(self) -> None:
        """Runs first in every run."""

    async def after_processing(self) -> None:
        """Runs after a successful ``handle_event``."""

    async def cancel(self) -> None:
        """Runs (shielded, briefly) when the run is cancelled or times out: release what you hold."""

    async def on_error(self, error: Exception) -> None:
        """Runs after every failed ``handle_event`` attempt, before the retry decision."""
        attempt = f"{type(self).__name__} attempt {self.retry_count + 1}/{self.max_retries + 1}"
        if not self.should_retry(error):
            logger.warning("%s failed: %r; not retried (not a retryable error)", attempt, error)
        elif self.retry_count >= self.max_retries:
            logger.warning("%s failed: %r; not retried (no attempts left)", attempt, error)
        else:
            logger.warning("%s failed: %r; retrying", attempt, error)

    def should_retry(self, error: Exception) -> bool:
        """Retry only ``RetryableError`` by default (Ocean parity)."""
        return isinstance(error, RetryableError)

    @classmethod
    def retry_policy(cls) -> RetryPolicy:
        """The class attributes as a ``RetryPolicy`` (Ocean counts the first retry as ``base ** 1``)."""
        return RetryPolicy(
            max_attempts=cls.max_retries + 1,
            initial_delay=cls.initial_retry_delay_seconds * cls.exponential_base_seconds,
            base=cls.exponential_base_seconds,
            max_delay=cls.max_retry_delay_seconds,
        )

    def calculate_retry_delay(self) -> float:
        """``min(initial * base ** retry_count, max)``; ``retry_count`` is already incremented."""
        return self.retry_policy().delay(self.retry_count)

    def validate_webhook_setup(self) -> bool:
        """Kept for Ocean compatibility; never called."""
        return True
