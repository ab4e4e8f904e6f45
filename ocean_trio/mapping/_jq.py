"""jq compilation with Ocean's pre-processing: single-quoted strings and the ``env`` guard."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import jq

# Port writes jq in YAML with single-quoted string literals ('"a"' or 'foo'); Ocean rewrites a
# quote that opens after a blank (or at the start) or closes before one into a double quote.
_SINGLE_QUOTE = re.compile(r"(^|\s)'(?!\s|\")|(?<!\s|\")'(\s|$)")

# Prefixed when ``allow_environment_variables_jq_access`` is false: hides ``env`` and ``$ENV``.
_ENV_GUARD = "def env: {}; {} as $ENV | "


class JqError(ValueError):
    """A jq program failed to compile or to run."""


def normalise(expression: str) -> str:
    """Ocean's single-quote rewrite of one expression."""
    return _SINGLE_QUOTE.sub(r'\1"\2', expression.strip())


# Expressions that always give exactly one output (or an error): a path of plain keys and
# indexes, or a literal. They need no first-output wrapper, which costs more than they do.
_SINGLE_OUTPUT = re.compile(
    r"""^(?:\.|\.(?:[A-Za-z_]\w*|"[^"\\]*"|\[(?:"[^"\\]*"|-?\d+)\])"""
    r"""(?:\.[A-Za-z_]\w*|\."[^"\\]*"|\.?\[(?:"[^"\\]*"|-?\d+)\])*"""
    r"""|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)$"""
)


def first_output(expression: str) -> str:
    """An expression yielding the first output of ``expression``, or ``null`` when it has none.

    ``label``/``break`` stops ``expression`` after its first output, as Ocean's ``first()``
    does, and is cheaper in jq than ``[limit(1; f)][0]``.
    """
    text = normalise(expression)
    if _SINGLE_OUTPUT.match(text):
        return f"({text})"
    return f"(label $__first | (({text}) | ., break $__first), null)"


def compile_program(body: str, *, allow_env: bool) -> Any:
    """Compile ``body`` (already normalised), guarded unless environment access is allowed."""
    program = body if allow_env else _ENV_GUARD + body
    try:
        return jq.compile(program)
    except ValueError as error:
        raise JqError(_clean(error)) from None


def to_json(value: Any) -> str:
    """JSON text for jq; dates and datetimes become ISO strings as in Ocean."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def run_first(program: Any, text: str) -> Any:
    """The first output of ``program`` on the JSON ``text``, or ``None`` without one."""
    try:
        outputs = program.input_text(text)
        for output in outputs:
            return output
        return None
    except ValueError as error:
        raise JqError(_clean(error)) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.datetime | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _clean(error: BaseException) -> str:
    message = str(error).strip()
    return message.replace(_ENV_GUARD, "")
