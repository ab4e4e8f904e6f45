"""Searching the catalog: a case-insensitive substring of the identifier or the title, in SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocean_trio import Entity, EntityChanges, Integration
from ocean_trio.catalog._local import LocalCatalog
from ocean_trio.testing import make_settings, serve_integration

from ..processors import ItemProcessor

ENTITIES = (
    Entity("svc-Alpha", "svc", title="Payments API"),
    Entity("svc-beta", "svc", title="Search 100% done"),
    Entity("svc_gamma", "svc"),
    Entity("svcXgamma", "svc", title="x"),
    Entity("back\\slash", "svc", title=None),
    Entity("alpha-team", "team", title="The ALPHA team"),
    Entity(42, "num", title=7),
)


async def search(catalog: LocalCatalog, text: str, blueprint: str | None = None) -> list[Any]:
    return [e["identifier"] for e in await catalog.list_entities(blueprint, search=text)]


async def test_search_matches_identifier_or_title_ignoring_case(tmp_path: Path) -> None:
    async with LocalCatalog.open(tmp_path / "c.sqlite3") as catalog:
        await catalog.apply([EntityChanges(ENTITIES)])
        assert await search(catalog, "ALPHA") == ["svc-Alpha", "alpha-team"]
        assert await search(catalog, "alpha", "svc") == ["svc-Alpha"]
        assert await search(catalog, "payments") == ["svc-Alpha"]  # by title only
        assert await search(catalog, "api", "team") == []
        assert await search(catalog, "4") == [42]  # a number identifier, as its JSON
        assert await search(catalog, "7") == [42]  # a number title
        # LIKE's wildcards and the escape character are matched literally
        assert await search(catalog, "%") == ["svc-beta"]
        assert await search(catalog, "_") == ["svc_gamma"]
        assert await search(catalog, "c_g") == ["svc_gamma"]  # not svcXgamma
        assert await search(catalog, "\\") == ["back\\slash"]
        assert await search(catalog, "nothing") == []
        # no search (or an empty one) lists everything; limit still applies after the match
        assert len(await catalog.list_entities()) == len(ENTITIES)
        assert len(await catalog.list_entities(search="")) == len(ENTITIES)
        found = await catalog.list_entities("svc", search="GAMMA", limit=1)
        assert [e["identifier"] for e in found] == ["svcXgamma"]


async def test_search_over_http(integration_root: Path, tmp_path: Path) -> None:
    integration = Integration(root=integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        for identifier, title in [("I-1", "Fix the login"), ("I-2", "Log rotation"), ("J-3", "x")]:
            item = {"id": identifier, "title": title, "status": "open"}
            await server.post_event("/webhook", {"item": item})
        await server.next_outcomes(3)

        async def found(**params: str) -> list[str]:
            response = await server.client.get("/catalog/entities", params=params)
            assert response.status_code == 200
            return [e["identifier"] for e in response.json()["entities"]]

        assert await found(blueprint="item", search="LOG") == ["I-1", "I-2"]
        assert await found(blueprint="item", search="j-") == ["J-3"]
        assert await found(blueprint="item", search="log", limit="1") == ["I-1"]
        assert await found(blueprint="item", search="") == ["I-1", "I-2", "J-3"]
        assert await found(blueprint="nope", search="log") == []
