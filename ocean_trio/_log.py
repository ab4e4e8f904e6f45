"""Logging: ``configure_logging`` for the entry points (text or JSON lines, secrets masked),
and ``LogLimiter`` against floods.

``LogLimiter`` logs the first few records of a kind per period, counts and summarises the
rest: a flood (a misconfigured sender, an outage) repeats one warning thousands of times a
second; the first ``burst`` of each key per ``period`` are logged as usual, the others are
counted and reported in one line when the next record of that key is let through.
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


MASK = "***"
MIN_MASKED_LENGTH = 4  # shorter "secrets" would mask ordinary words


def configure_logging(level: str, *, as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level`` unless the process already configured logging.

    ``as_json``: one JSON object per line (for log shippers). Every occurrence of one of
    ``secrets`` in a line (tracebacks included) is replaced by ``***``. httpx's one line
    per request drowns the integration's own log, so it is kept to warnings; hypercorn's
    error log, when it has a handler of its own, is left to it so its lines are not printed
    twice.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingFormatter(JsonFormatter() if as_json else logging.Formatter(_FORMAT), secrets)
    )
    handler.addFilter(_not_logged_elsewhere)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if root.level <= logging.INFO:
        logging.getLogger("httpx").setLevel(logging.WARNING)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, the ``event`` fields a
    record carries (seq, path, status, trace_id, delivery_id, …) and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "event", None)
        if isinstance(fields, dict):
            data.update((k, v) for k, v in fields.items() if k not in data)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class SecretMask:
    """Replaces each of ``secrets`` (those of at least 4 characters) by ``***`` in a text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(
            {s for s in secrets if isinstance(s, str) and len(s) >= MIN_MASKED_LENGTH},
            key=len,
            reverse=True,
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class MaskingFormatter(logging.Formatter):
    """Formats with ``inner``, then masks the secrets (``SecretMask``)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._mask = SecretMask(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(self._inner.format(record))


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

    def log(
        self, level: int, key: Any, message: str, *args: Any, extra: dict[str, Any] | None = None
    ) -> None:
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
            self._logger.log(level, message, *args, extra=extra)
        else:
            window.suppressed += 1

    def warning(
        self, key: Any, message: str, *args: Any, extra: dict[str, Any] | None = None
    ) -> None:
        self.log(logging.WARNING, key, message, *args, extra=extra)

    def error(
        self, key: Any, message: str, *args: Any, extra: dict[str, Any] | None = None
    ) -> None:
        self.log(logging.ERROR, key, message, *args, extra=extra)
