"""FakeTracker's paginated lists: ``perPage``, a ``Link: rel="next"`` cursor, keyset order, 400s.

The API runs in process (``httpx.ASGITransport``); every request it answers is recorded.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

FAKE_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "fake"
# As ``load_integration`` does: the integration's folder is on sys.path, its modules top-level.
if str(FAKE_ROOT) not in sys.path:
    sys.path.insert(0, str(FAKE_ROOT))

import fake_service  # noqa: E402

TIMEOUT = 5
BASE = "http://tracker.test"


class RecordingAPI(fake_service.TrackerAPI):
    """The tracker's API, keeping the path and query of every request."""

    def __init__(self, state: fake_service.TrackerState) -> None:
        super().__init__(state, lambda change: None)
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await super().__call__(scope, receive, send)


@asynccontextmanager
async def tracker(
    state: fake_service.TrackerState,
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingAPI]]:
    state.api_url = BASE
    api = RecordingAPI(state)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client, api


async def read_all(client: httpx.AsyncClient, url: str) -> list[list[dict[str, Any]]]:
    """Every page of a list, following ``Link: rel="next"``."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        next_url = response.links.get("next", {}).get("url")
    return pages


def keys(pages: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[obj["key"] for obj in page] for page in pages]


async def test_issues_come_a_page_at_a_time_with_a_link_to_the_next() -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, api):
            first = await client.get("/api/issues", params={"perPage": 5})
            assert first.status_code == 200
            assert [i["id"] for i in first.json()] == [str(n) for n in range(10001, 10006)]
            link = first.headers["link"]
            assert link.startswith("</api/issues?perPage=5&cursor=")
            assert link.endswith('>; rel="next"')

            pages = [first.json(), *await read_all(client, first.links["next"]["url"])]
            assert [len(page) for page in pages] == [5, 5, 2]
            # the objects are those GET /api/issues/{id} answers (what the processors fetch)
            assert [i for page in pages for i in page] == [
                state.issue(str(n)) for n in range(10001, 10013)
            ]
            assert [i["self"] for i in pages[0]][:1] == [f"{BASE}/api/issues/10001"]
            assert len(api.requests) == 3


@pytest.mark.parametrize(
    ("path", "per_page", "sizes"),
    [
        ("/api/issues", 1, [1] * 12),
        ("/api/issues", 4, [4, 4, 4]),  # divides 12: no empty page, no extra request
        ("/api/issues", 5, [5, 5, 2]),
        ("/api/issues", 12, [12]),
        ("/api/issues", 100, [12]),
        ("/api/projects", 1, [1, 1, 1]),
        ("/api/projects", 2, [2, 1]),
        ("/api/projects", 3, [3]),
    ],
)
async def test_page_boundaries(path: str, per_page: int, sizes: list[int]) -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, api):
            pages = await read_all(client, f"{path}?perPage={per_page}")
    assert [len(page) for page in pages] == sizes
    assert len(api.requests) == len(sizes)
    assert all(f"perPage={per_page}" in request for request in api.requests)
    listed = [obj for page in pages for obj in page]
    if path == "/api/projects":  # in key order
        assert [p["key"] for p in listed] == ["API", "OPS", "WEB"]
        assert listed == [state.project(key) for key in ("API", "OPS", "WEB")]
    else:  # in id order
        assert listed == state.issues()


async def test_every_list_is_paginated_fifty_by_default() -> None:
    state = fake_service.TrackerState(seed=7, issues=60)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, api):
            pages = await read_all(client, "/api/issues")
            assert [len(page) for page in pages] == [50, 10]
            assert api.requests[1].startswith("/api/issues?perPage=50&cursor=")
            assert [len(page) for page in await read_all(client, "/api/projects")] == [3]


async def test_an_empty_list_is_one_empty_page() -> None:
    state = fake_service.TrackerState(projects=0, issues=0)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, api):
            assert await read_all(client, "/api/issues?perPage=5") == [[]]
            assert await read_all(client, "/api/projects") == [[]]
            assert len(api.requests) == 2
    with pytest.raises(ValueError, match="issues need at least one project"):
        fake_service.TrackerState(projects=0, issues=1)


async def test_the_project_filter_is_kept_across_pages() -> None:
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, api):
            pages = await read_all(client, "/api/issues?project=WEB&perPage=3")
            assert keys(pages) == [["WEB-1", "WEB-2", "WEB-3"], ["WEB-4"]]
            assert "project=WEB" in api.requests[1]
            assert await read_all(client, "/api/issues?project=NOPE") == [[]]


async def test_objects_present_throughout_are_listed_once_whatever_changes_between_pages() -> None:
    """Keyset paging: a deletion on a page already read shifts nothing (an offset would skip
    the next page's first issue), a creation comes at the end."""
    state = fake_service.TrackerState(seed=7)
    with trio.fail_after(TIMEOUT):
        async with tracker(state) as (client, _):
            first = await client.get("/api/issues?perPage=5")
            assert state.delete_issue("10002") is not None  # on the page read
            assert state.delete_issue("10007") is not None  # on the next one
            created = state.create_issue("OPS", {"title": "Late"}).obj
            rest = await read_all(client, first.links["next"]["url"])
    listed = [i["id"] for i in first.json()] + [i["id"] for page in rest for i in page]
    assert listed == [
        *(str(n) for n in range(10001, 10006)),  # 10002 was read before it went
        "10006",
        *(str(n) for n in range(10008, 10013)),  # 10007 went before it was read
        created["id"],
    ]
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("perPage=0", "perPage must be an integer from 1 to 100, got '0'"),
        ("perPage=101", "perPage must be an integer from 1 to 100, got '101'"),
        ("perPage=-5", "perPage must be an integer from 1 to 100, got '-5'"),
        ("perPage=ten", "perPage must be an integer from 1 to 100, got 'ten'"),
        ("perPage=", "perPage must be an integer from 1 to 100, got ''"),
        ("perPage=%C2%B2", "perPage must be an integer from 1 to 100, got '²'"),  # isdigit()
        ("perPage=2.5", "perPage must be an integer from 1 to 100, got '2.5'"),
        ("perPage=" + "9" * 5000, "perPage must be an integer from 1 to 100, got '999"),
        ("cursor=", "cursor '' is not one this API gave"),
        ("cursor=not-a-cursor", "cursor 'not-a-cursor' is not one this API gave"),
        ("cursor=cDpXRUI", "cursor 'cDpXRUI' is not one this API gave"),  # a project cursor
        ("cursor=aTpXRUI", "cursor 'aTpXRUI' is not one this API gave"),  # i:WEB, no id
    ],
)
async def test_bad_page_values_are_400_with_a_message(query: str, error: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with tracker(fake_service.TrackerState(seed=7)) as (client, _):
            response = await client.get(f"/api/issues?{query}")
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert "link" not in response.headers


async def test_a_cursor_of_one_list_is_refused_by_the_other() -> None:
    with trio.fail_after(TIMEOUT):
        async with tracker(fake_service.TrackerState(seed=7)) as (client, _):
            issues = await client.get("/api/issues?perPage=1")
            cursor = httpx.URL(issues.links["next"]["url"]).params["cursor"]
            refused = await client.get("/api/projects", params={"cursor": cursor})
            assert refused.status_code == 400
            assert "follow the Link header" in refused.json()["error"]
            # and a list still refuses writes
            assert (await client.post("/api/projects", json={})).status_code == 405
