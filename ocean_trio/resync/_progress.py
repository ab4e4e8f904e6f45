"""``ConsoleProgress``: a log line per kind as it completes, and a live count in a terminal."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from ._state import KindProgress, ResyncState

logger = logging.getLogger("ocean_trio.resync")

LIVE_EVERY_SECONDS = 0.2  # how often the terminal's live line is redrawn at most


class ConsoleProgress:
    """Logs each kind's figures when it is done; redraws one live line on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._drawn_at = 0.0
        self._drawn = False

    def batch(self, state: ResyncState, kind: KindProgress) -> None:
        if not self._live or time.monotonic() - self._drawn_at < LIVE_EVERY_SECONDS:
            return
        self._drawn_at = time.monotonic()
        self._stream.write(
            f"\r\x1b[Kresync {state.id}: {kind.kind}: {kind.items:,} items,"
            f" {kind.upserted:,} written, {kind.skipped:,} unchanged"
        )
        self._stream.flush()
        self._drawn = True

    def kind_done(self, state: ResyncState, kind: KindProgress) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
        seconds = (kind.finished_at or time.time()) - (kind.started_at or time.time())
        logger.info(
            "resync %d: %s (resources[%d]) done in %.1fs: %d items, %d written, %d unchanged"
            " or newer, %d refused, %d errors",
            state.id,
            kind.kind,
            kind.index,
            seconds,
            kind.items,
            kind.upserted,
            kind.skipped,
            kind.failed,
            len(kind.errors),
        )
