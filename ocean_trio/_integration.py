"""``Integration``: what an integration registers (processors, routes, hooks), as plain data.

An integration's ``main.py`` calls ``ocean.add_webhook_processor(...)``, ``@ocean.on_start()``
and friends at import time, exactly as with Ocean; ``ocean`` stands for the *current*
``Integration``: the one being loaded by ``load_integration`` or served by ``open_app``, else
a process-wide default (what ``hypercorn integrations.x.main:app`` imports into). This
module knows nothing of the running app: ``open_app`` attaches itself (``attach``) as the
``RunningApp`` that ``register_raw`` and friends reach.
"""

from __future__ import annotations

import contextvars
import importlib.util
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import trio

from ._exceptions import OceanError
from ._router import Router
from ._settings import Settings, load_settings
from .live_events._processor import AbstractWebhookProcessor
from .live_events._signatures import SignatureVerifier
from .mapping._models import ResourceConfig

OnStart = Callable[..., Awaitable[None]]
"""An ``on_start`` hook: ``async def hook()``, or ``async def hook(*, task_status)`` to make
start-up wait for its ``task_status.started()`` (and fail with its error)."""
OnResync = Callable[[str], Any]
ASYNC_GENERATOR_RESYNC_TYPE = AsyncIterator[list[dict[str, Any]]]
"""What an ``on_resync`` async generator returns (Ocean's name, for ported annotations)."""
VerifierFactory = Callable[[dict[str, Any]], SignatureVerifier]
"""Builds a path's verifier from ``integration.config`` when the app starts (secrets in config)."""
F = TypeVar("F", bound=Callable[..., Any])


class RunningApp(Protocol):
    """What integration code may use of the running app (``ocean.app``)."""

    @property
    def base_url(self) -> str:
        """Where the app is reachable (``baseUrl``, else the address it serves on)."""
        ...

    @property
    def serving(self) -> trio.Event:
        """Set once the HTTP server is up and ``base_url`` is its real address."""
        ...

    async def register_raw(self, kind: str, items: list[dict[str, Any]]) -> None: ...

    async def unregister_raw(self, kind: str, items: list[dict[str, Any]]) -> None: ...


class Integration:
    """The registrations of one integration, and the app serving it once running."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.webhook_processors: dict[str, list[type[AbstractWebhookProcessor]]] = {}
        self.webhook_verifiers: dict[str, SignatureVerifier | VerifierFactory] = {}
        self.router = Router()
        self.on_start_hooks: list[OnStart] = []
        self.resync_handlers: dict[str | None, list[OnResync]] = {}
        self.on_resync_start_hooks: list[Callable[[], Awaitable[None]]] = []
        self.on_resync_complete_hooks: list[Callable[[], Awaitable[None]]] = []
        self.resource_config_classes: dict[str, type[ResourceConfig]] = {}
        self.settings: Settings | None = None
        self._running: RunningApp | None = None

    # --- registration (import time) -----------------------------------------------------

    def add_webhook_processor(self, path: str, processor: type[AbstractWebhookProcessor]) -> None:
        """Serve ``POST /integration{path}`` and run ``processor`` on its events (several per path)."""
        if not (inspect.isclass(processor) and issubclass(processor, AbstractWebhookProcessor)):
            raise ValueError(f"{processor!r} is not a subclass of AbstractWebhookProcessor")
        if not path.startswith("/"):
            raise ValueError(f"webhook path must start with '/': {path!r}")
        self.webhook_processors.setdefault(path.rstrip("/") or "/", []).append(processor)

    def add_webhook_verifier(
        self, path: str, verifier: SignatureVerifier | VerifierFactory
    ) -> None:
        """Verify every request on ``path`` at ingress, before it is journaled (401 if not).

        ``verifier`` is a ``SignatureVerifier``, or a function building one from the
        integration's own config when the app starts (so the secret can live there, e.g.
        ``lambda config: GitHubSignature(config["webhook_secret"])``).
        ``liveEvents.webhooks.<path>.verifier`` in the settings overrides this.
        """
        if not (callable(getattr(verifier, "verify", None)) or inspect.isfunction(verifier)):
            raise ValueError(
                f"{verifier!r} has no verify(body, headers, now) method and is not a function"
            )
        self.webhook_verifiers[path.rstrip("/") or "/"] = verifier

    def on_start(self) -> Callable[[F], F]:
        """Register a coroutine to run once the app has started, for as long as it runs.

        A plain ``async def hook()`` runs in the background and its errors are logged
        (Ocean's behaviour). A hook taking ``task_status`` (trio's ``nursery.start``
        protocol) is waited for: start-up completes only once it calls
        ``task_status.started()``, and fails with its error (raise ``StartupError`` for a
        one-line message) if it raises before that.
        """

        def register(hook: F) -> F:
            self.on_start_hooks.append(hook)
            return hook

        return register

    def on_resync(self, kind: str | None = None) -> Callable[[F], F]:
        """Register a resync function for ``kind`` (None: every kind), as in Ocean.

        ``async def fn(kind: str)`` returning a list of raw items, or an async generator
        yielding lists (batches, mapped and written as they arrive).
        """

        def register(handler: F) -> F:
            self.resync_handlers.setdefault(kind, []).append(handler)
            return handler

        return register

    def on_resync_start(self) -> Callable[[F], F]:
        """Register a coroutine awaited at the start of every resync (Ocean's hook)."""

        def register(hook: F) -> F:
            self.on_resync_start_hooks.append(hook)
            return hook

        return register

    def on_resync_complete(self) -> Callable[[F], F]:
        """Register a coroutine awaited after a resync completed and reconciled (Ocean's hook)."""

        def register(hook: F) -> F:
            self.on_resync_complete_hooks.append(hook)
            return hook

        return register

    def register_resource_config(self, kind: str, cls: type[ResourceConfig]) -> None:
        """Parse resources of ``kind`` with ``cls`` (a ``ResourceConfig`` subclass with extra selector fields)."""
        if not (inspect.isclass(cls) and issubclass(cls, ResourceConfig)):
            raise ValueError(f"{cls!r} is not a subclass of ResourceConfig")
        self.resource_config_classes[kind] = cls

    # --- the running app ----------------------------------------------------------------

    def attach(self, app: RunningApp, settings: Settings) -> None:
        """Called by ``open_app``: ``app`` now runs this integration with ``settings``."""
        self._running = app
        self.settings = settings

    def detach(self) -> None:
        """Called by ``open_app`` on the way out: the app no longer runs."""
        self._running = None

    @property
    def app(self) -> RunningApp:
        """The running app; raises before start-up."""
        if self._running is None:
            raise OceanError(
                "the integration is not running yet (ocean.app is set once the app starts)"
            )
        return self._running

    @property
    def integration_config(self) -> dict[str, Any]:
        """The integration's own settings (``integration.config``), snake_case keys as in Ocean."""
        if self.settings is None:
            self.settings = load_settings(self.root or Path.cwd())
        return self.settings.integration.config

    async def register_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Map ``items`` with every resource of ``kind`` and upsert them (selector misses are deleted)."""
        await self.app.register_raw(kind, items)

    async def unregister_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Map ``items`` with every resource of ``kind`` and delete the entities that pass the selector."""
        await self.app.unregister_raw(kind, items)


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
