"""``open_app``: the composition root. One function builds and runs an integration's whole tree.

``ocean-trio sail``, ``ocean_trio.testing`` and the hypercorn entry point all go through it;
the first two let it serve HTTP too (``serve_http=True``), the last is served by hypercorn.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from ._app import WEBHOOK_PREFIX, App, webhook_ingress
from ._asgi import OceanASGI
from ._exceptions import ConfigError, PortApiError, StartupError, one_error_as_raised, single_leaf
from ._integration import Integration, OnStart, using
from ._metrics_components import ComponentsCollector
from ._resources import load_blueprints, load_mapping, mapping_file, port_mapping
from ._serve import HttpListener
from ._settings import EventListenerSettings, Settings
from ._state_lock import StateFolderLock
from ._state_wake import EVENTS, REQUESTS, WakeSender, receive_wakes
from ._version import __version__
from .catalog._applier import Applier
from .catalog._local import LocalCatalog
from .catalog._port_client import BULK_MAX_ENTITIES, PortClient
from .catalog._port_sink import PortSink
from .catalog._port_state import report_resync_state
from .live_events._handling import EventHandler
from .live_events._journal import Journal, JournalEntry
from .live_events._json import BodyParser
from .live_events._memory_journal import MemoryJournal
from .live_events._outcome import EventOutcome
from .live_events._pipeline import LiveEventsPipeline, Window
from .live_events._redis_journal import RedisJournal
from .live_events._redis_settings import RedisJournalSettings
from .live_events._signatures import SignatureVerifier, verifier_from_config
from .live_events._sqlite_journal import SqliteJournal
from .mapping._pool import open_mapping_pool
from .relay._source import RelaySource
from .resync._coordinator import ResyncCoordinator
from .resync._kafka import KafkaListener, KafkaListenerSettings
from .resync._listeners import run_once, run_polling_local, run_polling_port, run_scheduled
from .resync._requests import MemoryRequestStore, RequestStore, SqliteRequestStore
from .resync._state import ResyncState
from .resync._webhook import resync_authority

logger = logging.getLogger("ocean_trio")

HTTP_STOP_SECONDS = 5.0  # hypercorn's graceful timeout (3 s) plus its lifespan shutdown

MAX_BULK_WAIT_SECONDS = 5.0  # port.bulkWaitSeconds: beyond this a live event waits too long

SWITCH_INTERVAL_SECONDS = 0.001
"""The interpreter's thread switch interval while an app runs (Python's default: 5 ms).

Big bodies are parsed on worker threads that hold the GIL between switches; after each
system call the event loop's thread waits for the GIL up to one interval, so with the
default a small request's dozen socket calls could wait ~100 ms behind one big parse
(measured: 105 ms for 10 loopback round trips, 6 ms at 1 ms). Threads only contend while
such work runs, so the shorter interval costs nothing otherwise.
"""


class _Startup:
    """The start-up deadline: each step that waits on something outside runs under it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = trio.current_time() + timeout

    @contextmanager
    def step(self, what: str, port: PortClient | None = None) -> Iterator[None]:
        """Run a step; Port errors and the deadline become a ``StartupError`` naming ``what``
        (and, for a step calling ``port``, its last failed attempt)."""
        with trio.move_on_at(self.deadline) as scope:
            try:
                yield
            except PortApiError as error:
                raise StartupError(f"{what}: {error}") from None
        if scope.cancelled_caught:
            last = port.last_failure if port is not None else None
            raise StartupError(
                f"start-up took longer than {self.timeout:g}s while {what}"
                + (f" (last failure: {last})" if last else " (no answer)")
                + "; see startupTimeoutSeconds / OCEAN__STARTUP_TIMEOUT_SECONDS"
            )


