"""``open_app``: the composition root that builds and runs one integration's component tree."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

from ._exceptions import ConfigError
from ._ocean import Integration, OnStart, using
from ._settings import Settings
from ._version import __version__
from .catalog._applier import Applier
from .catalog._changes import CatalogSink
from .catalog._local import LocalCatalog
from .catalog._port_client import PortClient
from .catalog._port_sink import PortSink
from .live_events._handling import EventHandler
from .live_events._journal import Journal, JournalEntry, MemoryJournal
from .live_events._pipeline import LiveEventsPipeline
from .live_events._signatures import SignatureVerifier, verifier_from_config
from .live_events._sqlite_journal import SqliteJournal
from .mapping._compiled import CompiledPortAppConfig
from .mapping._live_changes import register_raw_changes, unregister_raw_changes
from .mapping._models import PortAppConfig, load_port_app_config, parse_port_app_config

logger = logging.getLogger("ocean_trio")

WEBHOOK_PREFIX = "/integration"


@attrs.define(eq=False)
class App:
    """One running integration: its settings, mapping, catalog, applier and live-event pipelines."""

    integration: Integration
    settings: Settings
    root: Path
    mapping: CompiledPortAppConfig
    catalog: LocalCatalog | None  # the embedded catalog; None when entities go to Port
    applier: Applier
    journal: Journal
    pipelines: dict[str, LiveEventsPipeline]
    port: PortClient | None = None
    verifiers: dict[str, SignatureVerifier] = attrs.field(factory=dict)
    delivery_id_headers: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    stopping: trio.Event = attrs.field(factory=trio.Event)
    serving: trio.Event = attrs.field(factory=trio.Event)
    urls: list[str] = attrs.field(factory=list)

    @property
    def base_url(self) -> str:
        """Where this app is reachable: ``base_url`` if set, else the first address served."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        if self.urls:
            return self.urls[0].rstrip("/")
        return f"http://{self.settings.http.host}:{self.settings.http.port}"

    def served_at(self, urls: list[str]) -> None:
        """Record that the HTTP server is up at ``urls``."""
        self.urls[:] = urls
        self.serving.set()

    @property
    def accepting(self) -> bool:
        """False once shutdown began: ingress answers 503."""
        return not self.stopping.is_set()

    def current_mapping(self) -> CompiledPortAppConfig:
        return self.mapping

    async def register_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Ocean's ``register_raw``: upsert what passes the selector, delete what no longer does."""
        changes, issues = register_raw_changes(self.mapping, kind, items)
        _log_issues(kind, issues)
        await self.applier.apply(changes)

    async def unregister_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Ocean's ``unregister_raw``: delete the entities of ``items`` that pass the selector."""
        changes, issues = unregister_raw_changes(self.mapping, kind, items)
        _log_issues(kind, issues)
        await self.applier.apply(changes)

    async def drain(self) -> None:
        """Stop intake, wait until every accepted event has finished, and record that."""
        self.stopping.set()
        for pipeline in self.pipelines.values():
            await pipeline.wait_idle()
        await self.journal.flush()

    def resume(self, entries: list[JournalEntry]) -> int:
        """Queue journaled entries (replays) on their paths' pipelines; returns how many."""
        by_path = {p.path: p for p in self.pipelines.values()}
        resumed = 0
        for entry in entries:
            pipeline = by_path.get(entry.event.path)
            if pipeline is None:
                logger.warning(
                    "journaled event %s is for %s, which has no processors now; left pending",
                    entry.seq,
                    entry.event.path,
                )
                continue
            pipeline.resume(entry)
            resumed += 1
        return resumed


def _log_issues(kind: str, issues: list[Any]) -> None:
    for issue in issues:
        logger.warning("mapping %s item %s: %s", kind, issue.index, issue.message)


def _mapping_file(settings: Settings, root: Path) -> Path | None:
    resources = settings.resolve(root, settings.resources_path)
    for name in ("port-app-config.yml", "port-app-config.yaml", "port-app-config.json"):
        if (resources / name).is_file():
            return resources / name
    return None


