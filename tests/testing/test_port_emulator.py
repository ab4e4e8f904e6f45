"""The Port API emulator, served on loopback and driven with httpx as Ocean would."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from ocean_trio.testing import Faults, PortEmulator, serve_port_emulator

UA = "port-ocean/jira/0.1.0/my-jira"
UPSERT = {"upsert": "true", "merge": "true", "create_missing_related_entities": "false"}
BLUEPRINTS: list[dict[str, Any]] = [
    {"identifier": "team", "title": "Team"},
    {
        "identifier": "service",
        "schema": {
            "properties": {"language": {"type": "string"}, "tier": {"type": "string"}},
            "required": ["language"],
        },
        "relations": {
            "team": {"target": "team", "required": False, "many": False},
            "dependsOn": {"target": "service", "required": False, "many": True},
        },
    },
    {
        "identifier": "deployment",
        "relations": {"service": {"target": "service", "required": True, "many": False}},
    },
]


@pytest.fixture
def emulator() -> PortEmulator:
    return PortEmulator(client_id="id", client_secret="secret")


@pytest.fixture
async def base_url(emulator: PortEmulator) -> AsyncIterator[str]:
    async with serve_port_emulator(emulator) as url:
        yield url


@pytest.fixture
async def anon(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers={"User-Agent": UA}) as client:
        yield client


@pytest.fixture
async def port(base_url: str, emulator: PortEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """An authorised client on an emulator holding BLUEPRINTS, with no requests recorded yet."""
    async with httpx.AsyncClient(base_url=base_url, headers={"User-Agent": UA}) as client:
        client.headers["Authorization"] = f"Bearer {await _token(client)}"
        for blueprint in BLUEPRINTS:
            assert (await client.post("/v1/blueprints", json=blueprint)).status_code == 200
        emulator.requests.clear()
        yield client


async def _token(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/v1/auth/access_token", json={"clientId": "id", "clientSecret": "secret"}
    )
    assert response.status_code == 200
    token: str = response.json()["accessToken"]
    return token


async def _upsert(
    client: httpx.AsyncClient, bp: str, entity: dict[str, Any], **params: str
) -> httpx.Response:
    return await client.post(f"/v1/blueprints/{bp}/entities", json=entity, params=UPSERT | params)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["error"] == code
    message: str = body["message"]
    return message


def _service(identifier: str, **properties: Any) -> dict[str, Any]:
    return {"identifier": identifier, "properties": {"language": "python", **properties}}


# --- auth -----------------------------------------------------------------------------------


async def test_token_is_issued_for_the_right_credentials_only(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        "/v1/auth/access_token", json={"clientId": "id", "clientSecret": "secret"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is True
    assert body["expiresIn"] == 3600
    assert body["tokenType"] == "Bearer"
    assert len(body["accessToken"]) > 20
    wrong = {"clientId": "id", "clientSecret": "nope"}
    _error(await anon.post("/v1/auth/access_token", json=wrong), 401, "invalid_credentials")
    missing = {"clientId": "id"}
    _error(await anon.post("/v1/auth/access_token", json=missing), 422, "invalid_request")


async def test_v1_needs_a_known_unexpired_token(
    anon: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    _error(await anon.get("/v1/blueprints/team"), 401, "unauthorized")
    bogus = {"Authorization": "Bearer not-a-token"}
    _error(await anon.get("/v1/blueprints/team", headers=bogus), 401, "unauthorized")
    good = {"Authorization": f"Bearer {await _token(anon)}"}
    _error(await anon.get("/v1/blueprints/team", headers=good), 404, "not_found")
    emulator.expire_tokens()
    _error(await anon.get("/v1/blueprints/team", headers=good), 401, "token_expired")
    fresh = {"Authorization": f"Bearer {await _token(anon)}"}
    _error(await anon.get("/v1/blueprints/team", headers=fresh), 404, "not_found")


# --- blueprints -----------------------------------------------------------------------------


async def test_blueprint_create_get_and_conflict(port: httpx.AsyncClient) -> None:
    response = await port.get("/v1/blueprints/service")
    assert response.status_code == 200
    blueprint = response.json()["blueprint"]
    assert blueprint["identifier"] == "service"
    assert blueprint["schema"]["required"] == ["language"]
    assert blueprint["relations"]["team"]["target"] == "team"
    _error(await port.post("/v1/blueprints", json=BLUEPRINTS[0]), 409, "identifier_taken")
    _error(await port.post("/v1/blueprints", json={"title": "x"}), 422, "invalid_identifier")
    _error(await port.get("/v1/blueprints/nope"), 404, "not_found")


# --- single upsert --------------------------------------------------------------------------


async def test_single_upsert_creates_then_merges(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    created = await _upsert(port, "service", {**_service("svc-1"), "title": "Service 1"})
    assert created.status_code == 201
    entity = created.json()["entity"]
    assert created.json()["ok"] is True
    assert entity["identifier"] == "svc-1"
    assert entity["blueprint"] == "service"
    assert entity["title"] == "Service 1"
    assert entity["datasource"] == UA
    assert entity["properties"] == {"language": "python"}

    merged = await _upsert(port, "service", {"identifier": "svc-1", "properties": {"tier": "1"}})
    assert merged.status_code == 200
    stored = emulator.entities[("service", "svc-1")]
    assert stored["properties"] == {"language": "python", "tier": "1"}
    assert stored["title"] == "Service 1"
    assert stored["createdAt"] == entity["createdAt"]


async def test_upsert_without_merge_replaces(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    first = {**_service("svc-1", tier="1"), "title": "Service 1", "relations": {"team": None}}
    assert (await _upsert(port, "service", first)).status_code == 201
    replaced = await _upsert(port, "service", _service("svc-1"), merge="false")
    assert replaced.status_code == 200
    stored = emulator.entities[("service", "svc-1")]
    assert stored["properties"] == {"language": "python"}
    assert stored["title"] is None
    assert stored["relations"] == {}
    partial = {"identifier": "svc-1", "properties": {"tier": "2"}}
    message = _error(
        await _upsert(port, "service", partial, merge="false"), 422, "missing_required_property"
    )
    assert "language" in message


@pytest.mark.parametrize(
    ("bp", "entity", "status", "code", "named"),
    [
        ("nope", _service("svc-1"), 404, "not_found", "nope"),
        ("service", {"properties": {"language": "go"}}, 422, "invalid_identifier", "None"),
        ("service", _service("has space"), 422, "invalid_identifier", "has space"),
        ("service", _service("x" * 1001), 422, "invalid_identifier", "1001"),
        ("service", {"identifier": "svc-1"}, 422, "missing_required_property", "language"),
        ("service", _service("svc-1", color="red"), 422, "unknown_property", "color"),
        (
            "service",
            {**_service("svc-1"), "relations": {"owner": "a"}},
            422,
            "unknown_relation",
            "owner",
        ),
        (
            "service",
            {**_service("svc-1"), "relations": {"dependsOn": "svc-2"}},
            422,
            "invalid_relation",
            "dependsOn",
        ),
        ("deployment", {"identifier": "d-1"}, 422, "missing_required_relation", "service"),
    ],
)
async def test_single_upsert_rejects_invalid_entities(
    port: httpx.AsyncClient,
    emulator: PortEmulator,
    bp: str,
    entity: dict[str, Any],
    status: int,
    code: str,
    named: str,
) -> None:
    assert named in _error(await _upsert(port, bp, entity), status, code)
    assert emulator.entities == {}


async def test_identifier_with_port_punctuation_is_accepted(port: httpx.AsyncClient) -> None:
    response = await _upsert(port, "team", {"identifier": "a@b_c.d+e:f/g=h-i"})
    assert response.status_code == 201


async def test_relation_to_missing_entity(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    entity = {**_service("svc-1"), "relations": {"team": "platform", "dependsOn": ["svc-1"]}}
    message = _error(await _upsert(port, "service", entity), 404, "not_found")
    assert "platform" in message
    assert emulator.entities == {}

    created = await _upsert(port, "service", entity, create_missing_related_entities="true")
    assert created.status_code == 201
    stub = emulator.entities[("team", "platform")]
    assert stub["blueprint"] == "team"
    assert stub["identifier"] == "platform"
    assert stub["properties"] == {}
    assert stub["datasource"] == UA
    assert sorted(emulator.entities) == [("service", "svc-1"), ("team", "platform")]


async def test_unknown_properties_allowed_when_the_blueprint_declares_none(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    response = await _upsert(port, "team", {"identifier": "t", "properties": {"anything": 1}})
    assert response.status_code == 201
    assert emulator.entities[("team", "t")]["properties"] == {"anything": 1}


# --- bulk upsert ----------------------------------------------------------------------------


async def test_bulk_upsert_validates_each_entity(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    entities = [
        _service("svc-1"),
        {"properties": {"language": "go"}},
        {"identifier": "svc-3"},
        {**_service("svc-4"), "relations": {"team": "ghost"}},
        _service("svc-5"),
    ]
    response = await port.post(
        "/v1/blueprints/service/entities/bulk", json={"entities": entities}, params=UPSERT
    )
    assert response.status_code == 207
    body = response.json()
    assert body["ok"] is True
    assert body["entities"] == [
        {"index": 0, "identifier": "svc-1", "created": True},
        {"index": 4, "identifier": "svc-5", "created": True},
    ]
    assert [(e["index"], e["identifier"], e["statusCode"], e["error"]) for e in body["errors"]] == [
        (1, "unknown", 422, "invalid_identifier"),
        (2, "svc-3", 422, "missing_required_property"),
        (3, "svc-4", 404, "not_found"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert sorted(emulator.entities) == [("service", "svc-1"), ("service", "svc-5")]

    again = await port.post(
        "/v1/blueprints/service/entities/bulk",
        json={"entities": [_service("svc-1"), _service("svc-2")]},
        params=UPSERT,
    )
    assert again.status_code == 200
    assert [e["created"] for e in again.json()["entities"]] == [False, True]
    assert again.json()["errors"] == []


async def test_bulk_upsert_limits(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    url = "/v1/blueprints/team/entities/bulk"
    many = [{"identifier": f"t{i}"} for i in range(21)]
    message = _error(
        await port.post(url, json={"entities": many}, params=UPSERT), 422, "too_many_entities"
    )
    assert "21" in message
    big = [{"identifier": "t", "properties": {"blob": "x" * (1024 * 1024)}}]
    _error(await port.post(url, json={"entities": big}, params=UPSERT), 413, "payload_too_large")
    _error(await port.post(url, json={"nope": []}, params=UPSERT), 422, "invalid_request")
    _error(
        await port.post("/v1/blueprints/nope/entities/bulk", json={"entities": []}),
        404,
        "not_found",
    )
    assert emulator.entities == {}
    twenty = await port.post(url, json={"entities": many[:20]}, params=UPSERT)
    assert twenty.status_code == 200
    assert len(emulator.entities) == 20


# --- delete ---------------------------------------------------------------------------------


async def test_delete_then_404(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    identifier = "a/b:c+d"
    assert (await _upsert(port, "team", {"identifier": identifier})).status_code == 201
    path = f"/v1/blueprints/team/entities/{urllib.parse.quote_plus(identifier)}"
    response = await port.delete(path, params={"delete_dependents": "false"})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert emulator.entities == {}
    _error(await port.delete(path), 404, "not_found")


async def test_delete_dependents(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    assert (await _upsert(port, "service", _service("svc-1"))).status_code == 201
    soft = {**_service("svc-2"), "relations": {"dependsOn": ["svc-1"]}}
    assert (await _upsert(port, "service", soft)).status_code == 201
    hard = {"identifier": "d-1", "relations": {"service": "svc-1"}}
    assert (await _upsert(port, "deployment", hard)).status_code == 201
    path = "/v1/blueprints/service/entities/svc-1"

    message = _error(
        await port.delete(path, params={"delete_dependents": "false"}), 422, "has_dependents"
    )
    assert "svc-1" in message
    assert len(emulator.entities) == 3

    response = await port.delete(path, params={"delete_dependents": "true"})
    assert response.status_code == 200
    assert sorted(emulator.entities) == [("service", "svc-2")]
    assert emulator.entities[("service", "svc-2")]["relations"]["dependsOn"] == []


async def test_bulk_delete(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    for identifier in ("svc-1", "svc-2", "svc-3"):
        assert (await _upsert(port, "service", _service(identifier))).status_code == 201
    for identifier, target in (("d-1", "svc-1"), ("d-2", "svc-2")):
        deployment = {"identifier": identifier, "relations": {"service": target}}
        assert (await _upsert(port, "deployment", deployment)).status_code == 201

    response = await port.post(
        "/v1/blueprints/service/bulk/entities/delete",
        json={"entities": ["svc-1", "svc-3", "ghost"]},
        params={"delete_dependents": "false"},
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "deletedEntities": ["svc-3"]}

    response = await port.post(
        "/v1/blueprints/deployment/bulk/entities/delete",
        json={"entities": ["d-1"]},
        params={"delete_dependents": "false"},
    )
    assert response.json()["deletedEntities"] == ["d-1"]

    response = await port.post(
        "/v1/blueprints/service/bulk/entities/delete",
        json={"entities": ["svc-1", "svc-2"]},
        params={"delete_dependents": "true"},
    )
    assert response.json()["deletedEntities"] == ["svc-1", "svc-2"]
    assert emulator.entities == {}


# --- search ---------------------------------------------------------------------------------


async def _search(client: httpx.AsyncClient, query: Any, **params: Any) -> list[str]:
    response = await client.post("/v1/entities/search", json=query, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    return [e["identifier"] for e in response.json()["entities"]]


async def test_search(port: httpx.AsyncClient, base_url: str) -> None:
    for identifier in ("svc-1", "svc-2"):
        response = await _upsert(port, "service", _service(identifier, tier="gold"))
        assert response.status_code == 201
    other = {"Authorization": port.headers["Authorization"], "User-Agent": "port-ocean/gh/1/x"}
    async with httpx.AsyncClient(base_url=base_url, headers=other) as github:
        assert (await _upsert(github, "team", {"identifier": "svc-team"})).status_code == 201

    def rule(prop: str, op: str, value: Any) -> dict[str, Any]:
        return {"property": prop, "operator": op, "value": value}

    def q(*rules: dict[str, Any], combinator: str = "and") -> dict[str, Any]:
        return {"combinator": combinator, "rules": list(rules)}

    assert await _search(port, q(rule("$identifier", "=", "svc-1"))) == ["svc-1"]
    assert await _search(port, q(rule("$identifier", "in", ["svc-2", "x"]))) == ["svc-2"]
    everything = q(rule("$identifier", "contains", "svc-"))
    assert await _search(port, everything) == ["svc-1", "svc-2", "svc-team"]
    owned = q(
        rule("$datasource", "contains", "port-ocean/jira/"),
        rule("$datasource", "contains", "/my-jira"),
    )
    assert await _search(port, owned) == ["svc-1", "svc-2"]
    assert await _search(port, q(rule("$datasource", "=", "port-ocean/gh/1/x"))) == ["svc-team"]
    assert await _search(port, q(rule("$datasource", "in", [UA]))) == ["svc-1", "svc-2"]
    nested = q(
        rule("$blueprint", "=", "team"),
        q(rule("$identifier", "=", "svc-1"), rule("tier", "!=", "gold")),
        combinator="or",
    )
    assert await _search(port, nested) == ["svc-team"]
    assert await _search(port, q(rule("$identifier", "beginsWith", "svc-t"))) == ["svc-team"]
    assert await _search(port, q(rule("tier", "=", "gold"), rule("$title", "=", None))) == [
        "svc-1",
        "svc-2",
    ]
    response = await port.post(
        "/v1/entities/search",
        json=q(rule("$identifier", "=", "svc-1")),
        params={"include": ["blueprint", "identifier"]},
    )
    assert response.json()["entities"] == [{"identifier": "svc-1", "blueprint": "service"}]


@pytest.mark.parametrize(
    "query",
    [
        {"rules": []},
        {"combinator": "xor", "rules": []},
        {"combinator": "and", "rules": [{"property": "$identifier", "operator": "~", "value": 1}]},
        {"combinator": "and", "rules": [{"property": "$nope", "operator": "=", "value": 1}]},
        {"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": 1}]},
        {"combinator": "and", "rules": [{"operator": "=", "value": 1}]},
    ],
)
async def test_malformed_search_is_422(port: httpx.AsyncClient, query: Any) -> None:
    _error(await port.post("/v1/entities/search", json=query), 422, "invalid_request")


# --- integrations ---------------------------------------------------------------------------


async def test_integration_create_get_patch(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    _error(await port.get("/v1/integration/my-jira"), 404, "not_found")
    body = {"installationId": "my-jira", "installationAppType": "jira", "version": "1.0"}
    created = await port.post("/v1/integration", json=body)
    assert created.status_code == 200
    assert created.json()["integration"]["identifier"] == "my-jira"
    assert created.json()["integration"]["config"] == {}
    _error(await port.post("/v1/integration", json=body), 409, "identifier_taken")

    patched = await port.patch(
        "/v1/integration/my-jira", json={"version": "1.1", "changelogDestination": {}}
    )
    assert patched.status_code == 200
    integration = patched.json()["integration"]
    assert integration["version"] == "1.1"
    assert integration["installationAppType"] == "jira"
    assert integration["changelogDestination"] == {}

    first = {"resources": [{"kind": "issue"}], "deleteDependentEntities": True}
    await port.patch("/v1/integration/my-jira/config", json={"config": first})
    second: dict[str, Any] = {"resources": []}
    response = await port.patch("/v1/integration/my-jira/config", json={"config": second})
    assert response.json()["integration"]["config"] == second
    fetched = await port.get("/v1/integration/my-jira", params={"oceanCoreVersion": "0.1"})
    assert fetched.json() == {"ok": True, "integration": emulator.integrations["my-jira"]}
    assert emulator.integrations["my-jira"]["config"] == second
    _error(await port.patch("/v1/integration/ghost", json={}), 404, "not_found")


# --- faults ---------------------------------------------------------------------------------


async def test_fail_fault_with_retry_after(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    emulator.faults.fail(429, path="/v1/blueprints/", method="GET", retry_after=1.5, times=2)
    emulator.faults.fail(500, path="/v1/entities/search", headers={"x-trace-id": "t-1"})
    for _ in range(2):
        response = await port.get("/v1/blueprints/team")
        _error(response, 429, "too_many_requests")
        assert response.headers["Retry-After"] == "1.5"
    assert (await port.get("/v1/blueprints/team")).status_code == 200

    search = {"combinator": "and", "rules": []}
    failed = await port.post("/v1/entities/search", json=search)
    _error(failed, 500, "internal_error")
    assert failed.headers["x-trace-id"] == "t-1"
    assert (await port.post("/v1/entities/search", json=search)).status_code == 200
    statuses = [(r.status, r.fault) for r in emulator.requests]
    assert statuses == [(429, "fail"), (429, "fail"), (200, None), (500, "fail"), (200, None)]


async def test_fail_fault_forever_until_cleared_with_custom_body(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    emulator.faults.fail(503, path="/v1/blueprints", times=None, body={"custom": True})
    for _ in range(3):
        response = await port.get("/v1/blueprints/team")
        assert response.status_code == 503
        assert response.json() == {"custom": True}
    assert (await port.get("/v1/integration/x")).status_code == 404  # other paths untouched
    emulator.faults.clear()
    assert (await port.get("/v1/blueprints/team")).status_code == 200


async def test_delay_fault_holds_only_matching_requests(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    emulator.faults.delay(0.05, path="/v1/blueprints/service", times=1)
    finished: list[str] = []

    async def get(bp: str) -> None:
        response = await port.get(f"/v1/blueprints/{bp}")
        assert response.status_code == 200
        finished.append(bp)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(get, "service")
            nursery.start_soon(get, "team")
    assert finished == ["team", "service"]
    faults = {r.path: r.fault for r in emulator.requests}
    assert faults == {"/v1/blueprints/service": "delay", "/v1/blueprints/team": None}
    await get("service")
    assert finished[-1] == "service"


async def test_drop_fault_breaks_the_response(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    emulator.faults.drop(path="/v1/blueprints/team", method="GET")
    with pytest.raises(httpx.RemoteProtocolError):
        await port.get("/v1/blueprints/team")
    assert (await port.get("/v1/blueprints/team")).status_code == 200
    assert [r.fault for r in emulator.requests] == ["drop", None]


def test_fault_arguments_are_checked() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="status"):
        faults.fail(200)
    with pytest.raises(ValueError, match="times"):
        faults.drop(times=0)
    with pytest.raises(ValueError, match="seconds"):
        faults.delay(-1)
    with pytest.raises(ValueError, match="path"):
        faults.drop(path="v1")


# --- control endpoints, calls(), reset() ----------------------------------------------------


async def test_control_endpoints(
    port: httpx.AsyncClient, anon: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    assert (await _upsert(port, "team", {"identifier": "t"})).status_code == 201
    entities = (await anon.get("/_emulator/entities")).json()["entities"]
    assert [e["identifier"] for e in entities] == ["t"]

    fault = {"kind": "fail", "status": 502, "path": "/v1/blueprints", "times": None}
    assert (await anon.post("/_emulator/faults", json=fault)).json() == {"ok": True}
    assert (await port.get("/v1/blueprints/team")).status_code == 502
    assert (await anon.get("/_emulator/entities")).status_code == 200  # control never faulted
    assert (await anon.delete("/_emulator/faults")).json() == {"ok": True}
    assert (await port.get("/v1/blueprints/team")).status_code == 200
    bad: dict[str, Any] = {"kind": "explode"}
    _error(await anon.post("/_emulator/faults", json=bad), 422, "invalid_request")
    bad = {"kind": "delay", "seconds": 0.01, "colour": "red"}
    _error(await anon.post("/_emulator/faults", json=bad), 422, "invalid_request")
    drop = {"kind": "drop", "path": "/v1/entities"}
    assert (await anon.post("/_emulator/faults", json=drop)).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        await port.post("/v1/entities/search", json={"combinator": "and", "rules": []})

    recorded = (await anon.get("/_emulator/requests")).json()["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in recorded] == [
        ("POST", "/v1/blueprints/team/entities", 201),
        ("GET", "/v1/blueprints/team", 502),
        ("GET", "/v1/blueprints/team", 200),
        ("POST", "/v1/entities/search", 200),
    ]
    assert recorded[0]["query"] == UPSERT
    assert recorded[-1]["fault"] == "drop"

    assert (await anon.post("/_emulator/reset")).json() == {"ok": True}
    assert emulator.entities == {}
    assert emulator.blueprints == {}
    _error(await port.get("/v1/blueprints/team"), 401, "unauthorized")


async def test_calls_counts_by_method_and_prefix(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    await port.get("/v1/blueprints/team")
    await port.get("/v1/blueprints/service")
    await _upsert(port, "team", {"identifier": "t"})
    assert emulator.calls("GET", "/v1/blueprints") == 2
    assert emulator.calls("get", "/v1/blueprints/team") == 1
    assert emulator.calls("POST", "/v1/blueprints/team/entities") == 1
    assert emulator.calls("DELETE", "/") == 0
    assert emulator.calls("POST", "/v1/auth") == 0  # the fixture's requests were cleared


async def test_reset_forgets_everything(port: httpx.AsyncClient, emulator: PortEmulator) -> None:
    await _upsert(port, "team", {"identifier": "t"})
    await port.post("/v1/integration", json={"installationId": "i"})
    emulator.faults.fail(500, path="/elsewhere", times=None)
    emulator.reset()
    assert emulator.entities == {}
    assert emulator.blueprints == {}
    assert emulator.integrations == {}
    assert emulator.requests == []
    _error(await port.get("/v1/blueprints/team"), 401, "unauthorized")
    _error(await port.get("/elsewhere"), 404, "not_found")  # the fault went too
    assert [r.status for r in emulator.requests] == [401, 404]


async def test_unknown_route_bad_json_and_wrong_method(port: httpx.AsyncClient) -> None:
    _error(await port.get("/v1/nowhere"), 404, "not_found")
    _error(await port.get("/elsewhere"), 404, "not_found")
    bad = await port.post(
        "/v1/blueprints", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in _error(bad, 400, "invalid_json")
    _error(await port.put("/v1/blueprints/team"), 405, "method_not_allowed")


# --- run_port_emulator ----------------------------------------------------------------------


@pytest.mark.slow
async def test_run_port_emulator_serves_until_sigterm() -> None:
    script = (
        "import sys; from ocean_trio.testing._port_emulator import run_port_emulator; "
        "sys.exit(run_port_emulator('127.0.0.1', 0, client_id='cli', client_secret='sec'))"
    )
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", script], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with process.stdout:
            with trio.fail_after(30):
                output = b""
                while b"\n" not in output:
                    chunk = await process.stdout.receive_some()
                    assert chunk, "the emulator exited before printing its banner"
                    output += chunk
                line = output.decode().splitlines()[0]
                assert line.startswith("Port API emulator on http://127.0.0.1:")
                assert line.endswith("(client id cli, secret sec)")
                url = line.split()[4]
                async with httpx.AsyncClient(base_url=url) as client:
                    credentials = {"clientId": "cli", "clientSecret": "sec"}
                    response = await client.post("/v1/auth/access_token", json=credentials)
                    assert response.status_code == 200
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5, shield=True):
                await process.wait()


async def test_a_rate_limit_sends_ports_headers_and_refuses_past_it(
    port: httpx.AsyncClient, emulator: PortEmulator
) -> None:
    unlimited = await port.get("/v1/blueprints/service")
    assert "x-ratelimit-limit" not in unlimited.headers
    emulator.rate_limit.set(limit=2, period=60)
    first, second, third = [await port.get("/v1/blueprints/service") for _ in range(3)]
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-period"] == "60"
    assert [r.headers["x-ratelimit-remaining"] for r in (first, second)] == ["1", "0"]
    assert 0 < int(first.headers["x-ratelimit-reset"]) <= 60
    _error(third, 429, "too_many_requests")
    assert third.headers["x-ratelimit-remaining"] == "0"
    emulator.reset()
    assert "x-ratelimit-limit" not in (await port.get("/v1/blueprints")).headers
