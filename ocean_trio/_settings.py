"""Settings: the integration's ``config.yaml`` plus ``OCEAN__…`` environment variables (Ocean's names).

Precedence: explicit overrides > environment > ``config.yaml`` > defaults. YAML keys are
camelCase (snake_case is accepted too); ``OCEAN__EVENT_WORKERS_COUNT`` sets
``eventWorkersCount``; ``OCEAN__INTEGRATION__CONFIG__JIRA_HOST`` sets the integration's own
``jira_host``. Strings of the form ``{{ from env VAR }}`` in ``config.yaml`` are read from the
environment, as in Ocean.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from ._converter import camel, merge_trees, snake, structure
from ._exceptions import ConfigError
from .live_events._redis_settings import RedisJournalSettings

ENV_PREFIX = "OCEAN__"
MIB = 1024 * 1024


@attrs.frozen(kw_only=True)
class PortSettings:
    """Port's API (used when ``catalog.type`` is ``port``)."""

    client_id: str | None = None
    client_secret: str | None = attrs.field(default=None, repr=False)
    base_url: str = "https://api.getport.io"
    requests_per_second: float = 100.0
    """The most requests a second the client starts; fewer while Port's rate-limit headers
    say its budget is short."""
    bulk_wait_seconds: float = 0.05
    """How long a live-event write with fewer entities than a bulk call holds (20) waits for
    other events' entities: a little latency for several times fewer calls."""


@attrs.frozen(kw_only=True)
class IntegrationSettings:
    """Who the integration is, and its own configuration (``ocean.integration_config``)."""

    identifier: str | None = None
    type: str | None = None
    # Integrations keep their API tokens and webhook secrets here, so it stays out of repr.
    config: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class HttpSettings:
    """Where ``sail`` serves; loopback unless told otherwise."""

    host: str = "127.0.0.1"
    port: int = 8000
    processing_port: int | None = None
    """In the split topology, the processing process serves its pages, ``/metrics``, the
    live feed and health here (it serves no HTTP otherwise)."""


@attrs.frozen(kw_only=True)
class CatalogSettings:
    """The sink: the embedded SQLite catalog (``local``) or Port's API (``port``)."""

    type: Literal["local", "port"] = "local"
    path: str | None = None


@attrs.frozen(kw_only=True)
class JournalSettings:
    """Where accepted live events are recorded before they are acknowledged.

    ``sqlite`` (default) survives crashes and is shared by the processes of one machine;
    ``redis`` (Redis Streams, ``liveEvents.redis``) by instances on several machines;
    ``memory`` is Ocean's behaviour (lost on restart).
    """

    type: Literal["sqlite", "memory", "redis"] = "sqlite"
    path: str | None = None
    retention_seconds: float = 24 * 3600.0
    max_finished_events: int = 100_000
    dedup_window_seconds: float = 72 * 3600.0


@attrs.frozen(kw_only=True)
class WebhookSettings:
    """Per webhook path (``/webhook``): signature verification and the delivery-id header."""

    verifier: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    delivery_id_header: str | None = None