def load_mapping(integration: Integration, settings: Settings, root: Path) -> CompiledPortAppConfig:
    """The port app config from ``<resources>/port-app-config.{yml,yaml,json}``, compiled."""
    path = _mapping_file(settings, root)
    if path is not None:
        config = load_port_app_config(path, resource_classes=integration.resource_config_classes)
    else:
        logger.warning("no port-app-config file under %s: nothing will be mapped", root)
        config = PortAppConfig()
    return CompiledPortAppConfig.compile(
        config, allow_env=settings.allow_environment_variables_jq_access
    )


async def _port_mapping(
    client: PortClient,
    integration: Integration,
    settings: Settings,
    root: Path,
    local: CompiledPortAppConfig,
) -> CompiledPortAppConfig:
    """The mapping Port holds for this integration; the local file where Port has none.

    As Ocean does: a missing integration is created, and an empty mapping is filled, with
    the integration's ``.port/resources/port-app-config.yml``.
    """
    identifier = str(settings.integration.identifier)
    path = _mapping_file(settings, root)
    local_data = _read_config_data(path) if path is not None else {}
    found = await client.get_integration(identifier)
    if found is None:
        logger.info("creating integration %s in Port with the local mapping", identifier)
        await client.create_integration(
            {
                "installationId": identifier,
                "installationAppType": settings.integration.type,
                "version": __version__,
                "config": local_data,
            }
        )
        return local
    config = found.get("config")
    if not config:
        logger.info("integration %s has no mapping in Port: sending the local one", identifier)
        await client.patch_integration(identifier, {"config": local_data})
        return local
    parsed = parse_port_app_config(
        config,
        resource_classes=integration.resource_config_classes,
        source=f"the mapping of integration {identifier} in Port",
    )
    return CompiledPortAppConfig.compile(
        parsed, allow_env=settings.allow_environment_variables_jq_access
    )


