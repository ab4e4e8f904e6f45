"""``connect_websocket``: a trio-websocket client connection whose socket is always closed.

trio-websocket leaves the TCP socket of a connection the peer dropped (no close handshake)
open until it is garbage-collected; here the stream is opened and closed by us, and handed
to trio-websocket's ``wrap_client_stream``.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from ._exceptions import single_leaf

CLOSE_SECONDS = 1.0


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    connect_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[WebSocketConnection]:
    """Open ``url`` (``ws://`` or ``wss://``) within ``connect_timeout`` seconds (raises
    ``trio.TooSlowError``, ``OSError`` or trio-websocket's ``HandshakeError``)."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket address: {url!r}")
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if port in (80, 443) else f"{parts.hostname}:{port}"
    stream: trio.abc.Stream
    with trio.fail_after(connect_timeout):
        if secure:
            stream = await trio.open_ssl_over_tcp_stream(
                parts.hostname,
                port,
                ssl_context=ssl_context or ssl.create_default_context(),
                https_compatible=True,
            )
        else:
            stream = await trio.open_tcp_stream(parts.hostname, port)
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(connect_timeout):
                    socket = await wrap_client_stream(
                        nursery, stream, host_header, resource, extra_headers=list(headers)
                    )
                try:
                    yield socket
                finally:
                    with trio.move_on_after(CLOSE_SECONDS, shield=True):
                        await socket.aclose()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The body's (or the handshake's) one error comes out as it was raised.
            leaf = single_leaf(group)
            if leaf is None:
                raise
            raise leaf from None
