"""Serving an ASGI app with hypercorn's trio worker, on sockets bound before start-up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from ._exceptions import StartupError

logger = logging.getLogger("ocean_trio")

ASGIApp = Callable[[Mapping[str, Any], Any, Any], Awaitable[None]]


def hypercorn_config(host: str, port: int) -> Config:
    """Hypercorn settings for one bind; access logs off (they would log every webhook)."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3.0
    return config


@attrs.define(eq=False)
class HttpListener:
    """Listening sockets, bound by ``bind`` and served by ``serve`` (or closed unused)."""

    config: Config
    sockets: Sockets

    @classmethod
    def bind(
        cls, host: str, port: int, *, hint: str = "--port, http.port or OCEAN__HTTP__PORT"
    ) -> HttpListener:
        """Bind and listen on ``host:port`` now; a busy port raises ``StartupError`` naming it
        (and ``hint``: where another port is chosen)."""
        config = hypercorn_config(host, port)
        try:
            sockets = config.create_sockets()
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise StartupError(
                f"cannot listen on {host}:{port}: {reason} (choose another port with {hint})"
            ) from None
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
        return cls(config, sockets)

    @classmethod
    def adopt(cls, fd: int) -> HttpListener:
        """Serve the listening socket ``fd`` that a supervisor bound and handed down."""
        config = hypercorn_config("127.0.0.1", 0)
        config.bind = [f"fd://{fd}"]
        try:
            sockets = config.create_sockets()
        except OSError as error:
            raise StartupError(f"cannot serve the socket handed down as fd {fd}: {error}") from None
        return cls(config, sockets)

    def close(self) -> None:
        """Close the sockets (idempotent; serving closes them too)."""
        for sock in self.sockets.insecure_sockets:
            sock.close()

    async def serve(
        self,
        app: ASGIApp,
        *,
        shutdown_trigger: trio.Event,
        done: trio.Event | None = None,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``app`` until ``shutdown_trigger`` is set, then finish in-flight requests;
        ``done`` is set once serving ended, however it ended.

        ``started()`` delivers the bound URLs (port 0 resolved).
        """
        try:
            await worker_serve(
                wrap_app(app, self.config.wsgi_max_body_size, "asgi"),
                self.config,
                sockets=self.sockets,
                shutdown_trigger=shutdown_trigger.wait,
                task_status=task_status,
            )
        finally:
            self.close()
            if done is not None:
                done.set()
