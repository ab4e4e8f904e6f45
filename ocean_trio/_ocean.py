"""``ocean``: what an integration registers (processors, routes, hooks) and its way to the running app.

An integration's ``main.py`` calls ``ocean.add_webhook_processor(...)``, ``@ocean.on_start()``
and friends at import time, exactly as with Ocean. ``ocean`` stands for the *current*
``Integration``: the one being loaded by ``load_integration`` or served by ``open_app``,
else a process-wide default (what ``hypercorn integrations.x.main:app`` imports into).
"""

from __future__ import annotations

import contextvars
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._exceptions import OceanError
from ._router import Router
from .live_events._processor import AbstractWebhookProcessor
from .live_events._signatures import SignatureVerifier
from .mapping._models import ResourceConfig

if TYPE_CHECKING:
    from ._app import App
    from ._asgi import OceanASGI
    from ._settings import Settings

OnStart = Callable[[], Awaitable[None]]
OnResync = Callable[[str], Any]
F = TypeVar("F", bound=Callable[..., Any])


class Integration:
    """The registrations of one integration, and the app serving it once running."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.webhook_processors: dict[str, list[type[AbstractWebhookProcessor]]] = {}
        self.webhook_verifiers: dict[str, SignatureVerifier] = {}
        self.router = Router()
        self.on_start_hooks: list[OnStart] = []
        self.resync_handlers: dict[str | None, list[OnResync]] = {}
        self.resource_config_classes: dict[str, type[ResourceConfig]] = {}
        self.settings: Settings | None = None
        self._app: App | None = None

    # --- registration (import time) -----------------------------------------------------

    def add_webhook_processor(self, path: str, processor: type[AbstractWebhookProcessor]) -> None:
        """Serve ``POST /integration{path}`` and run ``processor`` on its events (several per path)."""
        if not (inspect.isclass(processor) and issubclass(processor, AbstractWebhookProcessor)):
            raise ValueError(f"{processor!r} is not a subclass of AbstractWebhookProcessor")
        if not path.startswith("/"):
            raise ValueError(f"webhook path must start with '/': {path!r}")
        self.webhook_processors.setdefault(path.rstrip("/") or "/", []).append(processor)

    def add_webhook_verifier(self, path: str, verifier: SignatureVerifier) -> None:
        """Verify every request on ``path`` at ingress, before it is journaled (401 if not).

        ``liveEvents.webhooks.<path>.verifier`` in the settings overrides this.
        """
        if not callable(getattr(verifier, "verify", None)):
            raise ValueError(f"{verifier!r} has no verify(body, headers, now) method")
        self.webhook_verifiers[path.rstrip("/") or "/"] = verifier

    def on_start(self) -> Callable[[F], F]:
        """Register a coroutine to run (in the background) once the app has started."""

        def register(hook: F) -> F:
            self.on_start_hooks.append(hook)
            return hook

        return register

    def on_resync(self, kind: str | None = None) -> Callable[[F], F]:
        """Register a resync function for ``kind`` (None: every kind); resyncs run in a later release."""

        def register(handler: F) -> F:
            self.resync_handlers.setdefault(kind, []).append(handler)
            return handler

        return register

    def register_resource_config(self, kind: str, cls: type[ResourceConfig]) -> None:
        """Parse resources of ``kind`` with ``cls`` (a ``ResourceConfig`` subclass with extra selector fields)."""
        if not (inspect.isclass(cls) and issubclass(cls, ResourceConfig)):
            raise ValueError(f"{cls!r} is not a subclass of ResourceConfig")
        self.resource_config_classes[kind] = cls

    # --- the running app ----------------------------------------------------------------

    @property
    def app(self) -> App:
        """The running app; raises before start-up."""
        if self._app is None:
            raise OceanError(
                "the integration is not running yet (ocean.app is set once the app starts)"
            )
        return self._app

    @property
    def integration_config(self) -> dict[str, Any]:
        """The integration's own settings (``integration.config``), snake_case keys as in Ocean."""
        if self.settings is None:
            from ._settings import load_settings

            self.settings = load_settings(self.root or Path.cwd())
        return self.settings.integration.config

    async def register_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Map ``items`` with every resource of ``kind`` and upsert them (selector misses are deleted)."""
        await self.app.register_raw(kind, items)

    async def unregister_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Map ``items`` with every resource of ``kind`` and delete the entities that pass the selector."""
        await self.app.unregister_raw(kind, items)

    def asgi_app(self, main_file: str | None = None) -> OceanASGI:
        """The ASGI app for ``hypercorn --worker-class trio integrations.<name>.main:app``.

        ``main_file`` (pass ``__file__``) locates the integration's folder: its
        ``config.yaml`` and ``.port/resources``.
        """
        from ._asgi import OceanASGI

        if main_file is not None and self.root is None:
            self.root = Path(main_file).resolve().parent
        return OceanASGI(self)


_current: contextvars.ContextVar[Integration] = contextvars.ContextVar("ocean_trio_integration")
_default: Integration | None = None


def current_integration() -> Integration:
    """The integration ``ocean`` stands for right now."""
    global _default
    integration = _current.get(None)
    if integration is not None:
        return integration
    if _default is None:
        _default = Integration()
    return _default


@contextmanager
def using(integration: Integration) -> Iterator[Integration]:
    """Make ``ocean`` stand for ``integration`` in this context (and tasks started from it)."""
    token = _current.set(integration)
    try:
        yield integration
    finally:
        _current.reset(token)


class _OceanProxy:
    """Forwards every attribute to the current ``Integration``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(current_integration(), name)

    def __dir__(self) -> Iterable[str]:
        return dir(current_integration())

    def __repr__(self) -> str:
        return f"<ocean proxy for {current_integration()!r}>"


ocean = cast(Integration, _OceanProxy())


def load_integration(root: Path) -> Integration:
    """Import ``root/main.py`` into a fresh ``Integration`` and return it.

    ``root`` goes first on ``sys.path`` so ``main.py`` can import its sibling modules, as
    Ocean integrations do (``from kinds import Kinds``).
    """
    root = root.resolve()
    main = root / "main.py"
    if not main.is_file():
        raise OceanError(f"no integration at {root}: main.py not found")
    integration = Integration(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module_name = f"ocean_trio_integration_{abs(hash(root))}"
    spec = importlib.util.spec_from_file_location(module_name, main)
    if spec is None or spec.loader is None:
        raise OceanError(f"cannot import {main}")
    module = importlib.util.module_from_spec(spec)
    with using(integration):
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return integration
