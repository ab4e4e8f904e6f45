"""A resync into Port (``PortSink.open_resync``) against the emulator on 127.0.0.1: the owned
entities search and its pages, diffing, entities newer than the resync, reconciliation."""

from __future__ import annotations

import logging
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ocean_trio._entity import Entity
from ocean_trio._retry import RetryPolicy
from ocean_trio.catalog._changes import EntityChanges, WriteOptions
from ocean_trio.catalog._port_client import Datasource, PortClient
from ocean_trio.catalog._port_resync import (
    PortResync,
    ProducedKeys,
    open_port_resync,
    resync_start,
)
from ocean_trio.catalog._port_sink import PortSink
from ocean_trio.resync._target import ResyncRun, WriteCounts
from ocean_trio.testing._port_emulator import PortEmulator, port_client_for

UA = "port-ocean/test/0.1.0/test-integration/exporter"
OTHER_INTEGRATION = "port-ocean/test/0.1.0/someone-else/exporter"
BLUEPRINTS: list[dict[str, Any]] = [
    {"identifier": "service", "relations": {"team": {"target": "team", "many": False}}},
    {"identifier": "team"},
    {
        "identifier": "deployment",
        "relations": {"service": {"target": "service", "required": True, "many": False}},
    },
]


@asynccontextmanager
async def port() -> AsyncIterator[tuple[PortEmulator, PortClient]]:
    emulator = PortEmulator()
    for blueprint in BLUEPRINTS:
        emulator.blueprints[blueprint["identifier"]] = {"schema": {}, **blueprint}
    retry = RetryPolicy(max_attempts=4, initial_delay=0.01)
    async with port_client_for(
        emulator, user_agent=UA, retry=retry, requests_per_second=10_000
    ) as client:
        yield emulator, client


def service(i: int, **properties: Any) -> Entity:
    return Entity(
        identifier=f"svc-{i}",
        blueprint="service",
        title=f"Service {i}",
        team=["b", "a"],
        properties={"tier": "gold", "owner": None, **properties},
    )


def services(count: int, **properties: Any) -> tuple[Entity, ...]:
    return tuple(service(i, **properties) for i in range(count))


def run(number: int) -> ResyncRun:
    return ResyncRun(id=number, started_at=time.time())


def an_hour_passes(emulator: PortEmulator) -> None:
    """Move every stored entity's createdAt and updatedAt an hour back: what the last resync
    wrote is now clearly older than the next one's start (no sleeping, no same-millisecond
    races)."""
    for entity in emulator.entities.values():
        for field in ("createdAt", "updatedAt"):
            stamp = datetime.fromisoformat(entity[field]) - timedelta(hours=1)
            entity[field] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(emulator: PortEmulator, identifier: str, *, datasource: str = UA, **fields: Any) -> None:
    emulator.entities[("service", identifier)] = {
        "identifier": identifier,
        "blueprint": "service",
        "title": None,
        "team": [],
        "properties": {},
        "relations": {},
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "datasource": datasource,
        **fields,
    }


async def first_resync(client: PortClient, emulator: PortEmulator, count: int) -> None:
    async with open_port_resync(client, run(1)) as writer:
        counts = await writer.write(EntityChanges(upserts=services(count)))
    assert counts == WriteCounts(upserted=count)
    an_hour_passes(emulator)
    emulator.requests.clear()


def bulk_upserts(emulator: PortEmulator) -> int:
    return emulator.calls("POST", "/v1/blueprints/service/entities/bulk")


# --- the client: datasource, owned entities ---------------------------------------------------


def test_the_datasource_comes_from_the_user_agent() -> None:
    assert Datasource.from_user_agent(UA) == Datasource(
        "port-ocean/test/", "/test-integration/exporter"
    )
    slashed = Datasource.from_user_agent("port-ocean/gh/1.2/org/team/exporter")
    assert slashed == Datasource("port-ocean/gh/", "/org/team/exporter")
    for bad in ("curl/8.0", "port-ocean/test/0.1.0", "other/test/1/x/exporter"):
        with pytest.raises(ValueError, match="not port-ocean"):
            Datasource.from_user_agent(bad)


