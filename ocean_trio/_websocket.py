"""``connect``: a trio-websocket client connection whose socket is always closed.

``trio_websocket.open_websocket_url`` leaves the TCP socket open when the server closes the
WebSocket first (the client waits for the server's TCP close, as RFC 6455 asks, and then never
closes its end: the socket lingers until garbage collection). Servers close connections on
purpose (the relay: a newer connection, shutdown, a silent peer; the app: shutdown), so here
the stream is ours and closed on exit whatever happened. The relay's event source and
``events tail`` connect with it.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
import trio_websocket

from ._exceptions import ConfigError, one_error_as_raised

CONNECT_SECONDS = 10.0  # the TCP (and TLS) connection, then the handshake, each within it
CLOSE_SECONDS = 5.0


def split_url(url: str) -> tuple[str, int, str, bool]:
    """``(host, port, resource, tls)`` of a ``ws://`` or ``wss://`` URL; ``ConfigError``
    naming what is wrong."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError(f"{url!r} must start with ws:// or wss://")
    if not parts.hostname:
        raise ConfigError(f"{url!r} has no host")
    tls = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port or (443 if tls else 80), resource, tls


@asynccontextmanager
async def connect(
    url: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    max_message_size: int = 1024 * 1024,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Open a WebSocket to ``url``, yield it, close it (and its socket) on exit.

    Raises trio-websocket's errors: ``ConnectionTimeout``, ``HandshakeError`` (its
    ``__cause__`` says why), ``ConnectionRejected`` (the server's status), and, in the
    body, ``ConnectionClosed``.
    """
    host, port, resource, tls = split_url(url)
    try:
        with trio.fail_after(CONNECT_SECONDS):
            stream: trio.abc.Stream
            if tls:
                context = ssl.create_default_context()
                stream = await trio.open_ssl_over_tcp_stream(
                    host, port, ssl_context=context, https_compatible=True
                )
            else:
                stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise trio_websocket.ConnectionTimeout from None
    except OSError as error:
        raise trio_websocket.HandshakeError from error
    host_header = host if port in (80, 443) else f"{host}:{port}"
    try:
        with one_error_as_raised():
            async with trio.open_nursery() as nursery:
                try:
                    with trio.fail_after(CONNECT_SECONDS):
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            host_header,
                            resource,
                            extra_headers=list(headers),
                            max_message_size=max_message_size,
                        )
                except trio.TooSlowError:
                    raise trio_websocket.ConnectionTimeout from None
                try:
                    yield ws
                finally:
                    try:
                        # Not shielded: cancelled, the reader task is too, so no close handshake
                        # could complete; the server sees the connection drop instead.
                        with trio.move_on_after(CLOSE_SECONDS):
                            await ws.aclose()
                    finally:
                        nursery.cancel_scope.cancel()  # the reader would wait for the server's EOF
    finally:
        await trio.aclose_forcefully(stream)
