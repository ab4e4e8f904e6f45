"""The live page's files over real HTTP: content types, no caching, 404 JSON, no traversal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import h11
import pytest
import trio

from ocean_trio import Integration
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .processors import ItemProcessor

STATIC = Path(__file__).resolve().parent.parent / "ocean_trio" / "web" / "static"


async def raw_get(server: TestServer, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (httpx would resolve its dot segments first)."""
    url = urlsplit(server.base_url)
    assert url.hostname is not None
    assert url.port is not None
    connection = h11.Connection(h11.CLIENT)
    request = h11.Request(method="GET", target=target, headers=[("host", url.netloc)])
    # Read up to the end of the answer, not to EOF: hypercorn keeps the connection open.
    async with await trio.open_tcp_stream(url.hostname, url.port) as stream:
        await stream.send_all(connection.send(request) + connection.send(h11.EndOfMessage()))
        status, body = 0, bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, bytes(body)


@pytest.fixture
async def server(integration_root: Path, tmp_path: Path) -> AsyncIterator[TestServer]:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    async with serve_integration(integration, make_settings(tmp_path)) as served:
        yield served


async def test_the_page_and_its_files_are_served(server: TestServer) -> None:
    expected = {
        "/live/": ("text/html; charset=utf-8", "page.html"),
        "/live/static/page.js": ("text/javascript; charset=utf-8", "page.js"),
        "/live/static/page.css": ("text/css; charset=utf-8", "page.css"),
    }
    for path, (content_type, name) in expected.items():
        response = await server.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.content == (STATIC / name).read_bytes()
    page = (await server.client.get("/live/")).text
    assert 'src="static/page.js"' in page
    assert 'href="static/page.css"' in page
    home = await server.client.get("/")
    assert (home.status_code, home.headers["location"]) == (302, "/live/")
    assert (await server.client.get("/live")).headers["location"].endswith("/live/")


async def test_unknown_names_are_404_json(server: TestServer) -> None:
    for name in ["nope.js", "page.JS", "__init__.py", ".", "page.js.map"]:
        response = await server.client.get(f"/live/static/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()


@pytest.mark.parametrize(
    "target",
    [
        "/live/static/..",
        "/live/static/../../_web.py",
        "/live/static/..%2F..%2F_web.py",
        "/live/static/%2e%2e%2f%2e%2e%2f_web.py",
        "/live/static/..%5C..%5C_web.py",
        "/live/static/%2Fetc%2Fpasswd",
        "/live/static//etc/passwd",
    ],
)
async def test_traversal_is_refused(server: TestServer, target: str) -> None:
    status, body = await raw_get(server, target)
    assert status == 404, target
    assert "error" in json.loads(body)
    assert b"import" not in body
    assert b"root:" not in body