async def test_owned_entities_come_page_by_page() -> None:
    async with port() as (emulator, client):
        for i in range(12):
            seed(emulator, f"mine-{i}")
        seed(emulator, "theirs", datasource=OTHER_INTEGRATION)
        seed(emulator, "other-type", datasource="port-ocean/jira/0.1.0/test-integration/exporter")
        seed(
            emulator, "other-version", datasource="port-ocean/test/9.9.9/test-integration/exporter"
        )
        pages = [
            [e["identifier"] for e in page] async for page in client.owned_entity_pages(limit=5)
        ]
        assert [len(page) for page in pages] == [5, 5, 3]
        assert sorted(i for page in pages for i in page) == sorted(
            [f"mine-{i}" for i in range(12)] + ["other-version"]
        )
        assert emulator.calls("POST", "/v1/blueprints/entities/datasource-entities") == 3


async def test_owned_entities_before_a_time() -> None:
    async with port() as (emulator, client):
        seed(emulator, "old", updatedAt="2024-05-01T11:59:59.999Z")
        seed(emulator, "at", updatedAt="2024-05-01T12:00:00.000Z")
        seed(emulator, "new", updatedAt="2024-05-01T12:00:00.001Z")
        before = datetime(2024, 5, 1, 12, tzinfo=UTC)
        found = [e["identifier"] async for p in client.owned_entity_pages(before=before) for e in p]
        assert found == ["old"]
        everything = [e["identifier"] async for p in client.owned_entity_pages() for e in p]
        assert everything == ["old", "at", "new"]
        with pytest.raises(ValueError, match="timezone"):
            async for _ in client.owned_entity_pages(before=datetime(2024, 5, 1)):
                pass


async def test_owned_entity_pages_hold_only_what_reconciliation_reads() -> None:
    # A page of 5,000 whole entities parsed is tens of MB; trimmed as it is parsed, the
    # page holds the keys and times only.
    async with port() as (emulator, client):
        text = "x" * 2000
        for i in range(500):
            seed(
                emulator,
                f"big-{i}",
                title=f"Service {i}",
                properties={"readme": text, "nested": {"identifier": "n", "blueprint": "b"}},
                relations={"team": f"team-{i % 7}"},
            )
        pages = [page async for page in client.owned_entity_pages(limit=500)]
    (page,) = pages
    assert len(page) == 500
    assert {tuple(sorted(e)) for e in page} == {
        ("blueprint", "createdAt", "identifier", "updatedAt")
    }
    assert page[0]["identifier"] == "big-0"


async def test_owned_entity_pages_are_retried_on_transient_errors() -> None:
    async with port() as (emulator, client):
        for i in range(6):
            seed(emulator, f"mine-{i}")
        emulator.faults.fail(503, path="/v1/blueprints/entities/datasource-entities", times=2)
        pages = [len(page) async for page in client.owned_entity_pages(limit=4)]
        assert pages == [4, 2]
        statuses = [r.status for r in emulator.requests if r.path.endswith("datasource-entities")]
        assert statuses == [503, 503, 200, 200]


async def test_current_entities_searches_50_identifiers_at_a_time_with_only_the_fields_asked() -> (
    None
):
    async with port() as (emulator, client):
        for i in range(120):
            seed(emulator, f"s-{i}", properties={"tier": "gold", "lang": "py"}, title="T")
        seed(emulator, "s-120", datasource=OTHER_INTEGRATION)
        wanted = [f"s-{i}" for i in range(121)] + ["missing"]
        found = await client.current_entities(
            "service", wanted, include=["identifier", "properties.tier", "updatedAt"]
        )
        assert sorted(e["identifier"] for e in found) == sorted(f"s-{i}" for i in range(120))
        assert found[0] == {
            "identifier": found[0]["identifier"],
            "properties": {"tier": "gold"},
            "updatedAt": "2024-01-01T00:00:00.000Z",
        }
        searches = [r for r in emulator.requests if r.path == "/v1/entities/search"]
        assert len(searches) == 3  # 122 identifiers: 50 + 50 + 22
        assert all(r.query["exclude_calculated_properties"] == "true" for r in searches)


# --- write: diffing ------------------------------------------------------------------------------


async def test_a_second_resync_of_unchanged_entities_upserts_nothing() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 60)
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=services(60)))
        assert counts == WriteCounts(upserted=0, skipped=60)
        assert bulk_upserts(emulator) == 0
        assert emulator.calls("POST", "/v1/entities/search") == 2  # 50 + 10


