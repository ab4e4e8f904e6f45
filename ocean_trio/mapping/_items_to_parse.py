"""``itemsToParse``: expand one raw item into one merged item per element of an inner array."""

from __future__ import annotations

import re
from typing import Any

from .._exceptions import JqError
from ._jq import compile_program, first_output, normalise, run_first, to_json

# Ocean's extract_jq_deletion_path_revised (port_ocean/core/integrations/mixins/utils.py):
# a leading parenthesis keeps the text up to the first closing one; of the ``|`` segments,
# bindings (``. as $x``), the identity and variables are skipped, and the first segment that
# *starts* with a path gives the path (only the part the regex matches).
_PARENTHESISED = re.compile(r"\((.*?)\)", re.DOTALL)
_BINDING = re.compile(r"^\.\s+as\s+\$\w+")
_PATH = re.compile(r"(\.[\w]+|\.\[[^\]]+\])(\.[\w]+|\[[^\]]+\]|\.\[[^\]]+\])*")


def deletion_path(expression: str) -> str | None:
    """The path ``del()`` removes from the parent, or ``None`` when Ocean derives none."""
    chain = expression.strip()
    if chain.startswith("("):
        parenthesised = _PARENTHESISED.match(chain)
        if parenthesised is None:
            return None
        chain = parenthesised.group(1).strip()
    for segment in (s.strip() for s in chain.split("|")):
        if _BINDING.match(segment) or segment == "." or segment.startswith("$"):
            continue
        path = _PATH.match(segment)
        if path:
            return path.group(0).strip()
    return None


class SkipItem(Exception):
    """The raw item yields no items: a warning in Ocean, or an error when ``error`` is set."""

    def __init__(self, message: str, *, error: bool = False) -> None:
        super().__init__(message)
        self.error = error


class ItemsToParse:
    """The compiled ``itemsToParse`` of one resource."""

    def __init__(
        self, expression: str, *, name: str, top_level_transform: bool, allow_env: bool
    ) -> None:
        self.expression = expression
        self.name = name
        self._items = compile_program(first_output(expression), allow_env=allow_env)
        self._transform: str | None = None
        self._parent: Any = None
        self._parent_invalid: str | None = None
        if top_level_transform:
            # Without a path Ocean runs del(.): null, so every raw item is skipped.
            self._transform = f". | del({deletion_path(expression) or '.'})"
            try:
                self._parent = compile_program(normalise(self._transform), allow_env=allow_env)
            except JqError as error:
                # The derived path can be invalid jq (``.["a]b"]``); Ocean's search of it
                # gives null, so every raw item is skipped, as here.
                self._parent_invalid = str(error)

    def expand(self, item: Any) -> list[Any]:
        """The merged items ``{**parent, name: element}``; raises ``SkipItem`` for none."""
        try:
            text = to_json(item)
        except (TypeError, ValueError) as error:
            raise SkipItem(f"the raw item is not JSON: {error}") from None
        # Ocean's order: the elements, then the transformed parent, then the array check.
        elements, failure = self._first(self._items, text)
        parent = item
        if self._transform is not None:
            if self._parent_invalid is None:
                parent, parent_failure = self._first(self._parent, text)
            else:
                parent, parent_failure = None, f": {self._parent_invalid}"
            if parent is None:
                raise SkipItem(
                    f"the top-level transform {self._transform!r} of itemsToParse "
                    f"{self.expression!r} gave null{parent_failure}"
                )
        if not isinstance(elements, list):
            raise SkipItem(
                f"itemsToParse {self.expression!r} gave {_json_type(elements)}, "
                f"not an array{failure}"
            )
        if elements and not isinstance(parent, dict):
            # Ocean's {**parent} raises here rather than warning.
            raise SkipItem(
                f"itemsToParse needs the (transformed) raw item to be an object, "
                f"got {_json_type(parent)}",
                error=True,
            )
        return [{**parent, self.name: element} for element in elements]

    @staticmethod
    def _first(program: Any, text: str) -> tuple[Any, str]:
        # Ocean's _search: a failure is logged and gives null.
        try:
            return run_first(program, text), ""
        except JqError as error:
            return None, f": {error}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
