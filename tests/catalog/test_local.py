"""The embedded SQLite catalog: Port's upsert semantics, atomic batches, persistence, reads."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from ocean_trio import Entity, EntityChanges, WriteOptions
from ocean_trio.catalog._applier import Applier
from ocean_trio.catalog._local import LocalCatalog

MERGE = WriteOptions(merge=True)
REPLACE = WriteOptions(merge=False)


svc = partial(Entity, blueprint="svc")


async def test_merge_upsert_merges_properties_and_relations(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        first = svc("a", title="A", properties={"x": 1, "y": 2}, relations={"team": "t1"})
        await catalog.apply([EntityChanges((first,), options=MERGE)])
        second = svc("a", properties={"y": 3, "z": 4}, relations={"repo": "r"})
        await catalog.apply([EntityChanges((second,), options=MERGE)])
        stored = await catalog.get_entity("svc", "a")
        assert stored is not None
        assert stored["title"] == "A"
        assert stored["properties"] == {"x": 1, "y": 3, "z": 4}
        assert stored["relations"] == {"team": "t1", "repo": "r"}
        assert stored["createdAt"] <= stored["updatedAt"]


async def test_upsert_without_merge_replaces_the_entity(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        await catalog.apply([EntityChanges((svc("a", title="A", properties={"x": 1}),))])
        await catalog.apply([EntityChanges((svc("a", properties={"y": 2}),), options=REPLACE)])
        stored = await catalog.get_entity("svc", "a")
        assert stored is not None
        assert "title" not in stored
        assert stored["properties"] == {"y": 2}


async def test_batches_apply_in_order_and_deletes_remove(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        await catalog.apply(
            [
                EntityChanges((svc("a"), svc("b"))),
                EntityChanges(deletes=(svc("a"),)),
                EntityChanges((Entity("x", "other"),)),
            ]
        )
        assert [(e["blueprint"], e["identifier"]) for e in await catalog.list_entities()] == [
            ("other", "x"),
            ("svc", "b"),
        ]
        assert await catalog.blueprint_counts() == {"other": 1, "svc": 1}
        assert await catalog.list_entities("svc", limit=1) == [await catalog.get_entity("svc", "b")]


async def test_a_failing_batch_writes_nothing(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        bad = svc("bad", properties={"when": object()})
        with pytest.raises(TypeError):
            await catalog.apply([EntityChanges((svc("good"),)), EntityChanges((bad,))])
        assert await catalog.list_entities() == []
        await catalog.apply([EntityChanges((svc("later"),))])
        assert [e["identifier"] for e in await catalog.list_entities()] == ["later"]


async def test_search_identifiers_are_skipped(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        search = Entity({"combinator": "and", "rules": []}, "svc")
        await catalog.apply([EntityChanges((search, svc("a")))])
        assert [e["identifier"] for e in await catalog.list_entities()] == ["a"]
        assert catalog.statistics().skipped_search_identifiers == 1


async def test_entities_and_blueprints_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "c.sqlite3"
    async with LocalCatalog.open(path) as catalog:
        await catalog.upsert_blueprints([{"identifier": "svc", "title": "Service"}])
        await catalog.apply([EntityChanges((svc("a", title="A"),))])
    async with LocalCatalog.open(path) as catalog:
        assert (await catalog.get_entity("svc", "a") or {}).get("title") == "A"
        assert await catalog.list_blueprints() == [{"identifier": "svc", "title": "Service"}]


async def test_a_new_catalog_opened_by_several_processes_at_once_opens_in_each(
    tmp_path: Path,
) -> None:
    # Each open has its connection on a thread of its own, as another process's would be
    # (sail --ingress-processes, instances sharing a catalog file). When the schema was not
    # created under the write lock, two opens saw a column missing and both added it
    # ("duplicate column name") in a third of the rounds.
    opened = 0

    async def open_one(path: Path) -> None:
        nonlocal opened
        async with LocalCatalog.open(path):
            opened += 1

    for round_ in range(20):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(open_one, tmp_path / f"c{round_}.sqlite3")
    assert opened == 80


async def test_applier_groups_concurrent_changes_into_few_writes(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        applier = Applier(catalog)
        async with trio.open_nursery() as nursery:
            await nursery.start(applier.run)
            async with trio.open_nursery() as writers:
                for i in range(50):
                    writers.start_soon(applier.apply, EntityChanges((svc(str(i)),)))
            nursery.cancel_scope.cancel()
        stats = applier.statistics()
        assert len(await catalog.list_entities()) == 50
        assert stats.changes_applied == 50
        assert stats.batches < 50
