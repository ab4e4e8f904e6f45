"""The live page: ``/live/`` and its two static files, shipped in ``ocean_trio/web/static/``.

No build step: the HTML, JS and CSS are served as they are. The files are read once, when the
blueprint is built (a few kilobytes), so a request never touches the disk and only the names
found there can be served: a path with ``..`` or any other name is a 404, never a file lookup.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import quart

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# Everything the page needs comes from this origin: its script, its style, the catalog and
# admin APIs and the feed's WebSocket (CSP 3: 'self' covers ws/wss to the same host).
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("ocean_trio").joinpath("web").joinpath("static")
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), _CONTENT_TYPES[suffix])
    return files


def _error(status: int, message: str) -> quart.Response:
    return quart.Response(
        quart.json.dumps({"error": message}), status=status, content_type="application/json"
    )


def page_blueprint() -> quart.Blueprint:
    """Routes serving the live page: ``/live/`` (its HTML) and ``/live/static/<name>``."""
    files = _load()
    bp = quart.Blueprint("page", __name__, url_prefix="/live")

    def serve(name: str) -> quart.Response:
        found = files.get(name)
        if found is None:
            return _error(404, f"no static file {name!r}")
        body, content_type = found
        return quart.Response(body, content_type=content_type, headers=_SECURITY_HEADERS)

    @bp.get("/")
    async def page() -> Any:
        return serve("page.html")

    @bp.get("/static/<name>")
    async def static(name: str) -> Any:
        return serve(name)

    return bp
