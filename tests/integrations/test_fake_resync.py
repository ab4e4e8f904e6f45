"""The demo's ``on_resync`` handler without the engine: driven directly, in a resync's context.

The integration is loaded as ``ocean-trio sail`` loads it; FakeTracker's API is served on
127.0.0.1 port 0 (hypercorn, as in the demo) and records every request. The handler runs
inside ``event_context`` (Ocean's ``event``), as the engine will run it.
"""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from ocean_trio import ConfigError, WebhookEvent, load_integration
from ocean_trio._integration import Integration, using
from ocean_trio.mapping import CompiledPortAppConfig, live_event_changes, load_port_app_config
from ocean_trio.resync._context import EventContext, event_context
from ocean_trio.testing import make_settings

from .mapped import by_key, resync_entities

FAKE_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "fake"
MAPPING = FAKE_ROOT / ".port" / "resources" / "port-app-config.yml"
if str(FAKE_ROOT) not in sys.path:
    sys.path.insert(0, str(FAKE_ROOT))

import fake_service  # noqa: E402
from processors import IssueWebhookProcessor, ProjectWebhookProcessor  # noqa: E402

TIMEOUT = 10
Batches = list[list[dict[str, Any]]]


class RecordingAPI(fake_service.TrackerAPI):
    """The tracker's API, keeping every request; ``fail_from`` makes list requests 503."""

    def __init__(self, state: fake_service.TrackerState) -> None:
        super().__init__(state, lambda change: None)
        self.requests: list[str] = []
        self.fail_from: int | None = None  # the first request (0-based) to answer 503

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        self.requests.append(f"{scope['path']}?{scope['query_string'].decode()}")
        if self.fail_from is not None and len(self.requests) > self.fail_from:
            body = b'{"error": "maintenance"}'
            headers = [(b"content-type", b"application/json"), (b"content-length", b"24")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await super().__call__(scope, receive, send)


@asynccontextmanager
async def served(
    state: fake_service.TrackerState,
) -> AsyncIterator[tuple[str, RecordingAPI]]:
    """The tracker's API on loopback: its URL and the recording app."""
    api = RecordingAPI(state)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(fake_service.serve_api, api, "127.0.0.1", 0)
        state.api_url = url
        yield url, api
        nursery.cancel_scope.cancel()


def integration_for(tmp_path: Path, api_url: str, **config: Any) -> Integration:
    """The demo integration, its settings pointing at ``api_url`` (no on_start: no tracker)."""
    integration = load_integration(FAKE_ROOT)
    integration.settings = make_settings(
        tmp_path,
        integration={"config": {"webhookSecret": "s", "fakeApiUrl": api_url, **config}},
    )
    return integration


def mapping() -> CompiledPortAppConfig:
    return CompiledPortAppConfig.compile(load_port_app_config(MAPPING))


def handler_of(integration: Integration, kind: str) -> Callable[[str], Any]:
    [handler] = integration.resync_handlers[kind]
    return handler


async def resync(integration: Integration, index: int) -> Batches:
    """Every batch the handler yields for ``resources[index]`` of the shipped mapping."""
    compiled = mapping()
    resource = compiled.config.resources[index]
    context = EventContext(port_app_config=compiled.config, resource_config=resource)
    with using(integration), event_context(context):
        async with aclosing(handler_of(integration, resource.kind)(resource.kind)) as batches:
            return [batch async for batch in batches]


PROJECT, ISSUE, URGENT = 0, 1, 2  # the shipped mapping's resources


def test_the_shipped_mapping_has_the_resources_the_tests_name() -> None:
    kinds = [(r.kind, r.port.entity.mappings.blueprint) for r in mapping().config.resources]
    assert kinds == [
        ("project", '"project"'),
        ("issue", '"issue"'),
        ("issue", '"urgentIssue"'),
    ]


def test_one_handler_serves_both_kinds() -> None:
    integration = load_integration(FAKE_ROOT)
    assert handler_of(integration, "project") is handler_of(integration, "issue")
    assert None not in integration.resync_handlers


@pytest.mark.parametrize(
    ("index", "page_size", "sizes"),
    [
        (ISSUE, 1, [1] * 12),
        (ISSUE, 4, [4, 4, 4]),  # divides 12 exactly: three requests, no empty page
        (ISSUE, 5, [5, 5, 2]),
        (ISSUE, 12, [12]),
        (ISSUE, 50, [12]),
        (URGENT, 5, [5, 5, 2]),  # every issue: the selector is the mapping's business
        (PROJECT, 2, [2, 1]),
        (PROJECT, 3, [3]),
        (PROJECT, 100, [3]),
    ],
)
async def test_pages_become_batches(
    tmp_path: Path, index: int, page_size: int, sizes: list[int]
) -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, api):
            batches = await resync(integration_for(tmp_path, url, pageSize=page_size), index)
    assert [len(batch) for batch in batches] == sizes
    path = "/api/projects" if index == PROJECT else "/api/issues"
    assert api.requests[0] == f"{path}?perPage={page_size}"
    assert len(api.requests) == len(sizes)  # one request per page, nothing more
    assert all(r.startswith(f"{path}?perPage={page_size}&cursor=") for r in api.requests[1:])
    listed = [item for batch in batches for item in batch]
    if index == PROJECT:  # key order, each as GET /api/projects/{key} gives it
        assert listed == [state.project(key) for key in ("API", "OPS", "WEB")]
    else:
        assert listed == state.issues()
    assert all(item["self"].startswith(url) for item in listed)


