"""jq compilation with Ocean's pre-processing: single-quoted strings and the ``env`` guard."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import jq

from .._exceptions import JqError

# Port writes jq in YAML with single-quoted string literals ('"a"' or 'foo'); Ocean rewrites a
# quote that opens after a blank (or at the start) or closes before one into a double quote.
_SINGLE_QUOTE = re.compile(r"(^|\s)'(?!\s|\")|(?<!\s|\")'(\s|$)")

# Prefixed when ``allow_environment_variables_jq_access`` is false: hides ``env`` and ``$ENV``.
_ENV_GUARD = "def env: {}; {} as $ENV | "


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
    # The newlines end a trailing ``# comment`` (even one continued by a backslash), which
    # would otherwise swallow the rest of the wrapper.
    return f"(label $__first | (({text}\n\n) | ., break $__first), null)"


def check_expression(expression: str) -> None:
    """Compile ``expression`` on its own; raises ``JqError`` pointing into the user's text.

    Only the single-quote rewrite is applied (it keeps every column), so jq's line and column
    are those of the expression as written, not of a program built around it.
    """
    try:
        jq.compile(_SINGLE_QUOTE.sub(r'\1"\2', expression))
    except ValueError as error:
        raise JqError(_compile_message(error)) from None


def compile_program(body: str, *, allow_env: bool) -> Any:
    """Compile ``body`` (already normalised), guarded unless environment access is allowed."""
    program = body if allow_env else _ENV_GUARD + body
    try:
        return jq.compile(program)
    except ValueError as error:
        raise JqError(_clean(error)) from None


def to_json(value: Any) -> str:
    """JSON text for jq, made as Ocean's ``compile_jq`` / ``make_json_compatible`` do.

    Only when the value is not JSON serialisable, dates and datetimes become ISO strings and
    every dict key is made a string with ``str()``; anything else still failing (a time, a
    Decimal) raises ``TypeError``, which fails the item as it does in Ocean.
    """
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError as error:
        if "not JSON serializable" not in str(error):
            raise
    return json.dumps(_json_compatible(value), ensure_ascii=False)


def run_first(program: Any, text: str) -> Any:
    """The first output of ``program`` on the JSON ``text``, or ``None`` without one."""
    try:
        outputs = program.input_text(text)
        for output in outputs:
            return output
        return None
    except ValueError as error:
        raise JqError(_clean(error)) from None


def _json_compatible(value: Any) -> Any:
    # Ocean's make_json_compatible: dates (datetimes are dates) inside dicts and lists only.
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_compatible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_compatible(v) for v in value]
    return value


def _clean(error: BaseException) -> str:
    message = str(error).strip()
    return message.replace(_ENV_GUARD, "")


_COMPILE_ERRORS = re.compile(r"^jq: \d+ compile errors?$")


def _compile_message(error: BaseException) -> str:
    """jq's compile message without its ``jq: error:`` frame; the caret lines are kept."""
    lines = []
    for line in str(error).strip().splitlines():
        if _COMPILE_ERRORS.match(line):
            continue
        line = line.removeprefix("jq: error: ").replace(" at <top-level>, ", " at ")
        lines.append(line)
    return "\n".join(lines)
