"""``Stop`` and ``watch_signals``: how ``sail`` and ``relay`` stop on SIGINT and SIGTERM.

During start-up a signal stops at once (exit code 128 + signal); once running, the first one
drains (``Stop.drain``), a second one stops at once.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs
import trio

logger = logging.getLogger("ocean_trio")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.define
class Stop:
    """What the signal watcher saw: the first signal, whether start-up had finished."""

    drain: trio.Event = attrs.field(factory=trio.Event)
    signum: int | None = None
    forced: bool = False
    started: bool = False
    exit_code: int | None = None

    def final_code(self) -> int:
        """The process's exit code: 128 + signal when stopped at once, else ``exit_code``."""
        if self.signum is not None and (self.forced or not self.started):
            return 128 + self.signum
        return self.exit_code or 0


def run_to_exit(main: Callable[[], Awaitable[int]]) -> int:
    """``trio.run(main)``; its exit code (128 + SIGINT for a Ctrl-C before signals were
    taken), said in the log's last line."""
    try:
        code = trio.run(main)
    except KeyboardInterrupt:  # before trio's signal handling was in place
        code = 128 + signal.SIGINT
    if code:
        logger.info("stopped (exit code %d)", code)
    else:
        logger.info("stopped")
    return code


async def watch_signals(signals: AsyncIterator[int], stop: Stop, scope: trio.CancelScope) -> None:
    """Drain on the first signal once started; cancel ``scope`` during start-up or on a second."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if stop.signum is None:
            stop.signum = signum
            if stop.started:
                logger.info("%s received: draining, then stopping (again to stop now)", name)
                stop.drain.set()
                continue
            logger.warning("%s received during start-up: stopping", name)
        else:
            logger.warning("%s received again: stopping now", name)
            stop.forced = True
        scope.cancel()
        return
