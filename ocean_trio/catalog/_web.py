"""The catalog's read API and HTML page: ``/catalog/entities``, ``/catalog/blueprints``, ``/catalog/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import quart

from ._local import LocalCatalog

MAX_LIMIT = 1000

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>ocean-trio catalog</title>
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
 table{border-collapse:collapse;margin-bottom:2rem;width:100%}
 th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
 code{font-size:.85em;color:#555}
</style></head><body>
<h1>Catalog</h1>
<p>{{ total }} entities &middot; JSON: <a href="entities">/catalog/entities</a>
&middot; refreshes every 3 s</p>
{% for blueprint, entities in groups %}
<h2>{{ titles.get(blueprint, blueprint) }} <small>({{ counts[blueprint] }})</small></h2>
<table><tr><th>Identifier</th><th>Title</th><th>Properties</th><th>Relations</th><th>Updated</th></tr>
{% for e in entities %}<tr><td>{{ e.identifier }}</td><td>{{ e.get('title') or '' }}</td>
<td><code>{{ e.get('properties', {}) | tojson }}</code></td><td><code>{{ e.get('relations', {}) | tojson }}</code></td>
<td>{{ e.updatedAt }}</td></tr>{% endfor %}
</table>
{% else %}<p>No entities yet.</p>{% endfor %}
</body></html>
"""

_PAGE_ROWS = 200


def _limit(default: int) -> int:
    raw = quart.request.args.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 1 <= value <= MAX_LIMIT:
        quart.abort(
            quart.Response(
                quart.json.dumps({"error": f"limit must be an integer from 1 to {MAX_LIMIT}"}),
                status=400,
                content_type="application/json",
            )
        )
    return value


def catalog_blueprint(get_catalog: Callable[[], LocalCatalog]) -> quart.Blueprint:
    """Routes reading the catalog returned by ``get_catalog`` at request time."""
    bp = quart.Blueprint("catalog", __name__, url_prefix="/catalog")

    @bp.get("/entities")
    async def entities() -> Any:
        blueprint = quart.request.args.get("blueprint") or None
        search = quart.request.args.get("search") or None
        found = await get_catalog().list_entities(blueprint, limit=_limit(MAX_LIMIT), search=search)
        return {"entities": found}

    @bp.get("/entities/<blueprint>/<path:identifier>")
    async def entity(blueprint: str, identifier: str) -> Any:
        found = await get_catalog().get_entity(blueprint, identifier)
        if found is None:
            return {"error": f"no entity {identifier!r} of blueprint {blueprint!r}"}, 404
        return {"entity": found}

    @bp.get("/blueprints")
    async def blueprints() -> Any:
        catalog = get_catalog()
        return {
            "blueprints": await catalog.list_blueprints(),
            "counts": await catalog.blueprint_counts(),
        }

    @bp.get("/")
    async def page() -> Any:
        catalog = get_catalog()
        counts = await catalog.blueprint_counts()
        titles = {
            b["identifier"]: b.get("title", b["identifier"])
            for b in await catalog.list_blueprints()
        }
        groups = [(b, await catalog.list_entities(b, limit=_PAGE_ROWS)) for b in counts]
        return await quart.render_template_string(
            _PAGE, groups=groups, counts=counts, titles=titles, total=sum(counts.values())
        )

    return bp
