"""The Port client's request rate in virtual time: the set rate, and how Port's
``x-ratelimit-*`` headers slow it."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from ocean_trio.catalog._port_rate import PortRate


async def starts(rate: PortRate, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await rate.acquire()
        times.append(trio.current_time())
    return times


async def test_the_set_rate_spaces_requests_after_a_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = PortRate(rate=5.0, burst=2)
    assert await starts(rate, 6) == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8])


async def test_a_short_budget_spreads_what_is_left_until_the_reset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = PortRate(rate=100.0, burst=5)
    rate.observe({"x-ratelimit-remaining": "4", "x-ratelimit-reset": "2"})
    assert rate.current == 2.0  # 4 left over 2 s
    # at most the 4 left at once, then 2 a second; after the reset, the set rate again
    assert await starts(rate, 6) == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5, 1.0])
    await trio.sleep(1.0)
    assert rate.current == 100.0


async def test_requests_in_flight_count_against_what_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = PortRate(rate=100.0, burst=5)
    rate.observe({"x-ratelimit-remaining": "12", "x-ratelimit-reset": "4"}, in_flight=8)
    assert rate.current == 1.0  # (12 - 8) over 4 s


async def test_nothing_left_waits_for_the_reset(autojump_clock: trio.testing.MockClock) -> None:
    rate = PortRate(rate=100.0, burst=5)
    rate.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"})
    # at the reset Port's window is fresh: the burst is allowed again
    assert await starts(rate, 2) == pytest.approx([3.0, 3.0])


async def test_a_pause_announced_while_a_request_waits_holds_it_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = PortRate(rate=1.0, burst=1)
    await rate.acquire()  # the one token: the next waits until t=1
    started: list[float] = []

    async def next_request() -> None:
        await rate.acquire()
        started.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(next_request)
        await trio.sleep(0.5)
        rate.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"})
    assert started == pytest.approx([3.5])


async def test_a_reset_given_as_an_epoch_is_read_as_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = PortRate(rate=100.0, burst=5)
    epoch = time.time() + 10
    rate.observe({"x-ratelimit-remaining": "5", "x-ratelimit-reset": f"{epoch:.3f}"})
    assert rate.current == pytest.approx(0.5, rel=0.02)  # 5 left over about 10 s


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ratelimit-remaining": "3"},
        {"x-ratelimit-reset": "3"},
        {"x-ratelimit-remaining": "many", "x-ratelimit-reset": "3"},
        {"x-ratelimit-remaining": "-1", "x-ratelimit-reset": "3"},
        {"x-ratelimit-remaining": "nan", "x-ratelimit-reset": "3"},
        {"x-ratelimit-remaining": "1000", "x-ratelimit-reset": "3"},  # more than the set rate
    ],
)
async def test_answers_without_a_short_budget_change_nothing(
    autojump_clock: trio.testing.MockClock, headers: dict[str, str]
) -> None:
    rate = PortRate(rate=5.0, burst=2)
    rate.observe(headers)
    assert rate.current == 5.0
    assert await starts(rate, 3) == pytest.approx([0.0, 0.0, 0.2])


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        PortRate(rate=0, burst=1)