def _read_config_data(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return dict(data) if isinstance(data, dict) else {}


@asynccontextmanager
async def _open_sink(
    settings: Settings, root: Path, blueprints: list[dict[str, Any]]
) -> AsyncIterator[tuple[CatalogSink, LocalCatalog | None, PortClient | None]]:
    """The catalog sink of ``catalog.type``: the embedded SQLite catalog or Port's API."""
    if settings.catalog.type == "local":
        async with LocalCatalog.open(settings.catalog_path(root)) as catalog:
            if blueprints:
                await catalog.upsert_blueprints(blueprints)
            yield catalog, catalog, None
        return
    port = settings.port
    missing = [
        name
        for name, value in (
            ("port.clientId (OCEAN__PORT__CLIENT_ID)", port.client_id),
            ("port.clientSecret (OCEAN__PORT__CLIENT_SECRET)", port.client_secret),
            (
                "integration.identifier (OCEAN__INTEGRATION__IDENTIFIER)",
                settings.integration.identifier,
            ),
        )
        if not value
    ]
    if missing:
        raise ConfigError("catalog.type is port but these are not set: " + ", ".join(missing))
    user_agent = (
        f"port-ocean/{settings.integration.type or 'custom'}/{__version__}/"
        f"{settings.integration.identifier}/exporter"
    )
    async with PortClient.open(
        base_url=port.base_url,
        client_id=str(port.client_id),
        client_secret=str(port.client_secret),
        user_agent=user_agent,
    ) as client:
        for blueprint in blueprints:
            if await client.get_blueprint(str(blueprint["identifier"])) is None:
                logger.info("creating blueprint %s in Port", blueprint["identifier"])
                await client.create_blueprint(blueprint)
        yield PortSink(client), None, client


def load_blueprints(settings: Settings, root: Path) -> list[dict[str, Any]]:
    """``<resources>/blueprints.json`` if present (used to title the catalog page)."""
    path = settings.resolve(root, settings.resources_path) / "blueprints.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, list) or not all(isinstance(b, dict) for b in data):
        raise ConfigError(f"{path} must hold a JSON array of blueprint objects")
    return data


@asynccontextmanager
async def open_app(
    integration: Integration, settings: Settings, *, root: Path | None = None
) -> AsyncIterator[App]:
    """Build and start the component tree; yield the running ``App``; drain and stop on exit.

    Leaving the block normally stops intake and lets accepted events finish for up to
    ``max_wait_seconds_before_shutdown`` before the remaining work is cancelled.
    """
    base = (root or integration.root or Path.cwd()).resolve()
    mapping = load_mapping(integration, settings, base)
    blueprints = load_blueprints(settings, base)
    verifiers, delivery_id_headers = _webhook_checks(integration, settings)
    async with (
        _open_journal(settings, base) as journal,
        _open_sink(settings, base, blueprints) as (sink, catalog, port),
    ):
        if port is not None:
            mapping = await _port_mapping(port, integration, settings, base, mapping)
        applier = Applier(sink)
        app = App(
            integration=integration,
            settings=settings,
            root=base,
            mapping=mapping,
            catalog=catalog,
            applier=applier,
            port=port,
            journal=journal,
            pipelines={},
            verifiers=verifiers,
            delivery_id_headers=delivery_id_headers,
        )
        for path, processors in integration.webhook_processors.items():
            handler = EventHandler(
                processors,
                mapping=app.current_mapping,
                apply=applier.apply,
                max_event_processing_seconds=settings.max_event_processing_seconds,
            )
            app.pipelines[WEBHOOK_PREFIX + path] = LiveEventsPipeline(
                path,
                handler,
                journal,
                workers=settings.event_workers_count,
                capacity=settings.live_events.max_pending_events,
                # The durable journal holds the events: queued ones keep only their body.
                park_events=isinstance(journal, SqliteJournal),
            )
        with using(integration):
            integration.settings = settings
            async with trio.open_nursery() as nursery:
                await nursery.start(journal.run)
                await nursery.start(applier.run)
                for pipeline in app.pipelines.values():
                    await nursery.start(pipeline.run)
                replayed = app.resume(await journal.unfinished())
                if replayed:
                    logger.info("replaying %d events left unfinished by the last run", replayed)
                integration._app = app
                for hook in integration.on_start_hooks:
                    nursery.start_soon(_run_on_start, hook)
                try:
                    yield app
                finally:
                    integration._app = None
                    with trio.move_on_after(settings.max_wait_seconds_before_shutdown, shield=True):
                        await app.drain()
                    nursery.cancel_scope.cancel()


def _webhook_checks(
    integration: Integration, settings: Settings
) -> tuple[dict[str, SignatureVerifier], dict[str, tuple[str, ...]]]:
    """Verifiers and delivery-id headers per webhook path: the integration's, then settings'."""
    verifiers = dict(integration.webhook_verifiers)
    headers: dict[str, tuple[str, ...]] = {}
    for raw_path, webhook in settings.live_events.webhooks.items():
        path = raw_path.rstrip("/") or "/"
        if path not in integration.webhook_processors:
            raise ConfigError(
                f"liveEvents.webhooks has settings for {raw_path!r}, which has no processors"
                f" (paths: {sorted(integration.webhook_processors)})"
            )
        if webhook.verifier is not None:
            verifiers[path] = verifier_from_config(webhook.verifier)
        if webhook.delivery_id_header:
            headers[path] = (webhook.delivery_id_header.lower(),)
    return verifiers, headers


@asynccontextmanager
async def _open_journal(settings: Settings, root: Path) -> AsyncIterator[Journal]:
    options = settings.live_events.journal
    max_pending = settings.live_events.max_pending_events
    if options.type == "memory":
        yield MemoryJournal(
            max_pending=max_pending, dedup_window_seconds=options.dedup_window_seconds
        )
        return
    async with SqliteJournal.open(
        settings.journal_path(root),
        max_pending=max_pending,
        dedup_window_seconds=options.dedup_window_seconds,
        retention_seconds=options.retention_seconds,
    ) as journal:
        yield journal


async def _run_on_start(hook: OnStart) -> None:
    # Ocean runs on_start hooks in the background and only logs their errors.
    try:
        await hook()
    except Exception:
        logger.exception("on_start hook %s failed", getattr(hook, "__name__", hook))
