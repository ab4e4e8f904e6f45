"""One processor run: hooks, authentication, validation and ``handle_event`` with retries, under a deadline."""

from __future__ import annotations

import enum
import logging

import attrs
import trio

from ..mapping._models import ResourceConfig
from ._event import EventPayload, WebhookEventRawResults
from ._processor import AbstractWebhookProcessor

logger = logging.getLogger("ocean_trio.live_events")

# How long a processor's ``cancel()`` hook may run once its run was cancelled; shielded, so
# it must be short: shutdown waits for it.
CANCEL_HOOK_SECONDS = 5.0


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@attrs.frozen
class RunOutcome:
    """How one ``(processor, resource)`` run ended; ``results`` is set only when it succeeded."""

    processor: str
    kind: str | None
    resource_index: int | None
    status: RunStatus
    attempts: int
    results: WebhookEventRawResults | None = None
    error: str | None = None


async def handle_with_retries(
    processor: AbstractWebhookProcessor, payload: EventPayload, resource: ResourceConfig | None
) -> WebhookEventRawResults:
    """Call ``handle_event`` until it succeeds or the processor's policy gives up.

    The delays come from the processor (``calculate_retry_delay``) and are slept with
    ``trio.sleep``, so cancellation (shutdown, the run's deadline) interrupts them.
    """
    while True:
        try:
            return await processor.handle_event(payload, resource)  # type: ignore[arg-type]
        except Exception as error:
            await processor.on_error(error)
            if not (
                processor.should_retry(error) and processor.retry_count < processor.max_retries
            ):
                raise
            processor.retry_count += 1
            await trio.sleep(processor.calculate_retry_delay())


def run_outcome(
    processor: AbstractWebhookProcessor,
    resource: ResourceConfig | None,
    resource_index: int | None,
    status: RunStatus,
    *,
    results: WebhookEventRawResults | None = None,
    error: str | None = None,
) -> RunOutcome:
    """The outcome of ``processor``'s run for ``resource``, attempts counted from ``retry_count``."""
    return RunOutcome(
        processor=type(processor).__name__,
        kind=resource.kind if resource is not None else None,
        resource_index=resource_index,
        status=status,
        attempts=processor.retry_count + (0 if status is RunStatus.REJECTED else 1),
        results=results,
        error=error,
    )


async def run_processor(
    processor: AbstractWebhookProcessor,
    resource: ResourceConfig | None,
    resource_index: int | None,
    payload: EventPayload,
) -> RunOutcome:
    """Run ``processor`` for one resource on ``payload`` (this run's own copy of the event's).

    Errors become the outcome, ``Cancelled`` propagates. The caller owns the deadline
    (``max_event_processing_seconds``). When the run is cancelled, by that deadline or by
    shutdown, the processor's ``cancel()`` hook runs before the cancellation goes on.
    """
    event = processor.event
    try:
        await processor.before_processing()
        if not await processor.authenticate(payload, event.headers):
            return run_outcome(
                processor,
                resource,
                resource_index,
                RunStatus.REJECTED,
                error="authentication failed",
            )
        if not await processor.validate_payload(payload):
            return run_outcome(
                processor, resource, resource_index, RunStatus.REJECTED, error="invalid payload"
            )
        results = await handle_with_retries(processor, payload, resource)
        await processor.after_processing()
    except trio.Cancelled:
        await _call_cancel_hook(processor)
        raise
    except Exception as error:
        logger.warning("%s failed (trace %s): %r", type(processor).__name__, event.trace_id, error)
        return run_outcome(processor, resource, resource_index, RunStatus.FAILED, error=repr(error))
    if not isinstance(results, WebhookEventRawResults):
        error_text = f"handle_event returned {type(results).__name__}, not WebhookEventRawResults"
        return run_outcome(processor, resource, resource_index, RunStatus.FAILED, error=error_text)
    return run_outcome(processor, resource, resource_index, RunStatus.SUCCEEDED, results=results)


async def _call_cancel_hook(processor: AbstractWebhookProcessor) -> None:
    # Shielded: we are being cancelled, yet the hook must get its chance to clean up.
    with trio.move_on_after(CANCEL_HOOK_SECONDS, shield=True):
        try:
            await processor.cancel()
        except Exception as error:
            logger.warning("%s.cancel() raised %r", type(processor).__name__, error)