@asynccontextmanager
async def open_app(
    integration: Integration,
    settings: Settings,
    *,
    root: Path | None = None,
    serve_http: bool = False,
    http_fd: int | None = None,
    observer: trio.MemorySendChannel[tuple[JournalEntry, EventOutcome]] | None = None,
) -> AsyncIterator[App]:
    """Build and start the component tree; yield the running ``App``; drain and stop on exit.

    With ``serve_http`` the HTTP server is part of the tree: ``settings.http`` is bound
    before anything else starts (a busy port fails at once) and served once the components
    run; ``app.urls`` holds its address (``http_fd``: serve that listening socket, which
    a supervisor bound, instead). ``on_start`` hooks start last. ``observer`` gets every
    finished event, from before the first one (replays at start-up included).

    Processing (pipelines, hooks, resyncs, listeners) runs only in the process holding the
    state folder's lock (``StateFolderLock``); with ``settings.role`` ``all`` a process that
    finds it taken serves webhooks only and takes over when the holder stops, ``ingress``
    never processes, ``processing`` waits for the lock.

    Leaving the block normally stops intake (webhooks answer 503), lets accepted events
    finish for up to ``max_wait_seconds_before_shutdown``, stops HTTP, then cancels the
    rest (unfinished events stay pending in the journal). Leaving it by an exception or a
    cancellation stops everything at once. Start-up failures raise ``StartupError`` or
    ``ConfigError`` with a one-line message.
    """
    base = (root or integration.root or Path.cwd()).resolve()
    startup = _Startup(settings.startup_timeout_seconds)
    mapping = load_mapping(integration, settings, base)
    blueprints = load_blueprints(settings, base)
    verifiers, delivery_id_headers = _webhook_checks(integration, settings)
    if settings.event_listener.type == "KAFKA" and settings.catalog.type != "port":
        raise ConfigError(
            "eventListener.type KAFKA needs the Port sink (catalog.type: port): the topic and"
            " the Kafka login come from Port's API"
        )
    if settings.event_listener.type == "WEBHOOK" and not resync_authority(settings).checks:
        raise ConfigError(
            "eventListener.type WEBHOOK needs eventListener.token (OCEAN__EVENT_LISTENER__TOKEN)"
            " or the Port sink (Port's signature): POST /resync would be open to anyone"
        )
    shared = settings.live_events.journal_type != "memory"
    if settings.role != "all" and not shared:
        raise ConfigError(
            f"role {settings.role} needs a journal other processes share"
            " (liveEvents.journal.type: sqlite); the memory journal runs in one process"
        )
    parser = BodyParser(max_depth=settings.live_events.max_json_depth)
    with contextlib.ExitStack() as stack:
        folder = settings.resolve(base, settings.state_path)
        lock = StateFolderLock(folder)
        stack.callback(lock.close)
        if not shared:
            # Before binding or opening anything: a second process on the folder stops here.
            lock.require()
        wake = WakeSender(folder)
        stack.callback(wake.close)
        listener = None
        if http_fd is not None:
            listener = HttpListener.adopt(http_fd)
        elif serve_http:
            listener = HttpListener.bind(settings.http.host, settings.http.port)
        if listener is not None:
            stack.callback(listener.close)
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
        async with (
            # Outlives every component that maps; its worker processes start on the first
            # big input only.
            open_mapping_pool(allow_env=settings.allow_environment_variables_jq_access) as pool,
            _open_journal(
                settings,
                base,
                on_append=wake.notify,
                paths=frozenset(integration.webhook_processors),
            ) as journal,
            _open_requests(settings, base) as requests,
            _open_sink(settings, base, blueprints, startup) as (sink, catalog, port),
        ):
            if port is not None:
                with startup.step(f"reading the mapping from Port's API at {port.base_url}", port):
                    mapping = await port_mapping(
                        port, integration, settings, base, mapping, starting=True
                    )
            app = App(
                integration=integration,
                settings=settings,
                root=base,
                mapping=mapping,
                catalog=catalog,
                applier=_applier(sink, settings),
                journal=journal,
                parser=parser,
                port=port,
                mapping_pool=pool,
                resync_target=sink,
                verifiers=verifiers,
                delivery_id_headers=delivery_id_headers,
                requests=requests,
                wake=wake.notify,
            )
            if settings.event_listener.type != "WEBHOOKS_ONLY":
                app.resyncs = ResyncCoordinator(
                    app.resync,
                    requests,
                    coalesce_seconds=settings.resync.coalesce_seconds,
                    max_aborts=settings.resync.max_aborts_in_a_row,
                    on_state=None if port is None else _port_state_reporter(port, settings),
                )
            app.metrics.register(ComponentsCollector(app))
            await _build_pipelines(app)
            app.ingress = webhook_ingress(app)
            if observer is not None:
                for pipeline in app.pipelines.values():
                    pipeline.observe(observer)
            with using(integration):
                integration.attach(app, settings)
                try:
                    async with _running(app, listener, startup, lock, wake):
                        yield app
                finally:
                    integration.detach()


