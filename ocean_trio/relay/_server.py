"""``open_relay``: the relay's composition root, and ``RelayASGI``, its one HTTP port.

The relay journals webhooks exactly as an integration's own ingress does: the same
``WebhookIngress`` (size limit, signature check, JSON parsing, delivery-id dedup, ``503``
when ``maxPendingEvents`` are pending, ``202`` only once committed) over pipelines that are
never run, into a ``SqliteJournal`` in its state folder. ``RelayHub`` streams the pending
events to the integration connected at ``/relay/connect``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from .._app import WEBHOOK_PREFIX
from .._exceptions import ConfigError, StartupError, one_error_as_raised
from .._log import LogLimiter
from .._serve import HttpListener
from .._state_lock import StateFolderLock
from ..live_events._event import WebhookEvent
from ..live_events._ingress import Receive, Scope, Send, WebhookIngress, send_json
from ..live_events._json import BodyParser
from ..live_events._outcome import Prepared
from ..live_events._pipeline import LiveEventsPipeline
from ..live_events._signatures import SignatureVerifier, verifier_from_config
from ..live_events._sqlite_journal import SqliteJournal
from ._hub import RelayHub
from ._protocol import CONNECT_PATH
from ._settings import CONFIG_FILE, ENV_PREFIX, RelaySettings

logger = logging.getLogger("ocean_trio.relay")

RELAY_ID_FILE = "relay-id"
JOURNAL_FILE = "journal.sqlite3"
HTTP_STOP_SECONDS = 5.0  # hypercorn's graceful timeout (3 s) and a margin
FLUSH_SECONDS = 5.0  # the last acknowledgements reach the journal's file within it


class _JournalOnly:
    """The handler of the relay's pipelines, which journal and are never run."""

    def group_of(self, event: WebhookEvent) -> str | None:
        return None

    async def prepare(self, event: WebhookEvent) -> Prepared:
        raise RuntimeError("the relay never processes events")


@attrs.define(eq=False)
class Relay:
    """A running relay: its journal, ingress and hub, and where it serves."""

    settings: RelaySettings
    folder: Path
    relay_id: str
    journal: SqliteJournal
    hub: RelayHub
    pipelines: dict[str, LiveEventsPipeline]  # by full path, /integration/webhook
    ingress: WebhookIngress | None = None  # set by open_relay
    stopping: trio.Event = attrs.field(factory=trio.Event)
    urls: list[str] = attrs.field(factory=list)

    @property
    def accepting(self) -> bool:
        """False once shutdown began: webhooks are answered 503."""
        return not self.stopping.is_set()

    def health(self) -> dict[str, Any]:
        """What ``/health/ready`` shows."""
        journal = self.journal.statistics()
        return {
            "status": "ok",
            "relay_id": self.relay_id,
            "pid": os.getpid(),
            "paths": sorted(self.pipelines),
            "pending": journal.pending,
            "journal": attrs.asdict(journal),
            "integration": attrs.asdict(self.hub.statistics()),
        }


def _verifiers(
    settings: RelaySettings,
) -> tuple[dict[str, SignatureVerifier], dict[str, tuple[str, ...]]]:
    verifiers: dict[str, SignatureVerifier] = {}
    headers: dict[str, tuple[str, ...]] = {}
    for path, webhook in settings.paths().items():
        if webhook.verifier is not None:
            try:
                verifiers[path] = verifier_from_config(webhook.verifier)
            except ConfigError as error:
                raise ConfigError(f"{CONFIG_FILE}: webhooks {path}: {error}") from None
        if webhook.delivery_id_header:
            headers[path] = (webhook.delivery_id_header.lower(),)
    return verifiers, headers


def _relay_id(state: Path, journal: Path) -> str:
    """The relay's identity: kept in the state folder, new with a new journal (its seqs
    start again at 1, so the integration must not take them for the old ones)."""
    file = state / RELAY_ID_FILE
    if journal.exists():
        with contextlib.suppress(FileNotFoundError):
            existing = file.read_text(encoding="ascii").strip()
            if existing:
                return existing
    relay_id = uuid.uuid4().hex
    temporary = file.with_name(RELAY_ID_FILE + ".tmp")
    with open(temporary, "w", encoding="ascii") as out:
        out.write(relay_id + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, file)
    return relay_id


def _take_state_folder(settings: RelaySettings, folder: Path) -> tuple[StateFolderLock, str, Path]:
    """Lock the state folder (one relay per folder); the relay's id and journal file."""
    state = settings.state_folder(folder.resolve())
    lock = StateFolderLock(state)
    if not lock.try_acquire():
        holder = lock.holder()
        lock.close()
        raise StartupError(f"another relay (pid {holder}) is running on the state folder {state}")
    journal = state / JOURNAL_FILE
    try:
        return lock, _relay_id(state, journal), journal
    except OSError as error:
        lock.close()
        raise StartupError(f"cannot keep the relay's id in {state}: {error}") from None


def _bind(settings: RelaySettings) -> HttpListener:
    return HttpListener.bind(
        settings.http.host,
        settings.http.port,
        hint=f"--port, http.port in {CONFIG_FILE} or {ENV_PREFIX}HTTP__PORT",
    )


