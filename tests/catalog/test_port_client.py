"""``PortClient`` against the Port API emulator on 127.0.0.1: tokens, batching, retries, pool."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from ocean_trio._exceptions import PortApiError
from ocean_trio._retry import RetryPolicy
from ocean_trio.catalog._port_client import (
    PortClient,
    _asked_delay,
)
from ocean_trio.testing._port_emulator import PortEmulator, port_client_for

SERVICE = {
    "identifier": "service",
    "title": "Service",
    "schema": {
        "properties": {"team": {"type": "string"}, "doc": {"type": "string"}},
        "required": [],
    },
    "relations": {},
}


@asynccontextmanager
async def port(**client_options: object) -> AsyncIterator[tuple[PortEmulator, PortClient]]:
    emulator = PortEmulator()
    emulator.blueprints["service"] = dict(SERVICE)
    options: dict[str, Any] = {
        "retry": RetryPolicy(max_attempts=6, initial_delay=0.01, jitter=0.2),
        **client_options,
    }
    async with port_client_for(emulator, **options) as client:
        yield emulator, client


def services(count: int, **properties: str) -> list[dict[str, object]]:
    return [
        {"identifier": f"svc-{i}", "blueprint": "service", "properties": dict(properties)}
        for i in range(count)
    ]


async def upsert(client: PortClient, entities: list[dict[str, object]]) -> None:
    result = await client.upsert_entities(
        "service", entities, merge=True, create_missing_related_entities=True
    )
    assert result.errors == ()


async def test_the_token_is_fetched_once_and_refreshed_after_expiry() -> None:
    async with port() as (emulator, client):
        await upsert(client, services(1))
        await upsert(client, services(1))
        assert emulator.calls("POST", "/v1/auth/access_token") == 1
        emulator.expire_tokens()
        await upsert(client, services(1))
        assert emulator.calls("POST", "/v1/auth/access_token") == 2
        assert client.statistics().token_refreshes == 2


async def test_concurrent_requests_share_one_token() -> None:
    async with port() as (emulator, client):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(upsert, client, services(1))
        assert emulator.calls("POST", "/v1/auth/access_token") == 1


async def test_bulk_upserts_take_at_most_20_entities() -> None:
    async with port() as (emulator, client):
        await upsert(client, services(45, team="a"))
        assert emulator.calls("POST", "/v1/blueprints/service/entities/bulk") == 3
        assert len(emulator.entities) == 45
        stored = emulator.entities[("service", "svc-7")]
        assert stored["properties"] == {"team": "a"}
        assert stored["datasource"] == "port-ocean/test/0.1.0/test-integration/exporter"


async def test_bulk_upserts_stay_under_1_mib() -> None:
    async with port() as (emulator, client):
        await upsert(client, services(12, doc="x" * 200_000))  # ~2.4 MB in all
        bulk = [r for r in emulator.requests if r.path.endswith("/entities/bulk")]
        assert len(bulk) >= 3
        assert {r.status for r in bulk} == {200}
        assert len(emulator.entities) == 12


async def test_a_413_falls_back_to_single_upserts() -> None:
    async with port() as (emulator, client):
        emulator.faults.fail(413, path="/v1/blueprints/service/entities/bulk", times=1)
        await upsert(client, services(5))
        assert emulator.calls("POST", "/v1/blueprints/service/entities/bulk") == 1
        singles = [r for r in emulator.requests if r.path == "/v1/blueprints/service/entities"]
        assert len(singles) == 5
        assert len(emulator.entities) == 5


async def test_refused_entities_are_reported_one_by_one() -> None:
    async with port() as (_, client):
        bad = {"identifier": "has space", "blueprint": "service", "properties": {}}
        result = await client.upsert_entities(
            "service", [*services(2), bad], merge=True, create_missing_related_entities=True
        )
        assert sorted(result.upserted) == ["svc-0", "svc-1"]
        [error] = result.errors
        assert (error.identifier, error.code) == ("has space", "invalid_identifier")


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
async def test_outages_and_rate_limits_are_retried(status: int) -> None:
    async with port() as (emulator, client):
        emulator.faults.fail(
            status, path="/v1/blueprints/service/entities/bulk", times=2, retry_after=0.01
        )
        await upsert(client, services(1))
        assert emulator.calls("POST", "/v1/blueprints/service/entities/bulk") == 3
        assert client.statistics().retries == 2


async def test_retries_are_bounded() -> None:
    async with port(retry=RetryPolicy(max_attempts=3, initial_delay=0.01)) as (emulator, client):
        emulator.faults.fail(503, path="/v1/blueprints/service/entities/bulk", times=None)
        with pytest.raises(PortApiError) as error:
            await upsert(client, services(1))
        assert error.value.status == 503
        assert error.value.transient
        assert emulator.calls("POST", "/v1/blueprints/service/entities/bulk") == 3


async def test_client_errors_and_non_idempotent_calls_are_not_retried() -> None:
    async with port() as (emulator, client):
        with pytest.raises(PortApiError) as missing:
            await client.upsert_entity("nope", {"identifier": "a"}, params={"upsert": "true"})
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert not missing.value.transient
        emulator.integrations["it"] = {"identifier": "it", "config": {}}
        emulator.faults.fail(503, path="/v1/integration/it", method="PATCH", times=1)
        with pytest.raises(PortApiError):
            await client.patch_integration("it", {"version": "2"})
        assert emulator.calls("PATCH", "/v1/integration/it") == 1


async def test_deletes_search_blueprints_and_integrations() -> None:
    async with port() as (_, client):
        await upsert(client, services(3))
        assert await client.delete_entities(
            "service", ["svc-0", "svc-9"], delete_dependents=True
        ) == ["svc-0"]
        assert await client.delete_entity("service", "svc-1", delete_dependents=True)
        assert not await client.delete_entity("service", "svc-1", delete_dependents=True)
        found = await client.search_entities(
            {
                "combinator": "and",
                "rules": [{"property": "$blueprint", "operator": "=", "value": "service"}],
            }
        )
        assert [e["identifier"] for e in found] == ["svc-2"]
        assert await client.get_blueprint("missing") is None
        await client.create_blueprint({"identifier": "team", "title": "Team"})
        await client.create_blueprint({"identifier": "team", "title": "Team"})  # 409: left as is
        assert (await client.get_blueprint("team") or {})["title"] == "Team"
        assert await client.get_integration("it") is None
        await client.create_integration({"installationId": "it", "config": {"resources": []}})
        assert (await client.get_integration("it") or {})["config"] == {"resources": []}


# Cancelling httpx requests mid-flight leaves their request-body generators to the garbage
# collector (httpx's, not ours): that is what this test does on purpose.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_pool_survives_requests_cancelled_mid_flight() -> None:
    """httpcore leaks pool slots when requests queued for a connection are cancelled (#1093).

    The pool here is smaller than the client's concurrency, so requests queue in the pool
    and get cancelled there; without the guard every later request fails with PoolTimeout.
    """

    def small_pool() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(2.0, pool=1.0), limits=httpx.Limits(max_connections=4)
        )

    async with port(max_concurrency=20, requests_per_second=1e6, client_factory=small_pool) as (
        emulator,
        client,
    ):
        await upsert(client, services(1))
        emulator.faults.delay(0.01, path="/v1/blueprints/service/entities/bulk")
        rng = random.Random(7)

        async def churn() -> None:
            for _ in range(40):
                with trio.move_on_after(rng.random() * 0.005):
                    await upsert(client, services(1))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(churn)
        emulator.faults.clear()
        assert client.statistics().pool_resets > 0
        with trio.fail_after(5):
            await upsert(client, services(2))  # a poisoned pool would raise PoolTimeout


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"x-ratelimit-reset": "7"}, 7.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_the_delay_the_server_asks_for(headers: dict[str, str], expected: float | None) -> None:
    response = httpx.Response(429, headers=headers)
    assert _asked_delay(response) == expected


def test_retry_after_as_a_date_and_reset_as_an_epoch() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = _asked_delay(httpx.Response(429, headers={"retry-after": later}))
    assert delay is not None
    assert 25 < delay <= 30
    epoch = _asked_delay(httpx.Response(429, headers={"x-ratelimit-reset": str(time.time() + 10)}))
    assert epoch is not None
    assert 8 < epoch <= 10


async def test_the_client_follows_ports_rate_limit_headers_instead_of_hitting_429s() -> None:
    # Set to 1,000 requests/s, against a Port allowing 5 a second: the headers of each answer
    # tell the client to wait for the next window, so no request is refused.
    async with port(requests_per_second=1000.0) as (emulator, client):
        emulator.rate_limit.set(limit=5, period=1.0)
        for _ in range(12):
            assert await client.get_blueprint("service") is not None
        statuses = [r.status for r in emulator.requests]
    assert len(statuses) == 13  # the token, then 12 reads
    assert statuses.count(429) == 0


async def test_two_processes_creating_the_integration_at_once_both_get_it() -> None:
    # The split topology's processes start together against a Port that lacks the
    # integration: one creates it, the other's 409 reads it back instead of failing.
    emulator = PortEmulator()
    body = {"installationId": "twins", "installationAppType": "fake", "config": {"a": 1}}
    async with port_client_for(emulator) as first, port_client_for(emulator) as second:
        created = await first.create_integration(body)
        again = await second.create_integration({**body, "config": {"a": 2}})
    assert created["identifier"] == again["identifier"] == "twins"
    assert again["config"] == {"a": 1}  # the first one's, as Port has it
