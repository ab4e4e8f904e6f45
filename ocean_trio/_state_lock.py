"""``StateFolderLock``: which process of a state folder processes its events.

Processing (pipelines, on_start hooks, resyncs, listeners) runs in exactly one process of a
state folder at a time: the one holding an exclusive ``flock`` on
``<statePath>/ocean-trio.lock`` (the kernel releases it when the process dies, even by
``kill -9``). With the SQLite journal the other processes serve webhooks only (they journal
and acknowledge) and one of them takes over when the holder dies: ``hypercorn -w N``, or
``sail --ingress-processes N``. With the memory journal nothing can be shared, so a second
process stops at start-up naming the first's pid. The ``events`` commands read the journal
without it: they never process events.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import trio

from ._exceptions import StartupError

LOCK_FILE = "ocean-trio.lock"
TAKEOVER_POLL_SECONDS = 0.5
"""How often a standby process tries the lock: a dead holder is replaced within this."""


class StateFolderLock:
    """The folder's processing lock; ``close`` releases it (so does the process's death)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        if not self.held:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self.held = True
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the lock (its holder stops or dies)."""
        # Polled: a blocking flock would sit in a thread that cancellation cannot stop.
        while not self.try_acquire():  # noqa: ASYNC110
            await trio.sleep(TAKEOVER_POLL_SECONDS)

    def holder(self) -> str:
        """The pid of the process holding the lock, as it wrote it."""
        return os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "unknown"

    def require(self) -> None:
        """Take the lock now or raise ``StartupError`` naming the process that holds it."""
        if not self.try_acquire():
            raise StartupError(
                f"another ocean-trio process (pid {self.holder()}) is running on the state"
                f" folder {self.folder} with the memory journal, which processes cannot share:"
                " use the sqlite journal to run several processes, or a statePath of its own"
                " for each"
            )

    def close(self) -> None:
        if self.held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.held = False
        os.close(self._fd)
