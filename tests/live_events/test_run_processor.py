"""One processor run: Ocean's outcomes, retry timing on virtual time, timeouts and cancellation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import trio
import trio.testing

from ocean_trio._exceptions import RetryableError
from ocean_trio.live_events._event import (
    EventHeaders,
    EventPayload,
    WebhookEvent,
    WebhookEventRawResults,
)
from ocean_trio.live_events._processor import AbstractWebhookProcessor
from ocean_trio.live_events._run import RunStatus, handle_with_retries, run_processor
from ocean_trio.mapping._models import (
    EntityMapping,
    MappingsConfig,
    PortResourceConfig,
    ResourceConfig,
    Selector,
)

RESOURCE = ResourceConfig(
    kind="issue",
    selector=Selector(query="true"),
    port=PortResourceConfig(
        entity=MappingsConfig(mappings=EntityMapping(identifier=".id", blueprint='"issue"'))
    ),
)


def _args(
    processor: AbstractWebhookProcessor,
) -> tuple[AbstractWebhookProcessor, ResourceConfig, int, EventPayload]:
    return processor, RESOURCE, 0, processor.event.payload


def make_event(payload: dict[str, Any] | None = None) -> WebhookEvent:
    return WebhookEvent.from_dict({"payload": payload or {"id": "1"}, "headers": {"x-a": "b"}})


class Recorder(AbstractWebhookProcessor):
    """A processor whose behaviour each test scripts; it records what the framework called."""

    auth = True
    valid = True
    failures: list[BaseException] = []  # raised by successive handle_event attempts

    def __init__(self, event: WebhookEvent) -> None:
        super().__init__(event)
        self.calls: list[str] = []
        self.attempt_times: list[float] = []
        self.errors_seen: list[Exception] = []
        self.failures = list(type(self).failures)

    async def should_process_event(self, event: WebhookEvent) -> bool:
        return True

    async def get_matching_kinds(self, event: WebhookEvent) -> list[str]:
        return ["issue"]

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        self.calls.append("authenticate")
        return self.auth

    async def validate_payload(self, payload: EventPayload) -> bool:
        self.calls.append("validate_payload")
        return self.valid

    async def before_processing(self) -> None:
        self.calls.append("before_processing")

    async def after_processing(self) -> None:
        self.calls.append("after_processing")

    async def on_error(self, error: Exception) -> None:
        self.errors_seen.append(error)

    async def cancel(self) -> None:
        self.calls.append("cancel")

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        self.calls.append("handle_event")
        self.attempt_times.append(trio.current_time())
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
        return WebhookEventRawResults(updated_raw_results=[payload], deleted_raw_results=[])


async def test_success_runs_hooks_in_ocean_order() -> None:
    processor = Recorder(make_event())
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.attempts == 1
    assert outcome.results == WebhookEventRawResults([{"id": "1"}], [])
    assert processor.calls == [
        "before_processing",
        "authenticate",
        "validate_payload",
        "handle_event",
        "after_processing",
    ]


@pytest.mark.parametrize(
    ("auth", "valid", "error"),
    [(False, True, "authentication failed"), (True, False, "invalid payload")],
)
async def test_authenticate_or_validate_false_rejects_without_retry(
    auth: bool, valid: bool, error: str
) -> None:
    class P(Recorder):
        pass

    P.auth, P.valid = auth, valid
    processor = P(make_event())
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.REJECTED
    assert outcome.error == error
    assert outcome.attempts == 0
    assert "handle_event" not in processor.calls
    assert "after_processing" not in processor.calls


async def test_retryable_errors_back_off_exponentially_on_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class P(Recorder):
        failures = [RetryableError("a"), RetryableError("b"), RetryableError("c")]

    processor = P(make_event())
    start = trio.current_time()
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.attempts == 4
    # Ocean's delays: retry_count is incremented first, so 1*2**1, 1*2**2, 1*2**3 seconds.
    assert [t - start for t in processor.attempt_times] == [0, 2, 6, 14]
    assert [str(e) for e in processor.errors_seen] == ["a", "b", "c"]


async def test_retries_stop_after_max_retries(autojump_clock: trio.testing.MockClock) -> None:
    class P(Recorder):
        max_retries = 2
        failures = [RetryableError(str(i)) for i in range(5)]

    processor = P(make_event())
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 3
    assert outcome.error == "RetryableError('2')"
    assert "after_processing" not in processor.calls


async def test_delay_is_capped_by_max_retry_delay(autojump_clock: trio.testing.MockClock) -> None:
    class P(Recorder):
        max_retries = 5
        max_retry_delay_seconds = 5.0
        failures = [RetryableError(str(i)) for i in range(5)]

    processor = P(make_event())
    start = trio.current_time()
    await run_processor(*_args(processor))
    gaps = [
        b - a for a, b in zip(processor.attempt_times, processor.attempt_times[1:], strict=False)
    ]
    assert gaps == [2, 4, 5, 5, 5]
    assert processor.attempt_times[0] == start


async def test_non_retryable_error_fails_at_once() -> None:
    class P(Recorder):
        failures = [KeyError("missing")]

    processor = P(make_event())
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.error == "KeyError('missing')"
    assert len(processor.errors_seen) == 1  # on_error still ran


async def test_custom_should_retry_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    class P(Recorder):
        failures = [ConnectionError("x")]

        def should_retry(self, error: Exception) -> bool:
            return isinstance(error, ConnectionError)

    processor = P(make_event())
    outcome = await run_processor(*_args(processor))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.attempts == 2


async def test_timeout_cancels_the_run_and_calls_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Slow(Recorder):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            self.calls.append("handle_event")
            await trio.sleep_forever()
            raise AssertionError("unreachable")

    processor = Slow(make_event())
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(90):
            await run_processor(*_args(processor))
    assert trio.current_time() - start == 90
    assert processor.calls[-1] == "cancel"


async def test_timeout_covers_retries_too(autojump_clock: trio.testing.MockClock) -> None:
    class P(Recorder):
        max_retries = 10
        failures = [RetryableError(str(i)) for i in range(10)]

    processor = P(make_event())
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(20):
            await run_processor(*_args(processor))
    assert trio.current_time() - start == 20
    assert processor.calls[-1] == "cancel"


async def test_shutdown_cancellation_calls_cancel_and_propagates() -> None:
    started = trio.Event()

    class Blocking(Recorder):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            started.set()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

    processor = Blocking(make_event())
    finished = False
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            nonlocal finished
            await run_processor(*_args(processor))
            finished = True

        nursery.start_soon(run)
        await started.wait()
        nursery.cancel_scope.cancel()
    assert not finished  # Cancelled went through, no outcome was produced
    assert processor.calls[-1] == "cancel"


async def test_cancel_hook_errors_do_not_hide_cancellation() -> None:
    started = trio.Event()

    class BadCancel(Recorder):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            started.set()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def cancel(self) -> None:
            raise RuntimeError("cleanup failed")

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, BadCancel(make_event()))
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught


async def _run(processor: AbstractWebhookProcessor) -> None:
    await run_processor(*_args(processor))


async def test_a_run_works_on_the_payload_it_is_given() -> None:
    class Mutating(Recorder):
        async def handle_event(
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> WebhookEventRawResults:
            payload["id"] = "changed"
            return WebhookEventRawResults([payload], [])

    event = make_event({"id": "1"})
    await run_processor(Mutating(event), RESOURCE, 0, copy.deepcopy(event.payload))
    assert event.payload == {"id": "1"}


async def test_handle_event_returning_wrong_type_fails_the_run() -> None:
    class Wrong(Recorder):
        async def handle_event(  # type: ignore[override]  # the wrong type is the point
            self, payload: EventPayload, resource_config: ResourceConfig
        ) -> list[dict[str, Any]]:
            return [payload]

    outcome = await run_processor(*_args(Wrong(make_event())))
    assert outcome.status is RunStatus.FAILED
    assert "not WebhookEventRawResults" in (outcome.error or "")


async def test_handle_with_retries_reraises_the_last_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class P(Recorder):
        max_retries = 1
        failures = [RetryableError("1"), RetryableError("2")]

    with pytest.raises(RetryableError, match="2"):
        await handle_with_retries(P(make_event()), {}, RESOURCE)
