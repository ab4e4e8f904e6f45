"""One processor run: hooks, authentication, validation and ``handle_event`` with retries, under a deadline."""

from __future__ import annotations

import copy
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
            if not (processor.should_retry(error) and processor.retry_count < processor.max_retries):
                raise
            processor.retry_count += 1
            await trio.sleep(processor.calculate_retry_delay())


async def run_processor(
    processor: AbstractWebhookProcessor,
    resource: ResourceConfig | None,
    resource_index: int | None,
    *,
    timeout: float,
    copy_payload: bool,
) -> RunOutcome:
    """Run ``processor`` for one resource under ``fail_after(timeout)``; never raises but ``Cancelled``.

    ``copy_payload`` gives this run its own deep copy of the payload, so runs sharing an event
    cannot see each other's mutations.
    """
    name = type(processor).__name__
    kind = resource.kind if resource is not None else None

    def outcome(status: RunStatus, **kwargs: object) -> RunOutcome:
        return RunOutcome(
            processor=name,
            kind=kind,
            resource_index=resource_index,
            status=status,
            attempts=processor.retry_count + (1 if status is not RunStatus.REJECTED else 0),
            **kwargs,  # type: ignore[arg-type]
        )

    event = processor.event
    payload = copy.deepcopy(event.payload) if copy_payload else event.payload
    try:
        with trio.fail_after(timeout):
            try:
                await processor.before_processing()
                if not await processor.authenticate(payload, event.headers):
                    return outcome(RunStatus.REJECTED, error="authentication failed")
                if not await processor.validate_payload(payload):
                    return outcome(RunStatus.REJECTED, error="invalid payload")
                results = await handle_with_retries(processor, payload, resource)
                await processor.after_processing()
            except trio.Cancelled:
                await _call_cancel_hook(processor)
                raise
    except trio.TooSlowError:
        logger.warning("%s timed out after %.1fs (trace %s)", name, timeout, event.trace_id)
        return outcome(RunStatus.TIMED_OUT, error=f"timed out after {timeout:g}s")
    except Exception as error:
        logger.warning("%s failed (trace %s): %r", name, event.trace_id, error)
        return outcome(RunStatus.FAILED, error=repr(error))
    if not isinstance(results, WebhookEventRawResults):
        return outcome(
            RunStatus.FAILED,
            error=f"handle_event returned {type(results).__name__}, not WebhookEventRawResults",
        )
    return outcome(RunStatus.SUCCEEDED, results=results)


async def _call_cancel_hook(processor: AbstractWebhookProcessor) -> None:
    # Shielded: we are being cancelled, yet the hook must get its chance to clean up.
    with trio.move_on_after(CANCEL_HOOK_SECONDS, shield=True):
        try:
            await processor.cancel()
        except Exception as error:
            logger.warning("%s.cancel() raised %r", type(processor).__name__, error)