async def test_only_changed_entities_are_upserted() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        batch = list(services(20))
        batch[3] = service(3, tier="silver")
        batch[5] = Entity(
            identifier="svc-5",
            blueprint="service",
            title="Renamed",
            team=["a", "b"],
            properties={"tier": "gold"},
        )
        batch[7] = Entity(
            identifier="svc-7",
            blueprint="service",
            title="Service 7",
            team=["a", "b"],
            properties={"tier": "gold", "owner": None},
            relations={"team": "platform"},  # a relation not set before
        )
        batch[6] = Entity(  # owner: None in Port, absent in the mapping: equal
            identifier="svc-6",
            blueprint="service",
            title="Service 6",
            team=["a", "b"],  # the same team in another order: equal
            properties={"tier": "gold"},
        )
        del emulator.entities[("service", "svc-8")]["properties"]["owner"]  # and the reverse
        batch.append(service(99))  # new
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=tuple(batch)))
        assert counts == WriteCounts(upserted=4, skipped=17)
        assert emulator.entities[("service", "svc-3")]["properties"]["tier"] == "silver"
        assert emulator.entities[("service", "svc-5")]["title"] == "Renamed"
        assert emulator.entities[("service", "svc-7")]["relations"]["team"] == "platform"
        assert ("service", "svc-99") in emulator.entities
        assert bulk_upserts(emulator) == 1


async def test_an_entity_written_after_the_resync_began_is_left_as_it_is() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            # a live event writes svc-4 while the resync runs
            live = [{"identifier": "svc-4", "blueprint": "service", "properties": {"tier": "live"}}]
            await client.upsert_entities(
                "service", live, merge=True, create_missing_related_entities=True
            )
            emulator.requests.clear()
            counts = await writer.write(EntityChanges(upserts=services(20, tier="resync")))
        assert counts == WriteCounts(upserted=19, skipped=1)
        assert emulator.entities[("service", "svc-4")]["properties"]["tier"] == "live"
        assert emulator.entities[("service", "svc-5")]["properties"]["tier"] == "resync"


async def test_an_entity_the_resync_wrote_itself_is_compared_not_skipped() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=services(20, tier="new")))
            assert counts == WriteCounts(upserted=20)
            # a second kind maps the same entities (merged), after this resync wrote them
            second = tuple(service(i, tier="new", lang="py") for i in range(20))
            counts = await writer.write(EntityChanges(upserts=second))
        assert counts == WriteCounts(upserted=20)
        assert emulator.entities[("service", "svc-0")]["properties"]["lang"] == "py"


async def test_small_batches_and_search_identifiers_are_not_diffed() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=services(10)))
            assert counts == WriteCounts(upserted=10)  # Ocean: 10 or fewer are upserted as is
            by_search = [
                Entity(
                    identifier=f"svc-{i}",
                    blueprint="service",
                    properties={"tier": "gold"},
                    relations={"team": {"combinator": "and", "rules": []}},
                )
                for i in range(15)
            ]
            await writer.write(EntityChanges(upserts=tuple(by_search)))
        assert emulator.calls("POST", "/v1/entities/search") == 0


async def test_a_failed_diff_search_upserts_every_entity(caplog: pytest.LogCaptureFixture) -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        emulator.faults.fail(422, path="/v1/entities/search")
        async with open_port_resync(client, run(2)) as writer:
            with caplog.at_level(logging.WARNING, "ocean_trio.port"):
                counts = await writer.write(EntityChanges(upserts=services(20)))
        assert counts == WriteCounts(upserted=20)
        assert "comparing 20 entities with Port failed" in caplog.text


async def test_a_transient_diff_search_failure_is_retried() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        emulator.faults.fail(502, path="/v1/entities/search", times=2)
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=services(20)))
        assert counts == WriteCounts(upserted=0, skipped=20)
        assert emulator.calls("POST", "/v1/entities/search") == 3