async def test_an_empty_tracker_gives_no_batch(tmp_path: Path) -> None:
    state = fake_service.TrackerState(projects=0, issues=0)
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, api):
            integration = integration_for(tmp_path, url)
            assert await resync(integration, PROJECT) == []
            assert await resync(integration, ISSUE) == []
    assert api.requests == ["/api/projects?perPage=50", "/api/issues?perPage=50"]


async def test_the_page_size_comes_from_integration_config(tmp_path: Path) -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, api):
            integration = load_integration(FAKE_ROOT)
            # the demo's config.yaml (pageSize: 50), overridden from the environment
            integration.settings = make_settings(
                FAKE_ROOT,
                environ={
                    "OCEAN__INTEGRATION__CONFIG__PAGE_SIZE": "7",  # a string, as from env
                    "OCEAN__INTEGRATION__CONFIG__FAKE_API_URL": url,
                },
                statePath=str(tmp_path / "state"),
            )
            assert [len(b) for b in await resync(integration, ISSUE)] == [7, 5]
    assert api.requests[0] == "/api/issues?perPage=7"


@pytest.mark.parametrize("value", [0, 101, "ten", "", True, 2.5, None])
async def test_a_bad_page_size_fails_before_any_request(tmp_path: Path, value: Any) -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, api):
            integration = integration_for(tmp_path, url, pageSize=value)
            with pytest.raises(ConfigError) as raised:
                await resync(integration, ISSUE)
    assert str(raised.value) == (
        f"integration.config.pageSize must be an integer from 1 to 100, got {value!r}"
    )
    assert api.requests == []


async def test_issues_present_throughout_are_listed_once_while_others_change(
    tmp_path: Path,
) -> None:
    """Between two batches an issue already listed and one not yet listed are deleted, one is
    created: nothing present throughout is skipped or listed twice."""
    state = fake_service.TrackerState(seed=7)
    compiled = mapping()
    resource = compiled.config.resources[ISSUE]
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, _):
            integration = integration_for(tmp_path, url, pageSize=5)
            context = EventContext(port_app_config=compiled.config, resource_config=resource)
            listed: list[str] = []
            with using(integration), event_context(context):
                async with aclosing(handler_of(integration, "issue")("issue")) as batches:
                    async for batch in batches:
                        listed += [issue["id"] for issue in batch]
                        if len(listed) == 5:
                            state.delete_issue("10002")
                            state.delete_issue("10007")
                            created = state.create_issue("WEB", {"title": "Late"}).obj
    assert listed == [
        *(str(n) for n in range(10001, 10007)),
        *(str(n) for n in range(10008, 10013)),
        created["id"],
    ]


class ClientSpy:
    """Stands for ``processors.tracker_client`` in the handler: keeps the clients it made."""

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self.make = make
        self.clients: list[httpx.AsyncClient] = []

    def __call__(self) -> httpx.AsyncClient:
        client = self.make()
        self.clients.append(client)
        return client


@attrs.define
class SpiedHandler:
    """The demo's issue handler against a served tracker, its HTTP clients recorded."""

    integration: Integration
    handler: Any
    spy: ClientSpy
    api: Any
    context: EventContext


