"""``ocean-trio events tail``: the live feed (``/live/feed``) in a terminal.

A trio-websocket client: one line per event (or one JSON object per line with ``--json``),
filtered by the server (``path``, ``status``). A connection that drops after it was up is
reopened with backoff (the integration restarting); one that cannot open at first is an
error naming the address.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import random
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any, TextIO

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
)

from ._exceptions import OceanError
from ._websocket import CONNECT_SECONDS, connect

MAX_BACKOFF_SECONDS = 5.0
FEED_PATH = "/live/feed"


class TailError(OceanError):
    """The feed could not be opened (a one-line message for the command line)."""


def feed_url(base_url: str, paths: Sequence[str] = (), statuses: Sequence[str] = ()) -> str:
    """The WebSocket address of ``base_url``'s feed, with its filters."""
    parts = urllib.parse.urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urllib.parse.urlencode([("path", p) for p in paths] + [("status", s) for s in statuses])
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + FEED_PATH, query, ""))


async def tail(url: str, *, as_json: bool, out: TextIO, err: TextIO) -> None:
    """Print the feed at ``url`` until cancelled (Ctrl-C); raises ``TailError`` if it
    cannot be opened at first."""
    connected_once = False
    backoff = 0.5
    while True:
        try:
            async with connect(url) as socket:
                if connected_once:
                    print(f"(reconnected to {url})", file=err, flush=True)
                connected_once = True
                backoff = 0.5
                await _print_messages(socket, as_json=as_json, out=out, err=err)
        except HandshakeError as error:
            if not connected_once:
                raise TailError(f"cannot open the live feed at {url}: {_describe(error)}") from None
        except ConnectionClosed:
            print(f"(connection to {url} lost; reconnecting)", file=err, flush=True)
        await trio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _print_messages(
    socket: WebSocketConnection, *, as_json: bool, out: TextIO, err: TextIO
) -> None:
    while True:
        message = json.loads(await socket.get_message())
        kind = message.get("type")
        if kind == "events":
            for event in message["events"]:
                line = json.dumps(event, separators=(",", ":")) if as_json else format_event(event)
                print(line, file=out)
            out.flush()
        elif kind == "dropped":
            if as_json:
                print(json.dumps(message, separators=(",", ":")), file=out, flush=True)
            else:
                print(
                    f"({message['events']} events not shown: this terminal fell behind)",
                    file=err,
                    flush=True,
                )
        elif kind == "hello":  # on stderr in both modes: stdout keeps only events
            role = "processing" if message.get("processing") else "not processing"
            print(
                f"(connected: pid {message.get('pid')}, role {message.get('role')}, {role};"
                f" paths {', '.join(message.get('paths', []))})",
                file=err,
                flush=True,
            )


def format_event(event: dict[str, Any]) -> str:
    """One event as a line: time, seq, path, status, processors, duration, writes, trace."""
    at = datetime.datetime.fromtimestamp(event["at"]).strftime("%H:%M:%S.%f")[:-3]
    duration = event.get("duration_ms")
    took = f"{duration:.1f}ms" if duration is not None else "-"
    processors = ",".join(event.get("processors") or []) or "-"
    line = (
        f"{at}  {event['seq']:>7}  {event['path']:<16} {event['status']:<8} {processors:<24}"
        f" {took:>9}  +{event.get('upserts', 0)}/-{event.get('deletes', 0)}"
        f"  trace {event['trace_id']}"
    )
    if event.get("delivery_id"):
        line += f"  delivery {event['delivery_id']}"
    if event.get("error"):
        line += f"  error: {event['error']}"
    return line


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRejected):
        body = (error.body or b"").decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(body).get("error", body)
        return f"refused with HTTP {error.status_code}: {body}".rstrip(": ")
    if isinstance(error, ConnectionTimeout):
        return f"no answer within {CONNECT_SECONDS:g}s"
    if error.__cause__ is not None:
        return str(error.__cause__) or type(error.__cause__).__name__
    return str(error) or type(error).__name__


def run_tail(
    base_url: str,
    *,
    paths: Sequence[str],
    statuses: Sequence[str],
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``events tail`` command: 0 after Ctrl-C; ``TailError`` if the feed won't open."""
    url = feed_url(base_url, paths, statuses)
    try:
        trio.run(lambda: tail(url, as_json=as_json, out=out, err=err))
    except KeyboardInterrupt:
        return 0
    return 0
