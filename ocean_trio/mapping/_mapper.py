"""``ResourceMapper``: one resource's selector and entity mapping, compiled once, run per item."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._entity import UNSET, Entity
from .._exceptions import JqError, MappingError
from ._items_to_parse import ItemsToParse, SkipItem
from ._jq import check_expression, compile_program, first_output, run_first, to_json
from ._models import IngestSearchQuery, ResourceConfig, Rule

_FIELDS = ("identifier", "blueprint", "title", "icon", "team", "properties", "relations")


@attrs.frozen
class MappingIssue:
    """Why raw item ``index`` (its position in the input) was skipped or only partly mapped."""

    index: int
    field: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"item": self.index, "field": self.field, "message": self.message}


@attrs.define
class CalculationResult:
    """Ocean's ``CalculationResult``: entities passing and failing the selector, and the problems.

    ``errors`` are items Ocean fails (selector not boolean, an item jq cannot take, an entity
    its model refuses, itemsToParse that cannot be merged): the item is skipped. ``warnings``
    are what Ocean only logs: a field failing at run time (the field is ``null``, the entity
    kept) and a raw item whose ``itemsToParse`` gives no array (it yields nothing).
    ``misconfigurations`` maps each field that came out ``null`` (``properties.url``) to its
    expression; ``dropped`` counts items whose identifier or blueprint came out empty.
    """

    passed: list[Entity] = attrs.field(factory=list)
    failed: list[Entity] = attrs.field(factory=list)
    errors: list[MappingIssue] = attrs.field(factory=list)
    misconfigurations: dict[str, str] = attrs.field(factory=dict)
    dropped: int = 0
    warnings: list[MappingIssue] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``ocean-trio map`` output: entities in Port's JSON shape."""
        return {
            "passed": [e.to_port() for e in self.passed],
            "failed": [e.to_port() for e in self.failed],
            "errors": [e.to_json() for e in self.errors],
            "warnings": [e.to_json() for e in self.warnings],
        }


# A mapping value: a jq expression, or a tree of them (search queries, properties).
_Tree = str | None | dict[str, "_Tree"] | list["_Tree"]


def _tree(value: Any) -> _Tree:
    """The mapping value as a plain tree of jq strings, in Port's wire names."""
    if isinstance(value, IngestSearchQuery):
        return {"combinator": value.combinator, "rules": [_tree(r) for r in value.rules]}
    if isinstance(value, Rule):
        return {"property": value.property, "operator": value.operator, "value": value.value}
    if isinstance(value, Mapping):
        return {str(k): _tree(v) for k, v in value.items()}
    # A field set to null in the mapping gives null and is a misconfiguration, as in Ocean.
    return "null" if value is None else str(value)


def _leaves(tree: _Tree, path: str) -> Iterable[tuple[str, str]]:
    # Ocean's field paths: dotted, without list indexes (``relations.owner.rules.value``).
    if isinstance(tree, str):
        yield path, tree
    elif isinstance(tree, dict):
        for key, sub in tree.items():
            yield from _leaves(sub, f"{path}.{key}")
    elif isinstance(tree, list):
        for sub in tree:
            yield from _leaves(sub, path)


