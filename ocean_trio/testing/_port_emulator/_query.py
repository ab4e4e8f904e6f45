"""Port's entity search language, as far as Ocean uses it, compiled to a predicate.

Anything outside that subset is a 422, so a client relying on more fails loudly in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._wire import ApiError, Key, Obj

Predicate = Callable[[Obj], bool]

_OPERATORS = {"=", "!=", "in", "contains", "beginsWith"}
_ENTITY_FIELDS = {"identifier", "blueprint", "datasource", "title", "team", "icon"}
_ENTITY_FIELDS |= {"createdAt", "updatedAt"}


def compile_query(query: Any) -> Predicate:
    """A predicate over stored entities for ``{"combinator": "and"|"or", "rules": [...]}``."""
    if not isinstance(query, dict) or "combinator" not in query:
        raise ApiError(422, "invalid_request", "A query needs 'combinator' and 'rules'")
    combinator, rules = query.get("combinator"), query.get("rules")
    if combinator not in ("and", "or") or not isinstance(rules, list):
        raise ApiError(422, "invalid_request", "'combinator' must be and/or; 'rules' a list")
    tests = [
        compile_query(r) if isinstance(r, dict) and "combinator" in r else _rule(r) for r in rules
    ]
    if combinator == "and":
        return lambda entity: all(test(entity) for test in tests)
    return lambda entity: any(test(entity) for test in tests)


def _rule(rule: Any) -> Predicate:
    if (
        not isinstance(rule, dict)
        or not isinstance(rule.get("property"), str)
        or "value" not in rule
    ):
        raise ApiError(422, "invalid_request", f"Bad search rule {rule!r}")
    field, operator, wanted = rule["property"], rule.get("operator"), rule["value"]
    if operator not in _OPERATORS:
        raise ApiError(422, "invalid_request", f"Unsupported operator {operator!r}")
    if field.startswith("$") and field[1:] not in _ENTITY_FIELDS:
        raise ApiError(422, "invalid_request", f"Unsupported meta property {field!r}")
    if operator == "in" and not isinstance(wanted, list):
        raise ApiError(422, "invalid_request", "The 'in' operator needs a list value")

    def test(entity: Obj) -> bool:
        if field.startswith("$"):
            actual = entity.get(field[1:])
        else:
            actual = entity.get("properties", {}).get(field)
        if operator == "=":
            return bool(actual == wanted)
        if operator == "!=":
            return bool(actual != wanted)
        if operator == "in":
            return actual in wanted
        if operator == "contains":
            if isinstance(actual, str):
                return isinstance(wanted, str) and wanted in actual
            return isinstance(actual, list) and wanted in actual
        return isinstance(actual, str) and isinstance(wanted, str) and actual.startswith(wanted)

    return test


def candidates(query: Any, entities: Mapping[Key, Obj]) -> Iterable[Obj]:
    """The entities ``query`` can match: looked up by key when its top-level ``and`` names the
    blueprint (``$blueprint =``) and the identifiers (``$identifier =`` or ``in``), as Ocean's
    diff search does; else all of them. Only an index: the caller still applies the query."""
    if not isinstance(query, dict) or query.get("combinator") != "and":
        return entities.values()
    rules = query.get("rules")
    if not isinstance(rules, list):
        return entities.values()
    blueprints: list[Any] = []
    identifiers: list[Any] | None = None
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        field, operator, value = rule.get("property"), rule.get("operator"), rule.get("value")
        if field == "$blueprint" and operator == "=":
            blueprints.append(value)
        elif field == "$identifier" and operator == "=":
            identifiers = [value]
        elif field == "$identifier" and operator == "in" and isinstance(value, list):
            identifiers = value
    if len(blueprints) != 1 or identifiers is None:
        return entities.values()
    keys = dict.fromkeys((blueprints[0], i) for i in identifiers if isinstance(i, str))
    return [entities[key] for key in keys if key in entities]


def project(entity: Obj, include: list[str]) -> Obj:
    """The fields of ``entity`` that ``include`` names: top-level ones (``title``) and single
    properties or relations (``properties.tier``, ``relations.team``), as Port's ``include``."""
    kept: Obj = {}
    for path in include:
        top, _, sub = path.partition(".")
        if top not in entity:
            continue
        if not sub:
            kept[top] = entity[top]
        elif isinstance(entity[top], dict):
            part = kept.setdefault(top, {})
            if isinstance(part, dict) and sub in entity[top]:
                part[sub] = entity[top][sub]
    return kept
