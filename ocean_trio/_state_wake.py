"""Wake-ups between the processes of one state folder: a datagram on an abstract Unix socket.

An ingress process that appended events (or recorded a resync request) pokes the processing
process, which then looks at the shared files at once instead of polling them. A poke is a
hint: a lost one (no processing process yet, a full socket buffer) only delays the work to
the receiver's next look, every ``fallback_seconds``. Abstract sockets are Linux's; elsewhere
the receiver only looks every ``fallback_seconds``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

logger = logging.getLogger("ocean_trio")

FALLBACK_SECONDS = 2.0
"""How often the processing side looks without a poke (a lost poke costs at most this)."""

EVENTS = b"e"  # a poke's one byte: events were appended (or replayed)
REQUESTS = b"r"  # a resync request was recorded
EVERYTHING = frozenset({EVENTS, REQUESTS})


def wake_address(folder: Path) -> bytes:
    """The abstract socket name of ``folder``: no file to clean up, gone with its process."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:40]
    return b"\0ocean-trio-wake-" + digest.encode("ascii")


_SUPPORTED = sys.platform == "linux"


class WakeSender:
    """Pokes the state folder's processing process, without ever waiting or failing."""

    def __init__(self, folder: Path) -> None:
        self._address = wake_address(folder)
        self.muted = False  # set in the processing process: it would only poke itself
        self._socket: socket.socket | None = None
        if _SUPPORTED:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)

    def notify(self, what: bytes = EVENTS) -> None:
        """Poke: ``EVENTS`` were appended, or ``REQUESTS`` recorded."""
        if self._socket is None or self.muted:
            return
        # Nobody listening, or pokes already waiting: either way nothing to add.
        with contextlib.suppress(OSError):
            self._socket.sendto(what, self._address)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


async def receive_wakes(
    folder: Path,
    on_wake: Callable[[frozenset[bytes]], Awaitable[None]],
    *,
    fallback_seconds: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_wake`` with what each burst of pokes was about (``EVENTS``, ``REQUESTS``),
    and with ``EVERYTHING`` every ``fallback_seconds`` anyway
    (default ``FALLBACK_SECONDS``)."""
    every = FALLBACK_SECONDS if fallback_seconds is None else fallback_seconds
    sock: socket.socket | None = None
    if _SUPPORTED:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
    try:
        if sock is not None:
            try:
                sock.bind(wake_address(folder))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                # Only the process holding the folder's lock binds: this should not happen.
                logger.warning("another process receives this state folder's wake-ups")
                sock.close()
                sock = None
        task_status.started()
        while True:
            what = EVERYTHING  # a look without a poke looks at everything
            with trio.move_on_after(every):
                if sock is None:
                    await trio.sleep_forever()
                else:
                    await trio.lowlevel.wait_readable(sock)
                    # One look for every poke that arrived meanwhile, at what they name.
                    what = _drain(sock)
            await on_wake(what)
    finally:
        if sock is not None:
            sock.close()


def _drain(sock: socket.socket) -> frozenset[bytes]:
    kinds: set[bytes] = set()
    while True:
        try:
            kinds.add(sock.recv(16))
        except BlockingIOError:
            return frozenset(kinds & EVERYTHING)
