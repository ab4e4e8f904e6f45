"""The local catalog's resync writer: its lookup searches the primary key, and what it skips."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ocean_trio import Entity, EntityChanges, WriteOptions
from ocean_trio.catalog._local import LocalCatalog
from ocean_trio.catalog._local_resync import lookup_sql
from ocean_trio.resync._target import ResyncRun


async def test_the_lookup_of_stored_entities_searches_the_primary_key(tmp_path: Path) -> None:
    # A scan per batch made a resync quadratic in the catalog's size.
    async with LocalCatalog.open(tmp_path / "catalog.sqlite3") as catalog:

        def plan(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(f"EXPLAIN QUERY PLAN {lookup_sql(3)}", ["b", "i"] * 3)
            return [str(row[3]) for row in rows]

        steps = await catalog.run_sync(plan)
    assert any(s.startswith("SEARCH e USING PRIMARY KEY") for s in steps), steps
    assert not any(s.startswith(("SCAN e", "SCAN entities")) for s in steps), steps


def _item(identifier: str, **properties: object) -> Entity:
    return Entity(identifier=identifier, blueprint="item", properties=properties)


async def test_unchanged_entities_are_skipped_whether_their_text_or_only_their_merge_is_equal(
    tmp_path: Path,
) -> None:
    async with LocalCatalog.open(tmp_path / "catalog.sqlite3") as catalog:
        await catalog.apply([EntityChanges((_item("a", x=1), _item("b", x=1, y=2)))])
        # The resync begins after those live writes: they are not newer than it.
        async with catalog.open_resync(ResyncRun(1, started_at=time.time() + 0.001)) as writer:
            counts = await writer.write(
                EntityChanges(
                    (
                        _item("a", x=1),  # the same text as stored
                        _item("b", y=2),  # merged into the stored one: the same entity
                        _item("c", x=1),  # new
                    ),
                    options=WriteOptions(merge=True),
                )
            )
            assert (counts.upserted, counts.skipped) == (1, 2)
            counts = await writer.write(
                EntityChanges((_item("b", y=3),), options=WriteOptions(merge=True))
            )
            assert (counts.upserted, counts.skipped) == (1, 0)
        stored = await catalog.get_entity("item", "b")
    assert stored is not None
    assert stored["properties"] == {"x": 1, "y": 3}