@asynccontextmanager
async def spied_issue_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SpiedHandler]:
    compiled = mapping()
    resource = compiled.config.resources[ISSUE]
    async with served(fake_service.TrackerState(seed=7)) as (url, api):
        integration = integration_for(tmp_path, url, pageSize=5)
        handler = handler_of(integration, "issue")
        spy = ClientSpy(handler.__globals__["tracker_client"])
        monkeypatch.setitem(handler.__globals__, "tracker_client", spy)
        context = EventContext(port_app_config=compiled.config, resource_config=resource)
        yield SpiedHandler(integration, handler, spy, api, context)


async def test_stopping_after_one_batch_closes_the_client_and_asks_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(TIMEOUT):
        async with spied_issue_handler(tmp_path, monkeypatch) as spied:
            integration, handler, spy, api = spied.integration, spied.handler, spied.spy, spied.api
            with (
                using(integration),
                event_context(spied.context),
                warnings.catch_warnings(record=True) as caught,
            ):
                warnings.simplefilter("always")
                batches = handler("issue")
                first = await batches.__anext__()
                [client] = spy.clients
                assert not client.is_closed
                await batches.aclose()
                del batches
                gc.collect()
                await trio.lowlevel.checkpoint()
            assert client.is_closed
            assert len(first) == 5
            assert len(api.requests) == 1
            assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []

            # run to the end: closed too
            assert [len(b) for b in await resync(integration, ISSUE)] == [5, 5, 2]
            assert len(spy.clients) == 2
            assert spy.clients[1].is_closed


async def test_a_tracker_error_fails_the_resync_with_its_message_and_closes_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(TIMEOUT):
        async with spied_issue_handler(tmp_path, monkeypatch) as spied:
            spied.api.fail_from = 1  # the second page
            with using(spied.integration), event_context(spied.context):
                async with aclosing(spied.handler("issue")) as batches:
                    first = await batches.__anext__()
                    with pytest.raises(httpx.HTTPStatusError) as raised:
                        await batches.__anext__()
    assert len(first) == 5
    assert str(raised.value).startswith("GET /api/issues?perPage=5&cursor=")
    assert str(raised.value).endswith(': HTTP 503: {"error": "maintenance"}')
    assert spied.spy.clients[0].is_closed


# --- the same entities as live events -------------------------------------------------------


async def test_a_resync_maps_to_the_entities_live_events_give(tmp_path: Path) -> None:
    """Per resource: the resync's items mapped as a resync maps them (the resource's
    ``ResourceMapper``, ``parse_all`` false) give exactly the entities the processors' fresh
    objects give (``live_event_changes``), and each raw item is the very object the
    processor fetched."""
    state = fake_service.TrackerState(seed=7)
    compiled = mapping()
    with trio.fail_after(TIMEOUT):
        async with served(state) as (url, _):
            integration = integration_for(tmp_path, url, pageSize=5)
            for index, resource in enumerate(compiled.config.resources):
                items = [item for batch in await resync(integration, index) for item in batch]
                from_resync: dict[tuple[str, str], dict[str, Any]] = {}
                for item in items:
                    from_resync |= resync_entities(compiled, index, [item])

                processor_class = (
                    ProjectWebhookProcessor if resource.kind == "project" else IssueWebhookProcessor
                )
                from_live: dict[tuple[str, str], dict[str, Any]] = {}
                deleted_live: set[str] = set()
                with using(integration):
                    for item in items:
                        reference = {"id": item.get("id"), "key": item["key"]}
                        payload = {
                            "webhookEvent": f"{resource.kind}_updated",
                            resource.kind: reference,
                        }
                        processor = processor_class(WebhookEvent.from_dict({"payload": payload}))
                        results = await processor.handle_event(payload, resource)
                        assert results.updated_raw_results == [item]  # the same raw object
                        changes, issues = live_event_changes(
                            compiled, [(index, results.updated_raw_results, [])]
                        )
                        assert issues == []
                        from_live |= by_key(changes.upserts)
                        deleted_live |= {str(e.identifier) for e in changes.deletes}

                assert from_resync == from_live, resource.port.entity.mappings.blueprint
                if index == URGENT:  # some are, some are not: the selector really ran
                    urgent = {
                        i["key"] for i in items if i["priority"] == "high" and i["status"] != "done"
                    }
                    assert {key for _, key in from_resync} == urgent
                    assert 0 < len(urgent) < len(items)
                    # the others: a live event deletes them, a resync leaves them out
                    assert deleted_live == {i["key"] for i in items} - urgent
                else:
                    assert len(from_resync) == len(items) > 0
