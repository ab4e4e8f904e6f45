"""Resync state reported to Port, and resync requests read from it (the emulator on 127.0.0.1)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from ocean_trio._retry import RetryPolicy
from ocean_trio.catalog._port_client import PortClient
from ocean_trio.catalog._port_state import next_resync, report_resync_state, resync_state_body
from ocean_trio.resync._state import ResyncState, ResyncStatus
from ocean_trio.testing._port_emulator import PortEmulator, port_client_for

UA = "port-ocean/test/0.1.0/my-integration/exporter"
START = datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()


@asynccontextmanager
async def port() -> AsyncIterator[tuple[PortEmulator, PortClient]]:
    emulator = PortEmulator()
    emulator.integrations["my-integration"] = {"identifier": "my-integration", "config": {}}
    retry = RetryPolicy(max_attempts=4, initial_delay=0.01)
    async with port_client_for(emulator, user_agent=UA, retry=retry) as client:
        yield emulator, client


def test_next_resync_is_the_next_multiple_of_the_interval_after_the_origin() -> None:
    assert next_resync(None, START, START + 10) is None
    assert next_resync(60, START, START) == "2024-05-01T13:00:00+00:00"
    assert next_resync(60, START, START + 3599.9) == "2024-05-01T13:00:00+00:00"
    assert next_resync(60, START, START + 3600) == "2024-05-01T14:00:00+00:00"
    assert next_resync(15, START, START + 7 * 3600 + 1) == "2024-05-01T19:15:00+00:00"


def test_the_bodies_are_oceans() -> None:
    state = ResyncState(id=1, reason="test", started_at=START + 0.5)
    running = resync_state_body(state, interval_minutes=60, schedule_origin=START, now=START + 1)
    assert running == {
        "status": "running",
        "lastResyncEnd": None,
        "lastResyncStart": "2024-05-01T12:00:00.500000+00:00",
        "nextResync": "2024-05-01T13:00:00+00:00",
        "intervalInMinuets": 60,
    }
    state.status = ResyncStatus.COMPLETED
    state.finished_at = START + 4000
    done = resync_state_body(state, interval_minutes=60, schedule_origin=START, now=START + 4001)
    assert done == {
        "status": "completed",
        "lastResyncEnd": "2024-05-01T13:06:40+00:00",
        "nextResync": "2024-05-01T14:00:00+00:00",
        "intervalInMinuets": 60,
    }
    state.status = ResyncStatus.ABORTED
    aborted = resync_state_body(state, interval_minutes=None)
    assert aborted["status"] == "aborted"
    assert aborted["nextResync"] is None
    assert aborted["intervalInMinuets"] is None


async def test_the_states_of_a_resync_reach_port_in_order() -> None:
    async with port() as (emulator, client):
        state = ResyncState(id=1, reason="test")
        first = await report_resync_state(client, "my-integration", state, interval_minutes=30)
        state.status = ResyncStatus.FAILED
        state.finished_at = state.started_at + 2
        second = await report_resync_state(client, "my-integration", state, interval_minutes=30)
        assert [s["status"] for s in emulator.resync_states] == ["running", "failed"]
        assert [s["updatedAt"] for s in emulator.resync_states] == [first, second]
        stored = emulator.integrations["my-integration"]["resyncState"]
        assert stored["status"] == "failed"
        assert stored["lastResyncStart"] is not None  # kept from the running state
        assert stored["intervalInMinuets"] == 30
        patches = [r for r in emulator.requests if r.method == "PATCH"]
        assert [r.path for r in patches] == ["/v1/integration/my-integration/resync-state"] * 2


async def test_a_transient_failure_of_the_state_report_is_retried() -> None:
    async with port() as (emulator, client):
        emulator.faults.fail(503, path="/v1/integration/my-integration/resync-state", times=2)
        state = ResyncState(id=1, reason="test")
        updated = await report_resync_state(client, "my-integration", state, interval_minutes=None)
        assert updated is not None
        assert [s["status"] for s in emulator.resync_states] == ["running"]
        patches = [r.status for r in emulator.requests if r.method == "PATCH"]
        assert patches == [503, 503, 200]


async def test_a_failed_state_report_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with port() as (emulator, client):
        emulator.faults.fail(503, path="/v1/integration/", times=None)
        state = ResyncState(id=1, reason="test")
        with caplog.at_level(logging.WARNING, "ocean_trio.port"):
            assert await report_resync_state(client, "ghost", state, interval_minutes=None) is None
            emulator.faults.clear()
            assert await report_resync_state(client, "ghost", state, interval_minutes=None) is None
        assert emulator.resync_states == []
        reports = [m for m in caplog.messages if m.startswith("reporting resync state")]
        assert len(reports) == 2
        assert "503" in reports[0]
        assert "404" in reports[1]


async def test_the_resync_request_is_read() -> None:
    async with port() as (emulator, client):
        assert await client.get_resync_request("my-integration") is None
        made = emulator.request_resync("my-integration")
        assert await client.get_resync_request("my-integration") == made
        newer = emulator.request_resync("my-integration")
        assert newer["id"] != made["id"]
        assert newer["updatedAt"] > made["updatedAt"]  # strictly newer, even in the same ms
        assert await client.get_resync_request("my-integration") == newer
        emulator.faults.fail(502, path="/v1/integration/my-integration/resync-request")
        assert await client.get_resync_request("my-integration") == newer  # retried
