"""``hold_state_folder``: one process at a time runs an integration on a state folder.

Two processes on one folder would each run the whole component tree on the same journal:
both would replay and process the same events, and run ``on_start`` hooks and resyncs twice
(``hypercorn -w 2``, or ``sail`` started twice). The first holds an exclusive ``flock`` on
``<statePath>/ocean-trio.lock`` for as long as it runs (the kernel releases it when the
process dies, even by ``kill -9``); a second stops at start-up naming the first's pid. The
``events`` commands read the journal without it: they never process events.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._exceptions import StartupError

LOCK_FILE = "ocean-trio.lock"


@contextmanager
def hold_state_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock (creating the folder) for the block; ``StartupError`` if taken."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise StartupError(
                f"another ocean-trio process (pid {holder}) is running on the state folder"
                f" {folder}: run one process per state folder (hypercorn -w 1, or a statePath"
                " of its own for each)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