async def test_refused_entities_are_counted_and_never_reconciled_away() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        bad = Entity(identifier="svc-3", blueprint="service", relations={"nope": "x"})
        batch = (*services(20)[:3], bad, *services(20)[4:])
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=batch))
            assert counts.upserted == 0
            assert counts.failed == 1
            assert counts.skipped == 19
            assert "svc-3" in counts.failures[0]
            assert "unknown_relation" in counts.failures[0]
            reconciliation = await writer.reconcile(0.9, WriteOptions())
        assert (reconciliation.stale, reconciliation.deleted) == (0, 0)
        assert ("service", "svc-3") in emulator.entities


# --- reconcile ------------------------------------------------------------------------------------


async def test_stale_entities_are_deleted_and_only_those() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        seed(emulator, "theirs", datasource=OTHER_INTEGRATION)
        async with open_port_resync(client, run(2)) as writer:
            await writer.write(EntityChanges(upserts=services(15)))
            reconciliation = await writer.reconcile(0.9, WriteOptions())
        assert reconciliation.to_json() == {
            "owned": 20,
            "stale": 5,
            "deleted": 5,
            "skipped_reason": None,
        }
        assert sorted(i for _, i in emulator.entities) == sorted(
            [f"svc-{i}" for i in range(15)] + ["theirs"]
        )


async def test_reconcile_pages_through_owned_entities_twice() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        produced = tuple(service(i) for i in range(20) if i % 3)  # 13 kept, 7 stale, every page
        async with open_port_resync(client, run(2), page_size=4) as writer:
            await writer.write(EntityChanges(upserts=produced))
            emulator.requests.clear()
            reconciliation = await writer.reconcile(0.9, WriteOptions())
        assert (reconciliation.owned, reconciliation.stale, reconciliation.deleted) == (20, 7, 7)
        assert {i for _, i in emulator.entities} == {e.identifier for e in produced}
        # 5 pages to count, then 5 to delete page by page
        assert emulator.calls("POST", "/v1/blueprints/entities/datasource-entities") == 10
        assert emulator.calls("POST", "/v1/blueprints/service/bulk/entities/delete") == 5


async def test_over_the_threshold_nothing_is_deleted() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            await writer.write(EntityChanges(upserts=services(11)))
            reconciliation = await writer.reconcile(0.4, WriteOptions())
        assert (reconciliation.owned, reconciliation.stale, reconciliation.deleted) == (20, 9, 0)
        assert reconciliation.skipped_reason == (
            "9 of 20 owned entities (45%) would be deleted, more than"
            " entityDeletionThreshold 0.4: nothing deleted"
        )
        assert len(emulator.entities) == 20
        assert emulator.calls("POST", "/v1/blueprints/service/bulk/entities/delete") == 0
        # only one pass: the count decided
        assert emulator.calls("POST", "/v1/blueprints/entities/datasource-entities") == 1


@pytest.mark.parametrize(("threshold", "deleted"), [(0.0, 0), (0.45, 9), (1.0, 9)])
async def test_threshold_bounds(threshold: float, deleted: int) -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            await writer.write(EntityChanges(upserts=services(11)))
            reconciliation = await writer.reconcile(threshold, WriteOptions())
        assert reconciliation.deleted == deleted
        assert len(emulator.entities) == 20 - deleted
        assert (reconciliation.skipped_reason is None) == (deleted > 0)


async def test_threshold_1_deletes_everything_owned() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            reconciliation = await writer.reconcile(1.0, WriteOptions())
        assert (reconciliation.owned, reconciliation.stale, reconciliation.deleted) == (20, 20, 20)
        assert emulator.entities == {}


async def test_an_entity_written_after_the_resync_began_is_not_reconciled_away() -> None:
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            await writer.write(EntityChanges(upserts=services(15)))
            live = [{"identifier": "svc-17", "blueprint": "service", "properties": {}}]
            await client.upsert_entities(
                "service", live, merge=True, create_missing_related_entities=True
            )
            reconciliation = await writer.reconcile(0.9, WriteOptions())
        # svc-17 existed before: owned, but written since, so not stale
        assert (reconciliation.owned, reconciliation.stale, reconciliation.deleted) == (20, 4, 4)
        assert ("service", "svc-17") in emulator.entities


