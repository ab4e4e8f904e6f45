"""``App``: one running integration's components, as ``open_app`` (``_root``) built them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ._exceptions import ConfigError
from ._feed import LiveFeed
from ._integration import Integration
from ._log import SecretMask
from ._metrics import Metrics
from ._resources import load_mapping, port_mapping
from ._settings import Settings
from ._state_wake import EVENTS, REQUESTS
from .catalog._applier import Applier
from .catalog._changes import EntityChanges
from .catalog._local import LocalCatalog
from .catalog._port_client import PortClient
from .live_events._ingress import WebhookIngress
from .live_events._journal import Journal, ReplayResult
from .live_events._json import BodyParser, exceeds
from .live_events._monitor import Monitors
from .live_events._pipeline import LiveEventsPipeline
from .live_events._signatures import SignatureVerifier
from .mapping._compiled import CompiledPortAppConfig
from .mapping._live_changes import register_raw_changes, resync_changes, unregister_raw_changes
from .mapping._mapper import MappingIssue
from .mapping._pool import MappingPool
from .resync._coordinator import ResyncCoordinator
from .resync._engine import Progress, run_resync
from .resync._progress import ConsoleProgress
from .resync._requests import RequestStore
from .resync._state import ResyncState, ResyncStatus
from .resync._target import ResyncTarget

logger = logging.getLogger("ocean_trio")

WEBHOOK_PREFIX = "/integration"

# register_raw/unregister_raw of more JSON values than this map off the event loop (in the
# mapping pool's worker processes, or on a thread without a pool).
MAP_OFF_LOOP_NODES = 5000


@attrs.define(eq=False)
class App:
    """One running integration: its settings, mapping, catalog, applier and live-event pipelines.

    ``pipelines`` is keyed by full path (``/integration/webhook``).
    """

    integration: Integration
    settings: Settings
    root: Path
    mapping: CompiledPortAppConfig
    catalog: LocalCatalog | None  # the embedded catalog; None when entities go to Port
    applier: Applier
    journal: Journal
    parser: BodyParser
    pipelines: dict[str, LiveEventsPipeline] = attrs.field(factory=dict)
    ingress: WebhookIngress | None = None  # set by open_app once the pipelines are built
    # The relay source's statistics (``SourceStatistics``), while one runs (liveEvents.relay).
    relay_statistics: Callable[[], Any] | None = None
    port: PortClient | None = None
    verifiers: dict[str, SignatureVerifier] = attrs.field(factory=dict)
    delivery_id_headers: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    stopping: trio.Event = attrs.field(factory=trio.Event)
    serving: trio.Event = attrs.field(factory=trio.Event)
    urls: list[str] = attrs.field(factory=list)
    mapping_pool: MappingPool | None = None
    resync_target: ResyncTarget | None = None  # the sink, when resyncs can write into it
    resyncs: ResyncCoordinator | None = None  # set by open_app unless the listener resyncs never
    resync_progress: Progress = attrs.field(factory=ConsoleProgress)
    requests: RequestStore | None = None  # where resync requests are recorded until served
    wake: Callable[[bytes], None] = lambda what: None  # pokes the folder's processing process
    processing: bool = False  # this process runs the pipelines, hooks and resyncs
    finished: trio.Event = attrs.field(factory=trio.Event)  # set by ``finish``
    exit_code: int | None = None
    _map_limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    # What the pipelines and ingress report to: the metrics and the live feed.
    feed: LiveFeed = attrs.field(
        default=attrs.Factory(
            lambda self: LiveFeed(mask=SecretMask(self.settings.secrets())), takes_self=True
        )
    )
    metrics: Metrics = attrs.field(factory=Metrics)
    monitors: Monitors = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.monitors = Monitors([self.metrics, self.feed])

    @property
    def base_url(self) -> str:
        """Where this app is reachable: ``baseUrl`` if set, else the first address served."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        if self.urls:
            return self.urls[0].rstrip("/")
        return f"http://{self.settings.http.host}:{self.settings.http.port}"

    def served_at(self, urls: Sequence[str]) -> None:
        """Record that the HTTP server is up at ``urls``."""
        self.urls[:] = urls
        self.serving.set()

    @property
    def accepting(self) -> bool:
        """False once shutdown began: ingress answers 503."""
        return not self.stopping.is_set()

    def current_mapping(self) -> CompiledPortAppConfig:
        """The mapping in force (what each event is mapped with when it is processed)."""
        return self.mapping

    async def register_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Ocean's ``register_raw``: upsert what passes the selector, delete what no longer does."""
        changes, issues = await self._map(register_raw_changes, kind, items)
        _log_issues(kind, issues)
        await self.applier.apply(changes)

    async def unregister_raw(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Ocean's ``unregister_raw``: delete the entities of ``items`` that pass the selector."""
        changes, issues = await self._map(unregister_raw_changes, kind, items)
        _log_issues(kind, issues)
        await self.applier.apply(changes)

    async def _map(self, fn: Any, kind: str, items: list[dict[str, Any]]) -> Any:
        if exceeds(items, MAP_OFF_LOOP_NODES):
            if self.mapping_pool is not None:
                return await self.mapping_pool.map(fn, self.mapping, kind, items)
            return await trio.to_thread.run_sync(
                fn, self.mapping, kind, items, limiter=self._map_limiter
            )
        await trio.lowlevel.checkpoint()
        return fn(self.mapping, kind, items)

    def finish(self, exit_code: int) -> None:
        """Ask the process to stop with ``exit_code`` (the ONCE listener, once its resync ended)."""
        self.exit_code = exit_code
        self.finished.set()

    async def reload_mapping(self) -> CompiledPortAppConfig:
        """Read the mapping again (the file, or Port's) and put it in force for live events too.

        Raises ``ConfigError`` (``MappingError`` for invalid jq) and keeps the one in force.
        """
        if self.port is not None:
            local = await trio.to_thread.run_sync(
                load_mapping, self.integration, self.settings, self.root
            )
            mapping = await port_mapping(
                self.port, self.integration, self.settings, self.root, local
            )
        else:
            mapping = await trio.to_thread.run_sync(
                load_mapping, self.integration, self.settings, self.root
            )
        self.mapping = mapping
        return mapping

    async def resync(self, state: ResyncState) -> None:
        """Run one resync (the coordinator calls it): the mapping as it is now, every kind."""
        try:
            mapping = await self.reload_mapping()
        except ConfigError as error:
            state.status = ResyncStatus.FAILED
            state.error = f"the mapping did not load (live events keep the last one): {error}"
            return
        if self.resync_target is None:
            state.status = ResyncStatus.FAILED
            state.error = "the catalog sink cannot take a resync"
            return
        await run_resync(
            state,
            integration=self.integration,
            mapping=mapping,
            target=self.resync_target,
            map_batch=self._map_resync_batch,
            progress=self.resync_progress,
        )

    async def _map_resync_batch(
        self, compiled: CompiledPortAppConfig, index: int, items: list[dict[str, Any]]
    ) -> tuple[EntityChanges, list[MappingIssue]]:
        if exceeds(items, MAP_OFF_LOOP_NODES):
            if self.mapping_pool is not None:
                return await self.mapping_pool.map(resync_changes, compiled, index, items)
            return await trio.to_thread.run_sync(
                resync_changes, compiled, index, items, limiter=self._map_limiter
            )
        await trio.lowlevel.checkpoint()
        return resync_changes(compiled, index, items)

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        """Make dead (or the given dead/rejected) events pending again; they run at once.

        However many there are: the pipelines page them in from the journal (told by it,
        or, in another process, poked).
        """
        result = await self.journal.replay(seqs)
        paths = {p.path for p in self.pipelines.values()}
        for replayed in result.replayed:
            if replayed.path not in paths:
                logger.warning(
                    "replayed event %s is for %s, which has no processors now; left pending",
                    replayed.seq,
                    replayed.path,
                )
        self.wake(EVENTS)
        return result

    async def request_resync(self, reason: str) -> None:
        """Ask for a resync: here when this process processes, else recorded for the one
        that does (and poked)."""
        if self.processing and self.resyncs is not None:
            self.resyncs.request(reason)
            return
        assert self.requests is not None
        await self.requests.add(reason)
        self.wake(REQUESTS)

    async def drain(self) -> None:
        """Stop intake, wait until every accepted event has finished, and record that."""
        self.stopping.set()
        for pipeline in self.pipelines.values():
            await pipeline.wait_idle()
        await self.journal.flush()

    def readiness(self) -> str | None:
        """Why this process should get no traffic now (draining, the journal or the sink
        failing), or None when it is ready: what ``/health/ready`` answers 503 for."""
        if not self.accepting:
            return "stopping: draining accepted events"
        if self.journal.failure is not None:
            return f"the journal is unavailable: {self.journal.failure}"
        if self.applier.statistics().retrying:
            return "the catalog sink is failing: its writes are being retried"
        if self.port is not None and self.port.failing:
            return f"Port's API is failing (retrying): {self.port.last_failure}"
        return None

    def health(self) -> dict[str, Any]:
        """The counters ``/health/ready`` shows."""
        return {
            "status": "ok",
            "role": self.settings.role,
            "processing": self.processing,
            "pid": os.getpid(),
            "live_events": {
                path: attrs.asdict(p.statistics()) for path, p in self.pipelines.items()
            },
            "journal": attrs.asdict(self.journal.statistics()),
            "applier": attrs.asdict(self.applier.statistics()),
            "port": None if self.port is None else attrs.asdict(self.port.statistics()),
            "resync": self.resync_json(),
            "relay": None
            if self.relay_statistics is None
            else attrs.asdict(self.relay_statistics()),
        }

    def resync_json(self) -> dict[str, Any] | None:
        """The running resync, else the last one, as ``GET /resync`` shows it."""
        if self.resyncs is None:
            return None
        state = self.resyncs.current or self.resyncs.last
        return None if state is None else state.to_json()


def webhook_ingress(app: App) -> WebhookIngress:
    """The ingress journaling ``app``'s webhooks (from HTTP, or another event source)."""
    return WebhookIngress(
        app.pipelines,
        max_body_bytes=app.settings.live_events.max_body_bytes,
        accepting=lambda: app.accepting,
        verifiers=app.verifiers,
        delivery_id_headers=app.delivery_id_headers,
        parser=app.parser,
    )


def _log_issues(kind: str, issues: list[Any]) -> None:
    for issue in issues:
        logger.warning("mapping %s item %s: %s", kind, issue.index, issue.message)
