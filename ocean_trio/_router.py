"""``ocean.router``: legacy webhook handlers written FastAPI-style, served by Quart under ``/integration``.

Ocean exposes a FastAPI router; handlers take the JSON body as a parameter
(``async def webhook(data: dict[str, Any])``) and return JSON-able values. This router keeps
that shape so such handlers port by changing imports: path parameters (``/items/{id}``) are
passed by name, a parameter annotated with Quart's ``Request`` gets the request, any other
parameter gets the parsed JSON body; a dict or list return value becomes a JSON response.
The body is parsed by a ``BodyParser``, as webhook bodies are: one it refuses (not JSON, too
deeply nested…) is a 400, never a crash.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import quart

from ._exceptions import InvalidBodyError
from .live_events._json import BodyParser

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

_PATH_PARAM = re.compile(r"\{(\w+)\}")


@attrs.frozen
class Route:
    method: str
    path: str
    handler: Handler


class Router:
    """Collects routes at import time; the app mounts them under ``/integration``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add_api_route(self, path: str, handler: Handler, *, methods: list[str]) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        for method in methods:
            self.routes.append(Route(method.upper(), path, handler))

    def _decorator(self, method: str, path: str) -> Callable[[H], H]:
        def register(handler: H) -> H:
            self.add_api_route(path, handler, methods=[method])
            return handler

        return register

    def get(self, path: str) -> Callable[[H], H]:
        return self._decorator("GET", path)

    def post(self, path: str) -> Callable[[H], H]:
        return self._decorator("POST", path)

    def put(self, path: str) -> Callable[[H], H]:
        return self._decorator("PUT", path)

    def patch(self, path: str) -> Callable[[H], H]:
        return self._decorator("PATCH", path)

    def delete(self, path: str) -> Callable[[H], H]:
        return self._decorator("DELETE", path)


def quart_blueprint(
    router: Router, *, url_prefix: str = "/integration", parser: BodyParser | None = None
) -> quart.Blueprint:
    """A Quart blueprint serving ``router``'s routes with FastAPI-style argument binding.

    ``parser`` parses request bodies (pass the app's, for its depth limit; default: a
    ``BodyParser`` with the default limits).
    """
    parser = parser if parser is not None else BodyParser()
    blueprint = quart.Blueprint("integration_routes", __name__, url_prefix=url_prefix)
    for index, route in enumerate(router.routes):
        blueprint.add_url_rule(
            _PATH_PARAM.sub(r"<\1>", route.path),
            endpoint=f"route_{index}_{route.handler.__name__}",
            view_func=_adapt(route.handler, parser),
            methods=[route.method],
        )
    return blueprint


def _adapt(handler: Handler, parser: BodyParser) -> Callable[..., Awaitable[Any]]:
    signature = inspect.signature(handler)

    async def parse_body() -> Any:
        data = await quart.request.get_data()
        raw = data if isinstance(data, bytes) else data.encode()
        if parser.is_big(raw):
            return await parser.off_loop(lambda: parser.parse(raw, yielding=True))
        return parser.parse(raw)

    @functools.wraps(handler)
    async def view(**path_params: str) -> Any:
        request = quart.request
        kwargs: dict[str, Any] = {}
        parsed: list[Any] = []  # the body, once parsed
        for name, parameter in signature.parameters.items():
            if name in path_params:
                kwargs[name] = path_params[name]
            elif _is_request(parameter.annotation):
                kwargs[name] = request._get_current_object()  # type: ignore[attr-defined]
            else:
                if not parsed:
                    try:
                        parsed.append(await parse_body())
                    except InvalidBodyError as error:
                        return {"error": str(error)}, 400
                kwargs[name] = parsed[0]
        result = await handler(**kwargs)
        if result is None:
            return {"status": "ok"}
        return result

    return view


def _is_request(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.split(".")[-1] == "Request"
    return isinstance(annotation, type) and issubclass(annotation, quart.Request)
