"""Port's semantics for stored blueprints and entities: create, upsert, merge, delete.

Pure: the routes parse the request and hand over plain values; every refusal is an ``ApiError``.
``EntityStore`` is a view over the emulator's own dicts (shared, never copied), so tests can
read and seed ``PortEmulator.blueprints`` and ``.entities`` directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from ._wire import ApiError, Key, Obj, as_object, now

MAX_IDENTIFIER_LENGTH = 1000

_IDENTIFIER = re.compile(r"^[A-Za-z0-9@_.+:\\/=-]+$")


@attrs.frozen
class UpsertOptions:
    """The query flags of Port's entity upsert routes."""

    upsert: bool
    merge: bool
    create_missing_related_entities: bool
    validation_only: bool


@attrs.frozen
class EntityStore:
    """Blueprints and entities (keyed by ``(blueprint, identifier)``) with Port's rules."""

    blueprints: dict[str, Obj]
    entities: dict[Key, Obj]

    def blueprint(self, bp: str) -> Obj:
        """The blueprint ``bp``, or a 404."""
        blueprint = self.blueprints.get(bp)
        if blueprint is None:
            raise ApiError(404, "not_found", f'Blueprint with identifier "{bp}" was not found')
        return blueprint

    def create_blueprint(self, body: Any) -> Obj:
        """Store a new blueprint from a request body; its identifier must be new."""
        body = as_object(body, "the blueprint")
        identifier = body.get("identifier")
        if not isinstance(identifier, str) or not identifier:
            raise ApiError(422, "invalid_identifier", "A blueprint needs a string 'identifier'")
        if identifier in self.blueprints:
            raise ApiError(409, "identifier_taken", f'Blueprint "{identifier}" already exists')
        schema = as_object(body.get("schema", {}), "schema")
        relations = as_object(body.get("relations", {}), "relations")
        for name, relation in relations.items():
            if not isinstance(relation, dict) or not isinstance(relation.get("target"), str):
                raise ApiError(422, "invalid_request", f'Relation "{name}" needs a "target"')
        stamp = now()
        blueprint = {
            **body,
            "title": body.get("title", identifier),
            "schema": {"properties": {}, "required": [], **schema},
            "relations": relations,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.blueprints[identifier] = blueprint
        return blueprint

    def upsert(
        self, bp: str, raw: Any, options: UpsertOptions, *, datasource: str
    ) -> tuple[Obj, bool]:
        """Validate and store one entity; the stored entity and whether it was created."""
        # Validate everything first, then write: a rejected entity leaves no stubs behind.
        blueprint = self.blueprint(bp)
        entity = as_object(raw, "an entity")
        identifier = entity.get("identifier")
        if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
            message = f"Identifier {identifier!r} must match {_IDENTIFIER.pattern}"
            raise ApiError(422, "invalid_identifier", message)
        if len(identifier) > MAX_IDENTIFIER_LENGTH:
            message = f"Identifier is {len(identifier)} characters; at most {MAX_IDENTIFIER_LENGTH}"
            raise ApiError(422, "invalid_identifier", message)
        key = (bp, identifier)
        existing = self.entities.get(key)
        if existing is not None and not options.upsert:
            message = f'Entity "{identifier}" of blueprint "{bp}" already exists'
            raise ApiError(409, "identifier_taken", message)
        properties = as_object(entity.get("properties") or {}, "properties")
        relations = as_object(entity.get("relations") or {}, "relations")
        _check_properties(bp, blueprint, properties)
        _check_relations(bp, blueprint, relations)
        merge_into = existing if options.merge else None
        if merge_into is not None:
            properties = {**merge_into["properties"], **properties}
            relations = {**merge_into["relations"], **relations}
        for name in blueprint.get("schema", {}).get("required", []):
            if name not in properties:
                message = f'Required property "{name}" is missing (blueprint "{bp}")'
                raise ApiError(422, "missing_required_property", message)
        missing: list[Key] = []
        for name, definition in blueprint.get("relations", {}).items():
            targets = _targets(relations.get(name))
            if definition.get("required") and not targets:
                message = f'Required relation "{name}" is missing (blueprint "{bp}")'
                raise ApiError(422, "missing_required_relation", message)
            for target in targets:
                target_key = (definition["target"], target)
                if target_key not in self.entities and target_key != key:
                    missing.append(target_key)
        for target_bp, target in missing:
            if not options.create_missing_related_entities or target_bp not in self.blueprints:
                message = f'Related entity "{target}" of blueprint "{target_bp}" was not found'
                raise ApiError(404, "not_found", message)
        stamp = now()
        stored: Obj = {"identifier": identifier, "title": entity.get("title"), "blueprint": bp}
        for field in ("icon", "team"):
            if field in entity:
                stored[field] = entity[field]
        stored.setdefault("team", [])
        if merge_into is not None:
            stored = {**merge_into, **{k: v for k, v in stored.items() if k in entity}}
            stored["blueprint"] = bp
        stored |= {"properties": properties, "relations": relations}
        stored |= {"createdAt": existing["createdAt"] if existing else stamp, "updatedAt": stamp}
        stored["datasource"] = datasource
        if options.validation_only:
            return stored, existing is None
        for target_bp, target in missing:
            stub: Obj = {"identifier": target, "title": None, "blueprint": target_bp, "team": []}
            stub |= {"properties": {}, "relations": {}, "createdAt": stamp, "updatedAt": stamp}
            self.entities[(target_bp, target)] = stub | {"datasource": datasource}
        self.entities[key] = stored
        return stored, existing is None

    def delete_one(self, bp: str, identifier: str, *, delete_dependents: bool) -> None:
        """Delete one entity: a 404 when absent, a 422 when dependents would be left behind."""
        key = (bp, identifier)
        if key not in self.entities:
            message = f'Entity "{identifier}" of blueprint "{bp}" was not found'
            raise ApiError(404, "not_found", message)
        doomed = self._deletable([key], delete_dependents)
        if key not in doomed:
            message = f'Entity "{identifier}" has dependent entities; use delete_dependents=true'
            raise ApiError(422, "has_dependents", message)
        self._remove(doomed)

    def delete_many(self, bp: str, ids: list[str], *, delete_dependents: bool) -> list[str]:
        """Delete what can be deleted of ``ids`` (absent ones are skipped); the deleted ids."""
        keys = [(bp, i) for i in dict.fromkeys(ids) if (bp, i) in self.entities]
        doomed = self._deletable(keys, delete_dependents)
        self._remove(doomed)
        return [i for b, i in keys if (b, i) in doomed]

    def _deletable(self, keys: list[Key], delete_dependents: bool) -> set[Key]:
        # Required relations make dependents: with delete_dependents they go too (transitively);
        # without, an entity is kept while a dependent outside the deleted set would remain.
        dependents: dict[Key, set[Key]] = {}
        for source_key, source in self.entities.items():
            for name, target_bp, required in _relation_defs(self.blueprints, source):
                if required:
                    for target in _targets(source["relations"].get(name)):
                        dependents.setdefault((target_bp, target), set()).add(source_key)
        doomed = set(keys)
        if delete_dependents:
            pending = list(keys)
            while pending:
                for dependent in dependents.get(pending.pop(), ()):
                    if dependent not in doomed:
                        doomed.add(dependent)
                        pending.append(dependent)
            return doomed
        changed = True
        while changed:
            blocked = {k for k in doomed if not dependents.get(k, set()) <= doomed}
            doomed -= blocked
            changed = bool(blocked)
        return doomed

    def _remove(self, doomed: set[Key]) -> None:
        for key in doomed:
            del self.entities[key]
        # Optional relations to a deleted entity are cleared, as Port does.
        for source in self.entities.values():
            for name, target_bp, _ in _relation_defs(self.blueprints, source):
                value = source["relations"].get(name)
                if isinstance(value, str) and (target_bp, value) in doomed:
                    source["relations"][name] = None
                elif isinstance(value, list):
                    kept = [v for v in value if (target_bp, v) not in doomed]
                    if len(kept) != len(value):
                        source["relations"][name] = kept


def _check_properties(bp: str, blueprint: Obj, properties: Obj) -> None:
    # A blueprint without declared properties accepts any: handy for minimal test blueprints.
    known = blueprint.get("schema", {}).get("properties") or {}
    unknown = [name for name in properties if known and name not in known]
    if unknown:
        message = f'Property "{unknown[0]}" is not in blueprint "{bp}"'
        raise ApiError(422, "unknown_property", message)


def _check_relations(bp: str, blueprint: Obj, relations: Obj) -> None:
    definitions = blueprint.get("relations", {})
    for name, value in relations.items():
        definition = definitions.get(name)
        if definition is None:
            raise ApiError(422, "unknown_relation", f'Relation "{name}" is not in blueprint "{bp}"')
        many = bool(definition.get("many"))
        ok = value is None or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
            if many
            else isinstance(value, str)
        )
        if not ok:
            shape = "a list of identifiers" if many else "an identifier string"
            raise ApiError(422, "invalid_relation", f'Relation "{name}" must be {shape} or null')


def _targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _relation_defs(blueprints: dict[str, Obj], entity: Obj) -> Iterable[tuple[str, str, bool]]:
    blueprint = blueprints.get(entity["blueprint"], {})
    for name, definition in blueprint.get("relations", {}).items():
        yield name, definition["target"], bool(definition.get("required"))
