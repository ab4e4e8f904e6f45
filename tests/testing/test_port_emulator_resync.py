"""The emulator's resync routes, driven with httpx as Ocean would: owned entities and their
pages, resync requests, resync state; and the diff search (``$identifier in``, ``include``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ocean_trio.testing import PortEmulator, serve_port_emulator
from ocean_trio.testing._port_emulator._owned import MAX_SCANS

UA = "port-ocean/jira/0.1.0/my-jira/exporter"
OWNED = "/v1/blueprints/entities/datasource-entities"
MINE = {"datasource_prefix": "port-ocean/jira/", "datasource_suffix": "/my-jira/exporter"}


@pytest.fixture
def emulator() -> PortEmulator:
    emulator = PortEmulator(client_id="id", client_secret="secret")
    emulator.blueprints["service"] = {"identifier": "service", "schema": {}, "relations": {}}
    emulator.integrations["my-jira"] = {"identifier": "my-jira", "config": {}}
    return emulator


@pytest.fixture
async def base_url(emulator: PortEmulator) -> AsyncIterator[str]:
    async with serve_port_emulator(emulator) as url:
        yield url


@pytest.fixture
async def anon(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


@pytest.fixture
async def port(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers={"User-Agent": UA}) as client:
        token = await client.post(
            "/v1/auth/access_token", json={"clientId": "id", "clientSecret": "secret"}
        )
        client.headers["Authorization"] = f"Bearer {token.json()['accessToken']}"
        yield client


def seed(
    emulator: PortEmulator, identifier: str, *, datasource: str = UA, updated: str = "12:00:00"
) -> None:
    emulator.entities[("service", identifier)] = {
        "identifier": identifier,
        "blueprint": "service",
        "properties": {"tier": "gold", "lang": "py"},
        "relations": {},
        "updatedAt": f"2024-05-01T{updated}.000Z",
        "datasource": datasource,
    }


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    return str(body["message"])


async def owned(port: httpx.AsyncClient, **body: Any) -> tuple[list[str], Any]:
    response = await port.post(OWNED, json={**MINE, **body})
    assert response.status_code == 200, response.text
    data = response.json()
    return [e["identifier"] for e in data["entities"]], data["next"]


# --- owned entities ---------------------------------------------------------------------------


async def test_owned_entities_match_the_datasource_and_before(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    seed(emulator, "a", updated="11:00:00")
    seed(emulator, "b", updated="13:00:00")
    seed(emulator, "c", datasource="port-ocean/jira/0.2.0/my-jira/exporter")  # any version
    seed(emulator, "d", datasource="port-ocean/jira/0.1.0/my-jira/gitops")
    seed(emulator, "e", datasource="port-ocean/github/0.1.0/my-jira/exporter")
    seed(emulator, "f", datasource="port-ocean/jira/0.1.0/other-jira/exporter")
    emulator.entities[("service", "g")] = {"identifier": "g", "blueprint": "service"}
    assert await owned(port) == (["a", "b", "c"], None)
    assert await owned(port, before="2024-05-01T12:00:00+00:00") == (["a"], None)
    assert await owned(port, before="2024-05-01T13:00:00.000001Z") == (["a", "b", "c"], None)
    assert await owned(port, before="2024-05-01T13:00:00Z") == (["a", "c"], None)


async def test_pages_survive_deletes_between_them_and_repeat_on_retry(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    for i in range(8):
        seed(emulator, f"s{i}")
    first, cursor = await owned(port, limit=3)
    assert first == ["s0", "s1", "s2"]
    del emulator.entities[("service", "s0")]
    del emulator.entities[("service", "s4")]  # on the next page
    second, following = await owned(port, limit=3, **{"from": cursor})
    assert second == ["s3", "s5", "s6"]
    assert await owned(port, limit=3, **{"from": cursor}) == (second, following)  # a retry
    assert await owned(port, limit=3, **{"from": following}) == (["s7"], None)


async def test_owned_entities_refuse_bad_requests(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    seed(emulator, "s")
    for body in (
        {"datasource_prefix": "port-ocean/jira/"},
        {**MINE, "limit": 0},
        {**MINE, "limit": 5001},
        {**MINE, "limit": True},
        {**MINE, "before": "yesterday"},
        {**MINE, "before": 12},
        {**MINE, "from": "nope"},
        {**MINE, "from": 3},
    ):
        error(await port.post(OWNED, json=body), 422)
    _, cursor = await owned(port, limit=1)
    seed(emulator, "t")
    _, cursor = await owned(port, limit=1)
    other = {**MINE, "datasource_suffix": "/other/exporter", "from": cursor}
    assert "another datasource" in error(await port.post(OWNED, json=other), 422)
    for _ in range(MAX_SCANS):
        await owned(port, limit=1)
    assert "expired" in error(await port.post(OWNED, json={**MINE, "from": cursor}), 422)


# --- resync requests and state ------------------------------------------------------------------


async def test_resync_requests(
    port: httpx.AsyncClient, anon: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    path = "/v1/integration/my-jira/resync-request"
    assert (await port.get(path)).json() == {"ok": True, "request": None}
    made = await anon.post("/_emulator/resync-requests", json={"integration": "my-jira"})
    request = made.json()["request"]
    assert set(request) == {"id", "createdAt", "updatedAt"}
    assert (await port.get(path)).json()["request"] == request
    error(await port.get("/v1/integration/ghost/resync-request"), 404)
    error(await anon.post("/_emulator/resync-requests", json={"integration": "ghost"}), 404)
    error(await anon.post("/_emulator/resync-requests", json={}), 422)
    error(await anon.get(path), 401)
    emulator.reset()
    assert emulator.resync_requests == {}


async def test_resync_state_takes_oceans_fields_only(
    port: httpx.AsyncClient, anon: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    path = "/v1/integration/my-jira/resync-state"
    running = {"status": "running", "lastResyncStart": "x", "intervalInMinuets": 5}
    answer = (await port.patch(path, json=running)).json()["integration"]
    assert answer["resyncState"]["updatedAt"] == answer["updatedAt"]
    done = {"status": "completed", "lastResyncEnd": "y", "nextResync": None}
    await port.patch(path, json=done)
    stored = emulator.integrations["my-jira"]["resyncState"]
    assert stored["status"] == "completed"
    assert stored["lastResyncStart"] == "x"
    states = (await anon.get("/_emulator/resync-states")).json()["states"]
    assert [s["status"] for s in states] == ["running", "completed"]
    assert states[0]["integration"] == "my-jira"
    misspelt = {"status": "running", "intervalInMinutes": 5}  # Port's name is misspelt
    assert "intervalInMinutes" in error(await port.patch(path, json=misspelt), 422)
    error(await port.patch(path, json={"status": "done"}), 422)
    error(await port.patch("/v1/integration/ghost/resync-state", json=done), 404)
    assert len(emulator.resync_states) == 2


# --- the diff search ----------------------------------------------------------------------------


async def test_search_by_identifiers_includes_single_properties(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    for name in ("a", "b", "c"):
        seed(emulator, name)
    emulator.entities[("team", "a")] = {"identifier": "a", "blueprint": "team"}

    def query(*extra: dict[str, Any]) -> dict[str, Any]:
        rules = [
            {"property": "$identifier", "operator": "in", "value": ["c", "a", "zz"]},
            {"property": "$blueprint", "operator": "=", "value": "service"},
            *extra,
        ]
        return {"combinator": "and", "rules": rules}

    include = ["identifier", "properties.tier", "relations.team", "title"]
    response = await port.post("/v1/entities/search", json=query(), params={"include": include})
    assert response.json()["entities"] == [
        {"identifier": "c", "properties": {"tier": "gold"}, "relations": {}},
        {"identifier": "a", "properties": {"tier": "gold"}, "relations": {}},
    ]
    mine = {"property": "$datasource", "operator": "contains", "value": "/other/"}
    response = await port.post("/v1/entities/search", json=query(mine))
    assert response.json()["entities"] == []  # the lookup by key still applies every rule