@asynccontextmanager
async def open_relay(settings: RelaySettings, folder: Path) -> AsyncIterator[Relay]:
    """Build and start the relay serving on ``settings.http``; yield it; drain and stop on exit.

    Leaving the block normally stops intake (webhooks answer 503), gives the events in
    flight ``maxWaitSecondsBeforeShutdown`` to be acknowledged, closes the integration's
    connection (1001) and stops HTTP. Start-up failures raise ``ConfigError`` or
    ``StartupError`` with a one-line message.
    """
    settings.check()
    paths = settings.paths()
    verifiers, delivery_id_headers = _verifiers(settings)
    with contextlib.ExitStack() as stack:
        lock, relay_id, journal_path = _take_state_folder(settings, folder)
        stack.callback(lock.close)
        listener = _bind(settings)
        stack.callback(listener.close)
        hub: RelayHub | None = None

        def appended() -> None:
            if hub is not None:
                hub.appended()

        async with SqliteJournal.open(
            journal_path,
            max_pending=settings.max_pending_events,
            dedup_window_seconds=settings.dedup_window_seconds,
            retention_seconds=settings.retention_seconds,
            on_append=appended,
        ) as journal:
            hub = RelayHub(
                journal,
                list(paths),
                relay_id=relay_id,
                max_in_flight=settings.max_in_flight,
                max_in_flight_bytes=settings.max_in_flight_bytes,
                heartbeat_seconds=settings.heartbeat_seconds,
            )
            parser = BodyParser(max_depth=settings.max_json_depth)
            pipelines = {
                WEBHOOK_PREFIX + path: LiveEventsPipeline(
                    path, _JournalOnly(), journal, workers=1, parse=parser.parse_object_async
                )
                for path in paths
            }
            relay = Relay(settings, folder, relay_id, journal, hub, pipelines)
            relay.ingress = WebhookIngress(
                pipelines,
                max_body_bytes=settings.max_body_bytes,
                accepting=lambda: relay.accepting,
                verifiers=verifiers,
                delivery_id_headers=delivery_id_headers,
                parser=parser,
            )
            async with _running(relay, listener):
                yield relay


@asynccontextmanager
async def _running(relay: Relay, listener: HttpListener) -> AsyncIterator[None]:
    with one_error_as_raised():
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.journal.run)
            http_stop, http_done = trio.Event(), trio.Event()
            relay.urls[:] = await nursery.start(
                partial(
                    listener.serve, RelayASGI(relay), shutdown_trigger=http_stop, done=http_done
                )
            )
            try:
                yield
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
            relay.stopping.set()
            with trio.move_on_after(relay.settings.max_wait_seconds_before_shutdown):
                await relay.hub.drain()
            relay.hub.close()
            with trio.move_on_after(FLUSH_SECONDS):
                await relay.journal.flush()
            http_stop.set()
            with trio.move_on_after(HTTP_STOP_SECONDS):
                await http_done.wait()
            nursery.cancel_scope.cancel()


class RelayASGI:
    """The relay over ASGI: webhook paths to the ingress, ``/relay/connect`` to the hub,
    ``/health/live`` and ``/health/ready``; anything else is a JSON 404."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        assert relay.ingress is not None
        self._ingress = relay.ingress
        self._expected = f"Bearer {relay.settings.token}".encode()
        self._refusals = LogLimiter(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        pipeline = self._ingress.route(path)
        if pipeline is not None:
            await self._ingress(pipeline, scope, receive, send)
        elif path in ("/health/live", "/health/ready"):
            if scope["method"] not in ("GET", "HEAD"):
                allow = ((b"allow", b"GET"),)
                await send_json(send, 405, {"error": f"use GET on {path}"}, allow)
            elif path == "/health/live":
                await send_json(send, 200, {"status": "ok"})
            elif not self.relay.accepting:
                await send_json(send, 503, {"status": "stopping"})
            else:
                await send_json(send, 200, self.relay.health())
        else:
            await send_json(send, 404, {"error": f"nothing at {path}"})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        peer = _peer_name(scope)
        if scope["path"] != CONNECT_PATH:
            await _deny(scope, send, 404, f"nothing at {scope['path']}; connect to {CONNECT_PATH}")
            return
        if not hmac.compare_digest(_authorization(scope), self._expected):
            self._refusals.warning(
                "token", "refused a connection from %s: missing or wrong bearer token", peer
            )
            await _deny(scope, send, 401, "missing or wrong bearer token")
            return
        if self.relay.hub.stopping:
            await _deny(scope, send, 503, "the relay is shutting down")
            return
        await send({"type": "websocket.accept"})
        await self.relay.hub.serve(_AsgiPeer(receive, send), peer)


class _AsgiPeer:
    """A websocket's ASGI ``receive``/``send`` as the hub's ``Peer``."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._lock = trio.Lock()  # the streamer and the heartbeat both send

    async def send(self, text: str) -> None:
        async with self._lock:
            await self._send({"type": "websocket.send", "text": text})

    async def receive(self) -> str | bytes | None:
        message = await self._receive()
        if message["type"] != "websocket.receive":
            return None  # websocket.disconnect
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def close(self, code: int, reason: str) -> None:
        async with self._lock:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _authorization(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if bytes(name).lower() == b"authorization":
            return bytes(value)
    return b""


def _peer_name(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "an unknown address"


async def _deny(scope: Scope, send: Send, status: int, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (hypercorn's denial response), or a
    close (403) where the server cannot send one."""
    extensions: Mapping[str, Any] = scope.get("extensions") or {}
    if "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
