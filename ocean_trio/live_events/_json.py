"""``BodyParser``: webhook bodies to payloads, strictly, with bounded nesting, never a crash.

What a sender may not send, each refused with ``InvalidBodyError`` (a 400) naming the problem:
bytes that are not UTF-8, text that is not JSON (RFC 8259: no ``NaN`` or ``Infinity``, no
number too large for a double, no integer longer than Python's 4,300-digit limit), strings
with an unpaired surrogate (``"\\ud800"``: valid JSON, not Unicode, and fatal later when the
payload is encoded again), and nesting deeper than ``max_depth``. Duplicate keys are
accepted, the last one winning, as in JavaScript, jq and Python.

Cheap checks on the raw bytes decide whether the parsed payload needs the (linear) walk
that enforces the depth and Unicode rules, so a typical small body costs one ``json.loads``.

Bodies of ``off_loop_bytes`` or more are parsed on a worker thread, and that alone would
not free the event loop: ``json.loads`` holds the GIL from start to end (measured: a 5 MiB
body of 86,000 small objects paused the loop's thread 175 ms). Two things make it yield:
a Python-level ``object_pairs_hook`` (at every object the interpreter may switch threads),
and the cyclic collector paused for the parse (building that many objects otherwise runs a
full collection holding the GIL). Together: pauses of ~20 ms instead of 175.
"""

from __future__ import annotations

import gc
import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs
import trio

from .._exceptions import InvalidBodyError

DEFAULT_MAX_DEPTH = 64
"""Webhook payloads nest a dozen levels at most (GitHub, Jira, Stripe); 64 leaves room."""

OFF_LOOP_BYTES = 256 * 1024
"""Bodies from this size are parsed (and verified, copied, mapped) on a worker thread."""

# Escapes of surrogate code points: a pair is fine (json joins it), a lone one is not.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_INT_LIMIT = "integer string conversion"


_T = TypeVar("_T")

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_resume = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC while any thread is in here (objects are still freed by refcount)."""
    global _gc_pausers, _gc_resume
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python, not C: the interpreter may hand the GIL to another thread here.
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return value


def _too_deep(payload: Any, max_depth: int) -> bool:
    """Whether ``payload`` nests deeper than ``max_depth``: level by level, containers only
    (no recursion to exhaust, and ~4x faster than visiting every value)."""
    level = [payload]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        children: list[Any] = []
        for node in level:
            values = node.values() if type(node) is dict else node
            children += [v for v in values if type(v) is dict or type(v) is list]
        level = children
    return False


def _check_strings(payload: Any) -> None:
    """Every key and string must be valid Unicode (no unpaired surrogate)."""
    stack = [payload]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise InvalidBodyError(
            f"body holds an unpaired surrogate \\u{code:04x} (not valid Unicode)"
        ) from None


@attrs.frozen
class BodyParser:
    """Parses webhook bodies into JSON objects; see the module docstring for the rules."""

    max_depth: int = DEFAULT_MAX_DEPTH
    off_loop_bytes: int = OFF_LOOP_BYTES
    _limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(2), repr=False, eq=False
    )

    def parse(self, body: bytes, *, yielding: bool = False) -> Any:
        """The JSON value of ``body`` (any type); raises ``InvalidBodyError``.

        ``yielding`` parses so that other threads get the GIL often (slower; for big bodies
        on a worker thread).
        """
        if yielding:
            with _collector_paused():
                return self._parse(body, _object)
        return self._parse(body, None)

    def _parse(self, body: bytes, hook: Callable[[list[tuple[str, Any]]], Any] | None) -> Any:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidBodyError(
                f"body is not valid UTF-8 (byte {error.start}: {body[error.start : error.start + 1]!r})"
            ) from None
        try:
            value = json.loads(
                text, parse_constant=_no_constants, parse_float=_finite, object_pairs_hook=hook
            )
        except RecursionError:
            raise InvalidBodyError(f"JSON nested deeper than {self.max_depth} levels") from None
        except ValueError as error:
            message = str(error)
            if _INT_LIMIT in message:
                message = "a number has more than 4300 digits"
            raise InvalidBodyError(f"body is not valid JSON: {message}") from None
        # Cheap on the bytes first: fewer brackets than the limit cannot nest deeper.
        if body.count(b"{") + body.count(b"[") > self.max_depth and _too_deep(
            value, self.max_depth
        ):
            raise InvalidBodyError(f"JSON nested deeper than {self.max_depth} levels")
        if _SURROGATE_ESCAPE.search(body):
            _check_strings(value)
        return value

    def parse_object(self, body: bytes, *, yielding: bool = False) -> dict[str, Any]:
        """``parse``, refusing anything but a JSON object (what a webhook payload is)."""
        value = self.parse(body, yielding=yielding)
        if not isinstance(value, dict):
            raise InvalidBodyError(f"body must be a JSON object, got {_json_type(value)}")
        return value

    def is_big(self, body: bytes) -> bool:
        """Whether work over ``body`` belongs on a worker thread."""
        return len(body) >= self.off_loop_bytes

    async def parse_object_async(self, body: bytes) -> dict[str, Any]:
        """``parse_object``, on a worker thread for big bodies (at most two at a time)."""
        if not self.is_big(body):
            return self.parse_object(body)
        return await self.off_loop(lambda: self.parse_object(body, yielding=True))

    async def off_loop(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn()`` on the big-body worker threads (at most two at a time)."""
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)


def exceeds(value: Any, nodes: int) -> bool:
    """Whether ``value`` holds more than ``nodes`` JSON values; stops counting there.

    A bounded walk: cheap for small inputs, and a sign that jq work over a big one belongs
    off the event loop (serialising it for jq is itself proportional to its size).
    """
    stack = [value]
    seen = 0
    while stack:
        current = stack.pop()
        seen += 1
        if seen > nodes:
            return True
        if isinstance(current, dict | list):
            if seen + len(stack) + len(current) > nodes:
                return True  # decided without copying a big container onto the stack
            stack.extend(current.values() if isinstance(current, dict) else current)
        elif isinstance(current, str) and len(current) > nodes * 16:
            return True  # one long string costs as much as many small values
    return False


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
