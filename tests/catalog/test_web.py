"""The catalog's HTTP API and page, on a real hypercorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocean_trio import (
    Integration,
)
from ocean_trio.testing import make_settings, serve_integration

from ..processors import ItemProcessor


def integration(root: Path) -> Integration:
    (root / ".port" / "resources" / "blueprints.json").write_text(
        '[{"identifier": "item", "title": "Item <b>"}]'
    )
    result = Integration(root=root)
    result.add_webhook_processor("/webhook", ItemProcessor)
    return result


async def test_catalog_api_and_page(integration_root: Path, tmp_path: Path) -> None:
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        for i in range(3):
            item = {"id": f"I-{i}", "title": f"<script>{i}</script>", "status": "open"}
            await server.post_event("/webhook", {"item": item})
        await server.next_outcomes(3)
        client = server.client

        listed = (await client.get("/catalog/entities", params={"limit": "2"})).json()
        assert [e["identifier"] for e in listed["entities"]] == ["I-0", "I-1"]
        one = await client.get("/catalog/entities/item/I-2")
        assert one.json()["entity"]["title"] == "<script>2</script>"
        missing = await client.get("/catalog/entities/item/nope")
        assert missing.status_code == 404
        assert "no entity 'nope'" in missing.json()["error"]
        blueprints = (await client.get("/catalog/blueprints")).json()
        assert blueprints["counts"] == {"item": 3}

        page = await client.get("/catalog/")
        assert page.status_code == 200
        assert "Item &lt;b&gt;" in page.text
        assert "&lt;script&gt;2&lt;/script&gt;" in page.text
        assert "<script>" not in page.text
        assert (await client.get("/")).headers["location"].endswith("/live/")


@pytest.mark.parametrize("limit", ["0", "-1", "x", "1001"])
async def test_bad_limit_is_400(integration_root: Path, tmp_path: Path, limit: str) -> None:
    async with serve_integration(integration(integration_root), make_settings(tmp_path)) as server:
        response = await server.client.get("/catalog/entities", params={"limit": limit})
        assert response.status_code == 400
        assert "limit must be an integer from 1 to 1000" in response.json()["error"]