@attrs.frozen(kw_only=True)
class RelayConnectionSettings:
    """Live events taken from a relay (``ocean-trio relay``, docs/relay.md) over an outbound
    WebSocket, for an integration no webhook can reach."""

    url: str
    """The relay's ``/relay/connect``: ``ws://host:9000/relay/connect`` (``wss://`` behind TLS)."""
    token: str = attrs.field(repr=False)
    """The relay's ``token``, sent as ``Authorization: Bearer``."""

    def __attrs_post_init__(self) -> None:
        try:
            parts = urllib.parse.urlsplit(self.url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as error:
            raise ConfigError(f"url {self.url!r} is not a valid URL: {error}") from None
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(
                f"url must be ws://HOST:PORT/relay/connect (or wss://...), not {self.url!r}"
            )
        if not self.token:
            raise ConfigError("token must not be empty")


@attrs.frozen(kw_only=True)
class LiveEventsSettings:
    """Limits of the webhook ingress, the journal, and per-path webhook settings.

    ``maxPendingEvents`` bounds the journal (ingress answers 503 beyond it); of those, at
    most ``maxInMemoryEvents`` events and ``maxInMemoryBytes`` of bodies per path are held
    in memory, the rest is paged in from the journal as workers get to it.
    """

    max_body_bytes: int = 25 * MIB
    max_json_depth: int = 64
    max_pending_events: int = 10_000
    max_in_memory_events: int = 1000
    max_in_memory_bytes: int = 64 * MIB
    journal: JournalSettings = JournalSettings()
    webhooks: Mapping[str, WebhookSettings] = attrs.field(factory=dict)
    redis: RedisJournalSettings = attrs.field(factory=RedisJournalSettings)
    relay: RelayConnectionSettings | None = None
    """When set, the processing process also takes live events from this relay."""
    type: str | None = None
    """Ocean's ``OCEAN__LIVE_EVENTS__TYPE``: ``REDIS`` selects the redis journal too."""

    @property
    def journal_type(self) -> Literal["sqlite", "memory", "redis"]:
        """The journal in use: ``journal.type``, or ``redis`` when Ocean's ``type`` says so."""
        if (self.type or "").upper() == "REDIS":
            return "redis"
        return self.journal.type


ListenerType = Literal["POLLING", "KAFKA", "WEBHOOK", "ONCE", "WEBHOOKS_ONLY"]


@attrs.frozen(kw_only=True)
class EventListenerSettings:
    """What triggers resyncs (Ocean's ``eventListener``); fields apply to their ``type``.

    POLLING: ``interval`` seconds, ``resyncOnStart``. WEBHOOK: ``appHost`` (told to Port) and
    ``token`` (``POST /resync`` needs ``Authorization: Bearer <token>``, or Port's signature).
    KAFKA: ``brokers`` and the rest, Ocean's names (docs/event-listeners.md). ONCE: resync,
    then exit. WEBHOOKS_ONLY: no resync.
    """

    type: ListenerType = "POLLING"
    interval: float = 60.0
    resync_on_start: bool = True
    app_host: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    brokers: str | None = None  # None: Port's public cluster
    security_protocol: str = "SASL_SSL"
    authentication_mechanism: str = "SCRAM-SHA-512"
    kafka_security_enabled: bool = True
    consumer_poll_timeout: int = 1
    session_timeout_ms: int | None = None


@attrs.frozen(kw_only=True)
class ResyncSettings:
    """How resync triggers are served (see docs/resync.md)."""

    coalesce_seconds: float = 1.0
    max_aborts_in_a_row: int = 3


@attrs.frozen(kw_only=True)
class AdminSettings:
    """The admin API (dead letters, replay, purge) is served only when a token is set."""

    token: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Settings:
    """Everything configurable; field names and defaults follow Ocean where Ocean has them."""

    port: PortSettings = PortSettings()
    integration: IntegrationSettings = IntegrationSettings()
    http: HttpSettings = HttpSettings()
    catalog: CatalogSettings = CatalogSettings()
    live_events: LiveEventsSettings = LiveEventsSettings()
    admin: AdminSettings = AdminSettings()
    event_listener: EventListenerSettings = EventListenerSettings()
    resync: ResyncSettings = ResyncSettings()
    scheduled_resync_interval: float | None = None
    event_workers_count: int = 1
    max_event_processing_seconds: float = 90.0
    max_wait_seconds_before_shutdown: float = 5.0
    startup_timeout_seconds: float = 60.0
    base_url: str | None = None
    resources_path: str = ".port/resources"
    state_path: str = ".ocean-trio"
    allow_environment_variables_jq_access: bool = True
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, for log shippers (``OCEAN__LOG_FORMAT``)."""
    role: Literal["all", "ingress", "processing"] = "all"
    """What this process does: ``all`` serves webhooks and processes (or stands by to, while
    another process of the state folder does); ``ingress`` only journals and acknowledges
    webhooks; ``processing`` processes (waiting for its turn). See docs/scaling.md."""

    def secrets(self) -> list[str]:
        """Every secret these settings hold, for masking in logs: Port's client secret, the
        admin, resync and relay tokens, Redis's password and key, webhook secrets, and the
        integration config's values whose key names a secret."""
        found: list[str] = []
        for value in (
            self.port.client_secret,
            self.admin.token,
            self.event_listener.token,
            self.live_events.redis.password,
            self.live_events.redis.private_key,
            self.live_events.relay.token if self.live_events.relay else None,
        ):
            if isinstance(value, str):
                found.append(value)
        for webhook in self.live_events.webhooks.values():
            _secret_values(webhook.verifier or {}, found, secret=False)
        _secret_values(self.integration.config, found, secret=False)
        return found

    def resolve(self, root: Path, relative: str) -> Path:
        """``relative`` under the integration's folder (absolute paths are kept)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else root / path

    def catalog_path(self, root: Path) -> Path:
        """The local catalog's SQLite file (default: ``<state_path>/catalog.sqlite3``)."""
        if self.catalog.path:
            return self.resolve(root, self.catalog.path)
        return self.resolve(root, self.state_path) / "catalog.sqlite3"

    def resync_requests_path(self, root: Path) -> Path:
        """Where resync requests are recorded until served: ``<state_path>/resync.sqlite3``."""
        return self.resolve(root, self.state_path) / "resync.sqlite3"

    def journal_path(self, root: Path) -> Path:
        """The SQLite journal's file (default: ``<state_path>/journal.sqlite3``)."""
        if self.live_events.journal.path:
            return self.resolve(root, self.live_events.journal.path)
        return self.resolve(root, self.state_path) / "journal.sqlite3"


_SECRET_KEY = re.compile(r"secret|token|password|passwd|api_?key|private|credential", re.I)


def _secret_values(data: Any, found: list[str], *, secret: bool) -> None:
    """Collect the strings under keys that name a secret (``webhookSecret``, ``apiToken``…)."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            _secret_values(value, found, secret=secret or bool(_SECRET_KEY.search(str(key))))
    elif isinstance(data, list | tuple):
        for value in data:
            _secret_values(value, found, secret=secret)
    elif secret and isinstance(data, str):
        found.append(data)


_FROM_ENV = re.compile(r"^\{\{\s*from env (\w+)\s*\}\}$")
# Keys under these paths are the integration's own settings: snake_case, like Ocean's
# ``ocean.integration_config``.
_FREE_FORM = (("integration", "config"),)
# Keys under these paths are names the user chose (webhook paths): kept as written.
_VERBATIM = (("live_events", "webhooks"),)


def normalise_tree(
    data: Any,
    environ: Mapping[str, str],
    *,
    verbatim: tuple[tuple[str, ...], ...] = _VERBATIM,
    path: tuple[str, ...] = (),
) -> Any:
    """A settings tree as read (camelCase or snake_case keys) with camelCase keys, keys under
    ``verbatim`` paths kept as written, and ``{{ from env NAME }}`` values resolved."""
    if isinstance(data, Mapping):
        free = path in _FREE_FORM
        kept = path in verbatim
        return {
            (str(k) if kept else snake(str(k)) if free else camel(snake(str(k)))): normalise_tree(
                v, environ, verbatim=verbatim, path=(*path, snake(str(k)))
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [normalise_tree(v, environ, verbatim=verbatim, path=path) for v in data]
    if isinstance(data, str):
        match = _FROM_ENV.match(data.strip())
        if match:
            return environ.get(match.group(1))
    return data


# Ocean also takes these as one variable holding a JSON object: OCEAN__EVENT_LISTENER={"type": ...}
_JSON_OBJECTS = frozenset({"OCEAN__EVENT_LISTENER"})


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        if name in _JSON_OBJECTS:
            tree = merge_trees(
                tree, {camel(name[len(ENV_PREFIX) :].lower()): _json_object(name, value)}
            )
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        node = tree
        for depth, part in enumerate(parts):
            free = depth >= 2 and tuple(parts[:2]) in _FREE_FORM
            key = part if free else camel(part)
            if depth == len(parts) - 1:
                node[key] = value
            else:
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    raise ConfigError(
                        f"{name} conflicts with another OCEAN__ variable setting {key}"
                    )
                node = child
    return tree


def _json_object(name: str, value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError as error:
        raise ConfigError(f"{name} is not a JSON object: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f'{name} must hold a JSON object, like {{"type": "POLLING"}}')
    return {camel(snake(str(k))): v for k, v in data.items()}


def read_config_file(path: Path) -> Mapping[str, Any]:
    """A YAML settings file's top-level mapping; empty when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if loaded is not None and not isinstance(loaded, Mapping):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return loaded or {}


def load_settings(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``root/config.yaml`` (if any) and ``OCEAN__`` variables into ``Settings``."""
    env = os.environ if environ is None else environ
    config_file = root / "config.yaml"
    from_file = normalise_tree(read_config_file(config_file), env)
    merged = merge_trees(from_file, _from_environ(env))
    if overrides:
        merged = merge_trees(merged, normalise_tree(overrides, env))
    return structure(
        merged, Settings, source=f"settings ({config_file} and {ENV_PREFIX}* variables)"
    )