@asynccontextmanager
async def _running(
    app: App,
    listener: HttpListener | None,
    startup: _Startup,
    lock: StateFolderLock,
    wake: WakeSender,
) -> AsyncIterator[None]:
    """The components' tasks, HTTP, processing; see ``open_app`` for how it stops."""
    with one_error_as_raised():
        async with trio.open_nursery() as nursery:
            await nursery.start(app.journal.run)
            await nursery.start(app.applier.run)
            http_stop, http_done = trio.Event(), trio.Event()
            if listener is not None:
                urls = await nursery.start(
                    partial(
                        listener.serve, OceanASGI(app), shutdown_trigger=http_stop, done=http_done
                    )
                )
                app.served_at(urls)
            elif app.settings.base_url:
                app.serving.set()  # served elsewhere (a supervisor's socket, a proxy)
            if app.settings.role != "ingress":
                if lock.try_acquire():
                    await nursery.start(_process, app, lock, startup, wake)
                else:
                    logger.info(
                        "events are processed by pid %s (state folder %s): this process"
                        " journals webhooks and takes over if it stops",
                        lock.holder(),
                        lock.folder,
                    )
                    nursery.start_soon(_take_over, app, lock, wake)
            try:
                yield
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
            with trio.move_on_after(app.settings.max_wait_seconds_before_shutdown):
                await app.drain()
            http_stop.set()
            if listener is not None:
                with trio.move_on_after(HTTP_STOP_SECONDS):
                    await http_done.wait()
            nursery.cancel_scope.cancel()


async def _take_over(app: App, lock: StateFolderLock, wake: WakeSender) -> None:
    # A standby that is itself stopping (every process of the folder is) never takes over.
    async with trio.open_nursery() as nursery:

        async def give_up_when_stopping() -> None:
            await app.stopping.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(give_up_when_stopping)
        await lock.acquire()
        nursery.cancel_scope.cancel()
    if app.stopping.is_set() or not lock.held:
        return
    logger.info("this process (pid %d) processes events now", os.getpid())
    await _process(app, lock, _Startup(app.settings.startup_timeout_seconds), wake)


