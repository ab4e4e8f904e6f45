"""Logging: ``configure_logging`` for the two entry points, and ``LogLimiter`` against floods.

``LogLimiter`` logs the first few records of a kind per period, counts and summarises the
rest: a flood (a misconfigured sender, an outage) repeats one warning thousands of times a
second; the first ``burst`` of each key per ``period`` are logged as usual, the others are
counted and reported in one line when the next record of that key is let through.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` unless the process already configured logging.

    httpx's one line per request drowns the integration's own log, so it is kept to
    warnings; hypercorn's error log, when it has a handler of its own, is left to it so
    its lines are not printed twice.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_not_logged_elsewhere)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if root.level <= logging.INFO:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _not_logged_elsewhere(record: logging.LogRecord) -> bool:
    # hypercorn's CLI gives its error log a handler of its own (created lazily, after ours).
    return not (record.name.startswith("hypercorn.") and logging.getLogger(record.name).handlers)


@attrs.define
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0


class LogLimiter:
    """Rate-limits records by a key (e.g. ``("rejected", path)``); keys are bounded too."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        period: float = 60.0,
        burst: int = 5,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._period = period
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._windows: collections.OrderedDict[Any, _Window] = collections.OrderedDict()

    def log(self, level: int, key: Any, message: str, *args: Any) -> None:
        """Log ``message % args`` at ``level`` unless ``key`` has had its ``burst`` this period."""
        if not self._logger.isEnabledFor(level):
            return
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self._period:
            if window is not None and window.suppressed:
                self._logger.log(
                    level,
                    "(%d more like the next one in the last %.0fs were not logged)",
                    window.suppressed,
                    now - window.started,
                )
            window = _Window(now)
            self._windows[key] = window
            self._windows.move_to_end(key)
            while len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
        if window.logged < self._burst:
            window.logged += 1
            self._logger.log(level, message, *args)
        else:
            window.suppressed += 1

    def warning(self, key: Any, message: str, *args: Any) -> None:
        self.log(logging.WARNING, key, message, *args)

    def error(self, key: Any, message: str, *args: Any) -> None:
        self.log(logging.ERROR, key, message, *args)