class ResourceMapper:
    """Maps raw items of one resource to entities with Ocean's exact semantics.

    Every expression is compiled once, and the selector plus all fields also form a single
    jq program run once per item; an item on which it fails is re-run field by field, so one
    failing field costs that field only (``null``, a warning and a misconfiguration), as in
    Ocean. Raises ``MappingError`` for an expression that is not valid jq on its own.
    """

    def __init__(self, resource: ResourceConfig, *, index: int = 0, allow_env: bool = True) -> None:
        self.resource = resource
        self.index = index
        mapping = resource.port.entity.mappings
        self._set_fields = {
            name: _tree(getattr(mapping, name))
            for name in _FIELDS
            if getattr(mapping, name) is not UNSET
        }
        self._leaves = [("selector", resource.selector.query)]
        for name, tree in self._set_fields.items():
            self._leaves.extend(_leaves(tree, name))
        self._coerce_icon = "icon" in self._set_fields
        self._coerce_team = "team" in self._set_fields
        port = resource.port
        # Each expression is checked on its own first, so an error points into the user's
        # text and nothing can be valid only once embedded in our wrappers.
        checked = list(self._leaves)
        if port.items_to_parse:
            checked.append(("itemsToParse", port.items_to_parse))
        for field, expr in checked:
            try:
                check_expression(expr)
            except JqError as error:
                raise MappingError(
                    f"resources[{index}] (kind {resource.kind}): {field}: invalid jq: {error}"
                ) from None
        try:
            self._programs = [
                compile_program(first_output(expr), allow_env=allow_env) for _, expr in self._leaves
            ]
            whole = ", ".join(first_output(expr) for _, expr in self._leaves)
            self._whole = compile_program(f"[{whole}]", allow_env=allow_env)
            self._items_to_parse = (
                ItemsToParse(
                    port.items_to_parse,
                    name=port.items_to_parse_name,
                    top_level_transform=port.items_to_parse_top_level_transform,
                    allow_env=allow_env,
                )
                if port.items_to_parse
                else None
            )
        except JqError as error:
            # Every expression is valid on its own, so this is a bug of ours in the wrappers.
            raise MappingError(
                f"resources[{index}] (kind {resource.kind}): cannot compile the mapping: {error}"
            ) from None

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def uses_search_identifier(self) -> bool:
        return self.resource.port.entity.mappings.is_using_search_identifier

    def expand(self, items: Iterable[Any], result: CalculationResult) -> list[tuple[int, Any]]:
        """``(input index, item)`` after ``itemsToParse``.

        A raw item whose ``itemsToParse`` gives no array yields nothing and is a warning, as
        in Ocean; one that gives elements but cannot be merged (not an object) is an error.
        """
        if self._items_to_parse is None:
            return list(enumerate(items))
        expanded: list[tuple[int, Any]] = []
        for index, item in enumerate(items):
            try:
                expanded.extend((index, merged) for merged in self._items_to_parse.expand(item))
            except SkipItem as skipped:
                issues = result.errors if skipped.error else result.warnings
                issues.append(MappingIssue(index, "itemsToParse", str(skipped)))
        return expanded

    def map_items(self, items: Iterable[Any], *, parse_all: bool = False) -> CalculationResult:
        """Ocean's ``parse_items``: expand, select, map; ``failed`` is filled only with ``parse_all``."""
        result = CalculationResult()
        for index, item in self.expand(items, result):
            self._map_one(index, item, parse_all, result)
        return result

    def _map_one(self, index: int, item: Any, parse_all: bool, result: CalculationResult) -> None:
        try:
            text = to_json(item)
        except (TypeError, ValueError) as error:
            result.errors.append(MappingIssue(index, "item", f"not JSON: {error}"))
            return
        try:
            values: list[Any] = run_first(self._whole, text)
            field_errors: dict[int, str] = {}
        except JqError:
            values, field_errors = self._one_by_one(text)
        if 0 in field_errors or not isinstance(values[0], bool):
            message = field_errors.get(0) or (
                f"selector {self.resource.selector.query!r} must give a boolean, "
                f"got {_short(values[0])}"
            )
            result.errors.append(MappingIssue(index, "selector", message))
            return
        selected = values[0]
        if not selected and not parse_all:
            return
        for i, (path, expr) in enumerate(self._leaves[1:], start=1):
            if values[i] is None:
                # Ocean overwrites: the last expression of a path without indexes wins.
                result.misconfigurations[path] = expr
            if i in field_errors:
                result.warnings.append(MappingIssue(index, path, field_errors[i]))
        fields = self._assemble(values[1:])
        if not fields.get("identifier") or not fields.get("blueprint"):
            result.dropped += 1
            return
        # Ocean's Entity model (pydantic v1): icon is ``str | None`` and team ``str | None |
        # list | dict``; its str coerces numbers and booleans with str() (5 → "5", true →
        # "True") and refuses anything else.
        if self._coerce_icon:
            icon = fields["icon"]
            if isinstance(icon, int | float):
                fields["icon"] = str(icon)
            elif icon is not None and not isinstance(icon, str):
                result.errors.append(
                    MappingIssue(
                        index, "icon", f"icon must be a string or null, got {_short(icon)}"
                    )
                )
                return
        if self._coerce_team and isinstance(fields["team"], int | float):
            fields["team"] = str(fields["team"])
        entity = Entity(**fields)
        (result.passed if selected else result.failed).append(entity)

    def _one_by_one(self, text: str) -> tuple[list[Any], dict[int, str]]:
        values: list[Any] = []
        errors: dict[int, str] = {}
        for i, program in enumerate(self._programs):
            try:
                values.append(run_first(program, text))
            except JqError as error:
                errors[i] = f"jq failed on {self._leaves[i][1]!r}: {error}"
                values.append(None)
        return values, errors

    def _assemble(self, values: list[Any]) -> dict[str, Any]:
        position = iter(values)

        def fill(tree: _Tree) -> Any:
            if isinstance(tree, str):
                return next(position)
            if isinstance(tree, dict):
                return {key: fill(sub) for key, sub in tree.items()}
            if isinstance(tree, list):
                return [fill(sub) for sub in tree]
            return None

        return {name: fill(tree) for name, tree in self._set_fields.items()}


def _short(value: Any) -> str:
    text = to_json(value)
    return text if len(text) <= 60 else text[:57] + "..."