async def _process(
    app: App,
    lock: StateFolderLock,
    startup: _Startup,
    wake: WakeSender,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The processing side, in the process holding ``lock``: pipelines (every pending event
    first), hooks, resyncs and listeners, and wake-ups from the folder's other processes."""
    pipelines = list(app.pipelines.values())

    def appended_elsewhere(high: int) -> None:
        for pipeline in pipelines:
            pipeline.appended_elsewhere(high)

    async def look(what: frozenset[bytes]) -> None:
        # Others' appends and replays, and resync requests they recorded: what they poked about.
        if EVENTS in what:
            await app.journal.look_elsewhere()
        if REQUESTS in what and app.resyncs is not None:
            await app.resyncs.pick_up_recorded()

    app.journal.watch(appended_elsewhere)
    wake.muted = True  # its own appends and replays reach its pipelines directly
    await _report_backlog(app)
    async with trio.open_nursery() as nursery:
        if app.settings.live_events.journal_type == "sqlite":
            await nursery.start(receive_wakes, lock.folder, look)
        for pipeline in pipelines:
            await nursery.start(pipeline.run)
        for hook in app.integration.on_start_hooks:
            await _start_hook(nursery, hook, startup)
        if app.resyncs is not None:
            await nursery.start(app.resyncs.run)
            await _start_listeners(nursery, app, app.resyncs, startup)
        if app.settings.live_events.relay is not None and app.ingress is not None:
            # Live events from a relay: journaled by this process's ingress (docs/relay.md).
            relay = RelaySource(
                app.settings.live_events.relay,
                app.ingress,
                max_body_bytes=app.settings.live_events.max_body_bytes,
            )
            await nursery.start(relay.run)
            app.relay_statistics = relay.statistics
        app.processing = True
        task_status.started()


def _applier(sink: LocalCatalog | PortSink, settings: Settings) -> Applier:
    """The local catalog writes at once; Port's writes wait a little to fill bulk calls."""
    if isinstance(sink, PortSink):
        return Applier(sink, fill=BULK_MAX_ENTITIES, linger=settings.port.bulk_wait_seconds)
    return Applier(sink)


async def _build_pipelines(app: App) -> None:
    """One pipeline per webhook path."""
    settings = app.settings
    window = Window(
        max_events=settings.live_events.max_in_memory_events,
        max_bytes=settings.live_events.max_in_memory_bytes,
    )
    for path, processors in app.integration.webhook_processors.items():
        handler = EventHandler(
            processors,
            mapping=app.current_mapping,
            apply=app.applier.apply,
            max_event_processing_seconds=settings.max_event_processing_seconds,
            parser=app.parser,
            pool=app.mapping_pool,
        )
        app.pipelines[WEBHOOK_PREFIX + path] = LiveEventsPipeline(
            path,
            handler,
            app.journal,
            workers=settings.event_workers_count,
            parse=app.parser.parse_object_async,
            window=window,
            monitor=app.monitors,
        )


async def _report_backlog(app: App) -> None:
    """Log what the pipelines are about to page in: events no process has finished yet."""
    counts = await app.journal.pending_counts()
    paths = {p.path for p in app.pipelines.values()}
    for path, count in counts.items():
        if path in paths:
            logger.info("%d events on %s are unfinished: processing them", count, path)
        else:
            logger.warning(
                "%d journaled events are for %s, which has no processors now", count, path
            )


async def _start_hook(nursery: trio.Nursery, hook: OnStart, startup: _Startup) -> None:
    name = getattr(hook, "__name__", repr(hook))
    if "task_status" not in inspect.signature(hook).parameters:
        nursery.start_soon(_background_hook, hook, name)
        return
    with startup.step(f"waiting for on_start hook {name}"):
        try:
            await nursery.start(_guarded_hook, hook, name)
        except Exception as error:
            # A hook's own nursery may wrap its one error in a group: report that error.
            leaf = single_leaf(error) if isinstance(error, BaseExceptionGroup) else error
            if isinstance(leaf, StartupError):
                raise leaf from None
            raise StartupError(f"on_start hook {name} failed: {leaf or error!r}") from error


async def _background_hook(hook: OnStart, name: str) -> None:
    # Ocean runs on_start hooks in the background and only logs their errors.
    try:
        await hook()
    except Exception:
        logger.exception("on_start hook %s failed", name)


async def _guarded_hook(
    hook: OnStart, name: str, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
) -> None:
    # Before started(): its error fails start-up (raised from nursery.start). After: it is
    # logged and the integration goes on, as for a background hook.
    started = False

    def report(value: Any = None) -> None:
        nonlocal started
        started = True
        task_status.started(value)

    status = _Status(report)
    try:
        await hook(task_status=status)
    except Exception:
        if not started:
            raise
        logger.exception("on_start hook %s failed", name)


class _Status:
    """A ``TaskStatus`` recording whether ``started()`` was called."""

    def __init__(self, report: Any) -> None:
        self.started = report


async def _start_listeners(
    nursery: trio.Nursery, app: App, coordinator: ResyncCoordinator, startup: _Startup
) -> None:
    """The event listener of ``eventListener.type``, and the scheduled resync if set."""
    listener = app.settings.event_listener
    if listener.type == "ONCE":
        await nursery.start(run_once, coordinator, app.finish)
    elif listener.type == "KAFKA":
        assert app.port is not None  # open_app refuses KAFKA without the Port sink
        kafka = KafkaListener(
            _kafka_settings(listener),
            integration_identifier=str(app.settings.integration.identifier),
            integration_type=str(app.settings.integration.type),
            port=app.port,
            requests=coordinator,
        )
        with startup.step("joining Port's Kafka consumer group", app.port):
            await nursery.start(kafka.run)
    elif listener.type == "POLLING" and app.port is not None:
        identifier = str(app.settings.integration.identifier)
        await nursery.start(
            partial(
                run_polling_port,
                coordinator,
                partial(app.port.get_resync_request, identifier),
                interval=listener.interval,
                resync_on_start=listener.resync_on_start,
            )
        )
    elif listener.type == "POLLING":
        await nursery.start(
            partial(
                run_polling_local,
                coordinator,
                mapping_file(app.settings, app.root),
                interval=listener.interval,
                resync_on_start=listener.resync_on_start,
            )
        )
    minutes = app.settings.scheduled_resync_interval
    if minutes:
        await nursery.start(run_scheduled, coordinator, minutes)


def _kafka_settings(listener: EventListenerSettings) -> KafkaListenerSettings:
    """The KAFKA listener's settings out of ``eventListener``'s (Ocean's defaults where unset)."""
    kafka = KafkaListenerSettings(
        security_protocol=listener.security_protocol,
        authentication_mechanism=listener.authentication_mechanism,
        kafka_security_enabled=listener.kafka_security_enabled,
        consumer_poll_timeout=listener.consumer_poll_timeout,
        session_timeout_ms=listener.session_timeout_ms,
    )
    return attrs.evolve(kafka, brokers=listener.brokers) if listener.brokers else kafka


def _port_state_reporter(
    port: PortClient, settings: Settings
) -> Callable[[ResyncState], Awaitable[None]]:
    """Tells Port each resync's state (running, then how it ended), as Ocean does."""
    identifier = str(settings.integration.identifier)
    origin = time.time()  # Ocean counts the schedule's nextResync from the process start

    async def report(state: ResyncState) -> None:
        await report_resync_state(
            port,
            identifier,
            state,
            interval_minutes=settings.scheduled_resync_interval,
            schedule_origin=origin,
        )

    return report


@asynccontextmanager
async def _open_requests(settings: Settings, root: Path) -> AsyncIterator[RequestStore]:
    """Where resync requests wait to be served: beside the journal, or in memory with it."""
    if settings.live_events.journal_type == "memory":
        yield MemoryRequestStore()
        return
    async with SqliteRequestStore.open(settings.resync_requests_path(root)) as store:
        yield store


def _webhook_checks(
    integration: Integration, settings: Settings
) -> tuple[dict[str, SignatureVerifier], dict[str, tuple[str, ...]]]:
    """Verifiers and delivery-id headers per webhook path: the integration's, then settings'."""
    verifiers: dict[str, SignatureVerifier] = {}
    for path, verifier in integration.webhook_verifiers.items():
        if callable(getattr(verifier, "verify", None)):
            verifiers[path] = verifier  # type: ignore[assignment]
        else:
            try:
                verifiers[path] = verifier(settings.integration.config)  # type: ignore[operator]
            except (KeyError, ValueError, TypeError) as error:
                raise ConfigError(
                    f"the signature verifier of {path} could not be built from"
                    f" integration.config: {error!r}"
                ) from None
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
async def _open_journal(
    settings: Settings, root: Path, *, on_append: Callable[[], None], paths: frozenset[str]
) -> AsyncIterator[Journal]:
    options = settings.live_events.journal
    max_pending = settings.live_events.max_pending_events
    if settings.live_events.journal_type == "redis":
        async with RedisJournal.open(
            redis_settings(settings, root),
            instance_id=redis_instance_id(settings, root),
            max_pending=max_pending,
            dedup_window_seconds=options.dedup_window_seconds,
            max_in_memory=settings.live_events.max_in_memory_events,
            paths=paths,
        ) as journal:
            yield journal
        return
    if options.type == "memory":
        yield MemoryJournal(
            max_pending=max_pending,
            dedup_window_seconds=options.dedup_window_seconds,
            retention_seconds=options.retention_seconds,
        )
        return
    async with SqliteJournal.open(
        settings.journal_path(root),
        max_pending=max_pending,
        dedup_window_seconds=options.dedup_window_seconds,
        retention_seconds=options.retention_seconds,
        max_finished=options.max_finished_events,
        on_append=on_append,
    ) as journal:
        yield journal


def redis_settings(settings: Settings, root: Path) -> RedisJournalSettings:
    """``liveEvents.redis`` with its prefix defaulted to the integration's identifier."""
    redis = settings.live_events.redis
    if redis.prefix is None:
        name = settings.integration.identifier or root.name
        redis = attrs.evolve(redis, prefix=f"ocean-trio:{name}")
    return redis


def redis_instance_id(settings: Settings, root: Path) -> str:
    """This instance's consumer name: set, or ``<host>:<state folder>`` (stable, unique)."""
    given = settings.live_events.redis.instance_id
    folder = settings.resolve(root, settings.state_path).resolve()
    return given or f"{socket.gethostname()}:{folder}"


@asynccontextmanager
async def _open_sink(
    settings: Settings, root: Path, blueprints: list[dict[str, Any]], startup: _Startup
) -> AsyncIterator[tuple[LocalCatalog | PortSink, LocalCatalog | None, PortClient | None]]:
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
    if not port.requests_per_second > 0:
        raise ConfigError(
            "port.requestsPerSecond (OCEAN__PORT__REQUESTS_PER_SECOND) must be a positive"
            f" number, not {port.requests_per_second!r}"
        )
    if not 0 <= port.bulk_wait_seconds <= MAX_BULK_WAIT_SECONDS:
        raise ConfigError(
            "port.bulkWaitSeconds (OCEAN__PORT__BULK_WAIT_SECONDS) must be between 0 and"
            f" {MAX_BULK_WAIT_SECONDS:g}, not {port.bulk_wait_seconds!r}"
        )
    user_agent = (
        f"port-ocean/{settings.integration.type or 'custom'}/{__version__}/"
        f"{settings.integration.identifier}/exporter"
    )
    async with PortClient.open(
        base_url=port.base_url,
        client_id=str(port.client_id),
        client_secret=str(port.client_secret),
        user_agent=user_agent,
        requests_per_second=port.requests_per_second,
    ) as client:
        with startup.step(f"creating blueprints in Port's API at {client.base_url}", client):
            for blueprint in blueprints:
                if await client.get_blueprint(str(blueprint["identifier"])) is None:
                    logger.info("creating blueprint %s in Port", blueprint["identifier"])
                    await client.create_blueprint(blueprint)
        yield PortSink(client), None, client
