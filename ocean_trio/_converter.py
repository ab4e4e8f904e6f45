"""The one cattrs converter: every attrs model of ocean-trio is (de)serialised here.

Wire names are Port's camelCase (``itemsToParse``, ``eventWorkersCount``); Python names are
snake_case. Scalars are structured strictly (``"false"`` is not ``True``), because the same
converter reads environment variables, YAML files and JSON bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._exceptions import ConfigError

T = TypeVar("T")

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")
_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel(name: str) -> str:
    """``items_to_parse`` → ``itemsToParse``."""
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    """``itemsToParse`` → ``items_to_parse``; already snake names are unchanged."""
    return _SNAKE_BOUNDARY.sub(lambda m: "_" + m.group(1).lower(), name)


converter = cattrs.Converter(forbid_extra_keys=False)


def _structure_attrs(cls: type[Any]) -> Callable[[Any, Any], Any]:
    renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
    return make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]


def _unstructure_attrs(cls: type[Any]) -> Callable[[Any], Any]:
    renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
    return make_dict_unstructure_fn(cls, converter, **renames)  # type: ignore[arg-type]


converter.register_structure_hook_factory(attrs.has, _structure_attrs)
converter.register_unstructure_hook_factory(attrs.has, _unstructure_attrs)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a boolean, got {value!r}")


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(str, _structure_str)


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ConfigError):  # a settings class's own check, its message as it is
        return str(exc)
    if (
        isinstance(exc, ValueError | TypeError)
        and str(exc)
        and not isinstance(exc, cattrs.BaseValidationError)
    ):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


_PATH_SEGMENT = re.compile(r"\.([a-z0-9_]+)")


def describe_errors(exc: cattrs.BaseValidationError, path: str = "$") -> list[str]:
    """One readable line per invalid field, with its wire (camelCase) path."""
    lines = cattrs.transform_error(exc, path=path, format_exception=_format_exception)
    return [_PATH_SEGMENT.sub(lambda m: "." + camel(m.group(1)), line) for line in lines]


def structure(data: Any, cls: type[T], *, source: str) -> T:
    """Structure ``data`` as ``cls``; raise ``ConfigError`` naming ``source`` and each bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} is invalid: expected an object, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problems = describe_errors(exc)
        else:
            problems = [str(exc)]
        raise ConfigError(f"{source} is invalid:\n  - " + "\n  - ".join(problems)) from None


def unstructure(value: Any) -> Any:
    """Turn an attrs model back into its camelCase wire form."""
    return converter.unstructure(value)


def merge_trees(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` laid over it, mappings merged key by key (settings' layers)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_trees(merged[key], value)
        else:
            merged[key] = value
    return merged
