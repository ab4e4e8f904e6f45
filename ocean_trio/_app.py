"""``App``: one running integration's components, as ``open_app`` (``_root``) built them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ._integration import Integration
from ._settings import Settings
from .catalog._applier import Applier
from .catalog._local import LocalCatalog
from .catalog._port_client import PortClient
from .live_events._journal import Journal, ReplayResult
from .live_events._json import BodyParser, exceeds
from .live_events._pipeline import LiveEventsPipeline
from .live_events._signatures import SignatureVerifier
from .mapping._compiled import CompiledPortAppConfig
from .mapping._live_changes import register_raw_changes, unregister_raw_changes
from .mapping._pool import MappingPool

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
    port: PortClient | None = None
    verifiers: dict[str, SignatureVerifier] = attrs.field(factory=dict)
    delivery_id_headers: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    stopping: trio.Event = attrs.field(factory=trio.Event)
    serving: trio.Event = attrs.field(factory=trio.Event)
    urls: list[str] = attrs.field(factory=list)
    mapping_pool: MappingPool | None = None
    _map_limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

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

    async def replay(self, seqs: Sequence[int] | None = None) -> ReplayResult:
        """Make dead (or the given dead/rejected) events pending again; they run at once.

        However many there are: the pipelines page them in from the journal.
        """
        pipelines = {p.path: p for p in self.pipelines.values()}
        for pipeline in pipelines.values():
            pipeline.pin()
        try:
            result = await self.journal.replay(seqs)
            for replayed in result.replayed:
                target = pipelines.get(replayed.path)
                if target is None:
                    logger.warning(
                        "replayed event %s is for %s, which has no processors now; left pending",
                        replayed.seq,
                        replayed.path,
                    )
                else:
                    target.replayed(replayed.seq)
        finally:
            for pipeline in pipelines.values():
                pipeline.unpin()
        return result

    async def drain(self) -> None:
        """Stop intake, wait until every accepted event has finished, and record that."""
        self.stopping.set()
        for pipeline in self.pipelines.values():
            await pipeline.wait_idle()
        await self.journal.flush()

    def health(self) -> dict[str, Any]:
        """The counters ``/health/ready`` shows."""
        return {
            "status": "ok",
            "live_events": {
                path: attrs.asdict(p.statistics()) for path, p in self.pipelines.items()
            },
            "journal": attrs.asdict(self.journal.statistics()),
            "applier": attrs.asdict(self.applier.statistics()),
            "port": None if self.port is None else attrs.asdict(self.port.statistics()),
        }


def _log_issues(kind: str, issues: list[Any]) -> None:
    for issue in issues:
        logger.warning("mapping %s item %s: %s", kind, issue.index, issue.message)
