"""The port app config: which kinds to ingest and how to map them (Port's wire names, camelCase)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import attrs
import cattrs
import yaml

from .._converter import camel, converter, describe_errors, structure
from .._entity import UNSET, Unset
from .._exceptions import ConfigError


@attrs.frozen(kw_only=True)
class Rule:
    """One rule of a search query; every string is itself a jq expression."""

    property: str
    operator: str
    value: str


@attrs.frozen(kw_only=True)
class IngestSearchQuery:
    """A search identifier or relation, resolved by Port at upsert time."""

    combinator: str
    rules: tuple[Rule | IngestSearchQuery, ...]


@attrs.frozen(kw_only=True)
class EntityMapping:
    """jq expressions per entity field; a field left ``UNSET`` is absent from the entity."""

    identifier: str | IngestSearchQuery
    blueprint: str
    title: str | Unset | None = UNSET
    icon: str | Unset | None = UNSET
    team: str | IngestSearchQuery | Unset | None = UNSET
    properties: Mapping[str, str] | Unset = UNSET
    relations: Mapping[str, str | IngestSearchQuery] | Unset = UNSET

    @property
    def is_using_search_identifier(self) -> bool:
        return isinstance(self.identifier, IngestSearchQuery)


@attrs.frozen(kw_only=True)
class MappingsConfig:
    mappings: EntityMapping


@attrs.frozen(kw_only=True)
class PortResourceConfig:
    """``port:`` of a resource: the entity mapping and the optional array expansion."""

    entity: MappingsConfig
    items_to_parse: str | None = None
    items_to_parse_name: str = "item"
    items_to_parse_top_level_transform: bool = True


@attrs.frozen(kw_only=True)
class Selector:
    """Which raw items of the kind to ingest; integrations subclass it to add fields (e.g. ``jql``)."""

    query: str
    export_env_variables: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ResourceConfig:
    """One entry of ``resources``; integrations subclass it (and ``Selector``) per kind."""

    kind: str
    selector: Selector
    port: PortResourceConfig


def _threshold(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{camel(attribute.name)} must be between 0 and 1, got {value}")


@attrs.frozen(kw_only=True)
class PortAppConfig:
    """The whole mapping; defaults are Ocean's code defaults (both flags ``True``)."""

    enable_merge_entity: bool = True
    delete_dependent_entities: bool = True
    create_missing_related_entities: bool = True
    entity_deletion_threshold: float = attrs.field(default=0.9, validator=_threshold)
    resources: tuple[ResourceConfig, ...] = ()

    def resources_of_kind(self, kind: str) -> list[tuple[int, ResourceConfig]]:
        """Every ``(index, resource)`` whose kind is ``kind``, in config order."""
        return [(i, r) for i, r in enumerate(self.resources) if r.kind == kind]


ResourceClasses = Mapping[str, type[ResourceConfig]]


def parse_port_app_config(
    data: Any,
    *,
    resource_classes: ResourceClasses | None = None,
    source: str = "port app config",
) -> PortAppConfig:
    """Structure a port app config; each resource uses the class registered for its kind.

    Raises ``ConfigError`` listing every invalid field with its path (``$.resources[0].port``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} is invalid: expected an object, got {type(data).__name__}")
    raw_resources = data.get("resources", [])
    if not isinstance(raw_resources, list):
        raise ConfigError(f"{source} is invalid:\n  - expected a list @ $.resources")
    base = structure(
        {k: v for k, v in data.items() if k != "resources"}, PortAppConfig, source=source
    )
    classes = resource_classes or {}
    resources: list[ResourceConfig] = []
    problems: list[str] = []
    for index, raw in enumerate(raw_resources):
        kind = raw.get("kind") if isinstance(raw, Mapping) else None
        cls = classes.get(kind, ResourceConfig) if isinstance(kind, str) else ResourceConfig
        path = f"$.resources[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"expected an object @ {path}")
            continue
        try:
            resources.append(converter.structure(raw, cls))
        except cattrs.BaseValidationError as exc:
            problems.extend(describe_errors(exc, path))
        except (ValueError, TypeError) as exc:
            problems.append(f"{exc} @ {path}")
    if problems:
        raise ConfigError(f"{source} is invalid:\n  - " + "\n  - ".join(problems))
    return attrs.evolve(base, resources=tuple(resources))


def load_port_app_config(
    path: Path, *, resource_classes: ResourceClasses | None = None
) -> PortAppConfig:
    """Read a port app config from a YAML or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read port app config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    return parse_port_app_config(data, resource_classes=resource_classes, source=str(path))


# --- structuring of the mapping's unions --------------------------------------------------
# Mapping fields are unions of a jq string, None, UNSET, a search query or a mapping of those;
# each arm is recognised by the JSON type of the value, so errors say what was expected.


def _is_mapping_union(t: Any) -> bool:
    if typing.get_origin(t) not in (Union, types.UnionType):
        return False
    args = typing.get_args(t)
    return Unset in args or IngestSearchQuery in args or Rule in args


def _describe(arm: Any) -> str:
    if arm is type(None):
        return "null"
    if arm is str:
        return "a jq expression (string)"
    if arm is IngestSearchQuery:
        return "a search query object"
    if arm is Rule:
        return "a rule object"
    return "an object of jq expressions"


def _structure_mapping_union(value: Any, t: Any) -> Any:
    arms = [a for a in typing.get_args(t) if a is not Unset]
    if value is None and type(None) in arms:
        return None
    if isinstance(value, str) and str in arms:
        return value
    if isinstance(value, Mapping):
        if IngestSearchQuery in arms and ("combinator" in value or Rule not in arms):
            return converter.structure(value, IngestSearchQuery)
        if Rule in arms:
            return converter.structure(value, Rule)
        for arm in arms:
            if typing.get_origin(arm) in (Mapping, dict):
                return converter.structure(value, arm)
    expected = " or ".join(_describe(a) for a in arms)
    raise ValueError(f"expected {expected}, got {json.dumps(value)[:80]}")


converter.register_structure_hook_func(_is_mapping_union, _structure_mapping_union)


def _unstructure_unset(_: Unset) -> None:
    return None


converter.register_unstructure_hook(Unset, _unstructure_unset)
attrs.resolve_types(IngestSearchQuery)