async def test_a_resync_that_changes_most_entities_still_deletes_the_few_gone() -> None:
    # Every entity that existed before the resync counts, changed or not: counting only the
    # unchanged ones (as Ocean does) would make this 1 stale of 1 and refuse.
    async with port() as (emulator, client):
        await first_resync(client, emulator, 20)
        async with open_port_resync(client, run(2)) as writer:
            counts = await writer.write(EntityChanges(upserts=services(19, tier="silver")))
            assert counts.upserted == 19
            reconciliation = await writer.reconcile(0.3, WriteOptions())
        assert reconciliation.to_json() == {
            "owned": 20,
            "stale": 1,
            "deleted": 1,
            "skipped_reason": None,
        }
        assert ("service", "svc-19") not in emulator.entities


async def test_without_delete_dependents_dependents_go_first() -> None:
    async with port() as (emulator, client):
        options = WriteOptions(delete_dependent_entities=False)
        async with open_port_resync(client, run(1)) as writer:
            await writer.write(EntityChanges(upserts=services(12), options=options))
            deployments = tuple(
                Entity(
                    identifier=f"dep-{i}", blueprint="deployment", relations={"service": "svc-0"}
                )
                for i in range(3)
            )
            await writer.write(EntityChanges(upserts=deployments, options=options))
        an_hour_passes(emulator)
        async with open_port_resync(client, run(2)) as writer:
            await writer.write(EntityChanges(upserts=services(12)[1:], options=options))
            reconciliation = await writer.reconcile(0.9, options)
        # svc-0 is refused while its deployments exist: a second round deletes it
        assert (reconciliation.stale, reconciliation.deleted) == (4, 4)
        assert set(emulator.entities) == {("service", f"svc-{i}") for i in range(1, 12)}
        deletes = [r for r in emulator.requests if r.path.endswith("/bulk/entities/delete")]
        assert [r.query["delete_dependents"] for r in deletes] == ["false"] * 3


async def test_relation_targets_of_produced_entities_are_kept() -> None:
    async with port() as (emulator, client):
        async with open_port_resync(client, run(1)) as writer:
            teams = tuple(Entity(identifier=f"team-{i}", blueprint="team") for i in range(3))
            await writer.write(EntityChanges(upserts=teams))
        an_hour_passes(emulator)
        async with open_port_resync(client, run(2)) as writer:
            related = Entity(identifier="svc-0", blueprint="service", relations={"team": "team-1"})
            await writer.write(EntityChanges(upserts=(related,)))
            reconciliation = await writer.reconcile(1.0, WriteOptions())
        assert (reconciliation.owned, reconciliation.stale, reconciliation.deleted) == (3, 3, 2)
        assert ("team", "team-1") in emulator.entities


async def test_the_sink_opens_a_port_resync() -> None:
    async with port() as (_, client):
        async with PortSink(client).open_resync(run(1)) as writer:
            assert isinstance(writer, PortResync)
            await writer.write(EntityChanges(upserts=services(3)))
            assert writer.produced == 3
        assert writer.produced == 0  # dropped on exit


def test_the_start_is_rounded_down_to_port_milliseconds() -> None:
    assert resync_start(1714564800.1239) == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_produced_keys_flag_what_the_resync_wrote() -> None:
    keys = ProducedKeys()
    keys.add(("service", "a"), written=False)
    keys.add(("service", "b"), written=True)
    keys.add(("service", "b"), written=False)  # produced again, unchanged: still written
    assert ("service", "a") in keys
    assert ("service", "b") in keys
    assert ("team", "a") not in keys
    assert (keys.written(("service", "a")), keys.written(("service", "b"))) == (False, True)
    keys.add(("service", "a"), written=True)
    assert keys.written(("service", "a"))
    assert len(keys) == 2
    keys.add_targets(Entity(identifier="c", blueprint="service", relations={"t": ["x", "y"]}))
    assert keys.is_target("x")
    assert not keys.is_target("c")


def test_a_produced_entity_costs_under_100_bytes() -> None:
    def produce(keys: ProducedKeys, count: int) -> None:
        for i in range(count):
            keys.add(("service", f"a-rather-long-identifier-of-a-service-{i:08d}"), written=True)

    small, large = ProducedKeys(), ProducedKeys()
    tracemalloc.start()
    try:
        produce(small, 10_000)
        at_10k = tracemalloc.get_traced_memory()[0]
        produce(large, 100_000)
        at_110k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_entity = (at_110k - at_10k) / 100_000
    assert per_entity < 100, per_entity
