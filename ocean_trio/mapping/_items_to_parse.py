"""``itemsToParse``: expand one raw item into one merged item per element of an inner array."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ._jq import JqError, compile_program, first_output, normalise, run_first, to_json

# The first path in an ``itemsToParse`` expression (``.fields.subtasks``, ``.["a b"][0]``) is
# the array removed from the parent before merging; Ocean derives it with this regex.
_PATH = re.compile(r"(\.[\w]+|\.\[[^\]]+\])(\.[\w]+|\[[^\]]+\]|\.\[[^\]]+\])*")
_BINDING = re.compile(r"^\.\s+as\s+\$\w+$")


def deletion_path(expression: str) -> str | None:
    """The path ``del()`` removes from the parent, or ``None`` when none can be derived."""
    text = normalise(expression)
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    for segment in (s.strip() for s in text.split("|")):
        if not segment or segment == "." or segment.startswith("$") or _BINDING.match(segment):
            continue
        match = _PATH.search(segment)
        if match:
            return match.group(0)
    return None


class ItemsToParse:
    """The compiled ``itemsToParse`` of one resource."""

    def __init__(
        self, expression: str, *, name: str, top_level_transform: bool, allow_env: bool
    ) -> None:
        self.expression = expression
        self.name = name
        self._items = compile_program(first_output(expression), allow_env=allow_env)
        self._parent: Any = None
        if top_level_transform:
            path = deletion_path(expression)
            # Ocean falls back to del(.) → null → every item skipped with a warning.
            self._parent = compile_program(f"del({path or '.'})", allow_env=allow_env)

    def expand(self, item: Any) -> Iterator[Any]:
        """The merged items ``{**parent, name: element}``; raises ``ValueError`` to skip ``item``."""
        text = to_json(item)
        try:
            elements = run_first(self._items, text)
        except JqError as error:
            raise ValueError(f"itemsToParse {self.expression!r} failed: {error}") from None
        if not isinstance(elements, list):
            raise ValueError(
                f"itemsToParse {self.expression!r} gave {type(elements).__name__}, not an array"
            )
        parent = item
        if self._parent is not None:
            parent = run_first(self._parent, text)
            if not isinstance(parent, dict):
                raise ValueError(
                    f"no path to remove could be derived from itemsToParse {self.expression!r}"
                )
        elif not isinstance(parent, dict):
            raise ValueError("itemsToParse needs the raw item to be an object")
        for element in elements:
            yield {**parent, self.name: element}
