"""Fault rules: failures, delays and dropped connections the emulator injects before a handler.

Pure bookkeeping; the recording ASGI wrapper (``_recording``) asks for the faults of each request.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._wire import Obj

FaultKind = Literal["fail", "delay", "drop"]


@attrs.define
class FaultRule:
    kind: FaultKind
    path: str
    method: str | None
    times: int | None
    status: int = 0
    seconds: float = 0.0
    headers: dict[str, str] = attrs.Factory(dict)
    body: Obj | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path)


class Faults:
    """Fault rules: each matches a method (``None`` = any) and a path prefix, for ``times`` requests."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def fail(
        self,
        status: int,
        *,
        path: str = "/",
        method: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        body: Obj | None = None,
    ) -> None:
        """Answer ``status`` (with ``Retry-After`` when given) instead of handling the request."""
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"fault status must be an int in 400..599, not {status!r}")
        all_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if retry_after is not None:
            all_headers["Retry-After"] = f"{_number(retry_after, 'retry_after'):g}"
        if body is not None and not isinstance(body, dict):
            raise ValueError("fault body must be a JSON object")
        rule = FaultRule("fail", *_scope(path, method, times), status=status, headers=all_headers)
        rule.body = body
        self._rules.append(rule)

    def delay(
        self,
        seconds: float,
        *,
        path: str = "/",
        method: str | None = None,
        times: int | None = None,
    ) -> None:
        """Sleep ``seconds`` (on trio's clock) before handling matching requests."""
        rule = FaultRule("delay", *_scope(path, method, times), seconds=_number(seconds, "seconds"))
        self._rules.append(rule)

    def drop(self, *, path: str = "/", method: str | None = None, times: int | None = 1) -> None:
        """Send the response start and part of a body, then close: the client sees a protocol error."""
        self._rules.append(FaultRule("drop", *_scope(path, method, times)))

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def take(self, method: str, path: str) -> tuple[float, FaultRule | None]:
        """For a request: the delay to add and the fault to answer with (the recording layer)."""
        # Every matching delay adds up; the first matching fail/drop rule wins. Each rule
        # used spends one of its `times`, and is forgotten at zero.
        delay, action = 0.0, None
        for rule in list(self._rules):
            if not rule.matches(method, path) or (rule.kind != "delay" and action is not None):
                continue
            if rule.kind == "delay":
                delay += rule.seconds
            else:
                action = rule
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
        return delay, action


def _scope(path: str, method: str | None, times: int | None) -> tuple[str, str | None, int | None]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"fault path must be a string starting with '/', not {path!r}")
    if method is not None and not isinstance(method, str):
        raise ValueError(f"fault method must be a string or None, not {method!r}")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError(f"fault times must be a positive int or None, not {times!r}")
    return path, None if method is None else method.upper(), times


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    return float(value)
