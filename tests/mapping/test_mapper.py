"""Ocean's mapping semantics, table-driven: selector, fields, itemsToParse, errors, deletions."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml

from ocean_trio import MappingError
from ocean_trio.mapping import (
    CompiledPortAppConfig,
    ResourceMapper,
    live_event_changes,
    parse_port_app_config,
    register_raw_changes,
    unregister_raw_changes,
)
from ocean_trio.mapping._items_to_parse import deletion_path

# The example of ocean-behavior.md §4.1 (Port's docs): comments of an issue, one entity each.
DOCS_EXAMPLE = """
resources:
  - kind: issue
    selector: {query: '.fields.status.name != "Done"'}
    port:
      itemsToParse: .fields.comments
      entity:
        mappings:
          identifier: .item.id
          blueprint: '"comment"'
          title: .item.body[0:40]
          properties: {author: .item.author.email}
          relations:
            issue: .key
            owner: {combinator: '"and"', rules: [{property: '"email"', operator: '"="', value: .item.author.email}]}
"""


def mapper(mappings: dict[str, Any], query: str = "true", **port: Any) -> ResourceMapper:
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "k",
                    "selector": {"query": query},
                    "port": {"entity": {"mappings": mappings}, **port},
                }
            ]
        }
    )
    return ResourceMapper(config.resources[0])


BASE = {"identifier": ".id", "blueprint": '"svc"'}


@pytest.mark.parametrize(
    ("mappings", "item", "expected"),
    [
        # literals need inner quotes; single-quoted jq strings are rewritten to double quotes
        (BASE, {"id": "a"}, {"identifier": "a", "blueprint": "svc"}),
        ({**BASE, "title": ".name | ascii_upcase"}, {"id": "a", "name": "x"}, {"title": "X"}),
        ({**BASE, "title": "'fixed'"}, {"id": "a"}, {"title": "fixed"}),
        # first output only
        ({**BASE, "title": ".tags[]"}, {"id": "a", "tags": ["p", "q"]}, {"title": "p"}),
        # no output and missing keys give null
        ({**BASE, "title": "empty"}, {"id": "a"}, {"title": None}),
        ({**BASE, "properties": {"url": ".html_url"}}, {"id": "a"}, {"properties": {"url": None}}),
        # a runtime error costs that field only
        (
            {**BASE, "title": ".n | tonumber", "icon": '"Jira"'},
            {"id": "a", "n": "nan?"},
            {"title": None, "icon": "Jira"},
        ),
        # non-string results are kept as JSON values
        (
            {**BASE, "properties": {"n": ".n", "obj": "{a: .n}", "list": "[.n, 1]"}},
            {"id": "a", "n": 2},
            {"properties": {"n": 2, "obj": {"a": 2}, "list": [2, 1]}},
        ),
        # search relations: every leaf is jq, evaluated against the item
        (
            {
                **BASE,
                "relations": {
                    "owner": {
                        "combinator": '"and"',
                        "rules": [{"property": '"email"', "operator": '"="', "value": ".mail"}],
                    },
                    "repo": ".repo",
                },
            },
            {"id": "a", "mail": "m@x", "repo": "r"},
            {
                "relations": {
                    "owner": {
                        "combinator": "and",
                        "rules": [{"property": "email", "operator": "=", "value": "m@x"}],
                    },
                    "repo": "r",
                }
            },
        ),
        # dates are given to jq as ISO strings
        (
            {**BASE, "properties": {"at": ".at"}},
            {"id": "a", "at": datetime.date(2026, 1, 2)},
            {"properties": {"at": "2026-01-02"}},
        ),
    ],
)
def test_fields_take_the_first_output_or_null(
    mappings: dict[str, Any], item: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = mapper(mappings).map_items([item])
    [entity] = result.passed
    port = entity.to_port()
    assert {k: port[k] for k in expected} == expected
    # fields the mapping does not set are absent, not null
    assert set(port) == {"identifier", "blueprint", *mappings}


def test_null_fields_are_reported_as_misconfigurations() -> None:
    result = mapper({**BASE, "properties": {"url": ".html_url", "ok": ".id"}}).map_items(
        [{"id": "a"}]
    )
    assert result.misconfigurations == {"properties.url": ".html_url"}
    assert result.errors == []


@pytest.mark.parametrize(
    ("query", "parse_all", "passed", "failed"),
    [
        (".ok", False, ["a"], []),
        (".ok", True, ["a"], ["b"]),
        ("true", False, ["a", "b"], []),
        ("false", True, [], ["a", "b"]),
        ('.name | startswith("a")', True, ["a"], ["b"]),
    ],
)
def test_selector_splits_passed_and_failed(
    query: str, parse_all: bool, passed: list[str], failed: list[str]
) -> None:
    items = [{"id": "a", "name": "a", "ok": True}, {"id": "b", "name": "b", "ok": False}]
    result = mapper(BASE, query).map_items(items, parse_all=parse_all)
    assert [e.identifier for e in result.passed] == passed
    assert [e.identifier for e in result.failed] == failed


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (".name", 'must give a boolean, got "a"'),
        ("empty", "must give a boolean, got null"),
        ('error("boom")', "boom"),
    ],
)
def test_a_selector_that_is_not_boolean_is_an_item_error(query: str, message: str) -> None:
    result = mapper(BASE, query).map_items([{"id": "a", "name": "a"}, {"id": "b", "name": "b"}])
    assert result.passed == result.failed == []
    assert [(e.index, e.field) for e in result.errors] == [(0, "selector"), (1, "selector")]
    assert message in result.errors[0].message


@pytest.mark.parametrize("identifier", [".missing", '""', "false", "null"])
def test_items_with_empty_identifier_or_blueprint_are_dropped(identifier: str) -> None:
    result = mapper({"identifier": identifier, "blueprint": '"svc"'}).map_items([{"id": "a"}])
    assert (result.passed, result.dropped) == ([], 1)
    result = mapper({"identifier": ".id", "blueprint": ".bp"}).map_items([{"id": "a"}])
    assert (result.passed, result.dropped) == ([], 1)


def test_environment_access_can_be_hidden_from_jq(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCEAN_TRIO_TEST_SECRET", "s3cret")
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "k",
                    "selector": {"query": "true"},
                    "port": {
                        "entity": {"mappings": {**BASE, "title": "env.OCEAN_TRIO_TEST_SECRET"}}
                    },
                }
            ]
        }
    )
    open_ = ResourceMapper(config.resources[0], allow_env=True).map_items([{"id": "a"}])
    hidden = ResourceMapper(config.resources[0], allow_env=False).map_items([{"id": "a"}])
    assert open_.passed[0].title == "s3cret"
    assert hidden.passed[0].title is None


def test_invalid_jq_is_rejected_when_compiled_naming_the_field() -> None:
    with pytest.raises(
        MappingError, match=r"resources\[0\] \(kind k\): properties.url: invalid jq"
    ):
        mapper({**BASE, "properties": {"url": ".a[["}})
    with pytest.raises(MappingError, match=r"selector: invalid jq"):
        mapper(BASE, query="| nope")


# --- itemsToParse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "path"),
    [
        (".fields.comments", ".fields.comments"),
        ("(.items)", ".items"),
        ('.["weird key"]', '.["weird key"]'),
        (". as $root | .values", ".values"),
        (".a.b // []", ".a.b"),
        ("[1, 2]", None),
    ],
)
def test_the_array_removed_from_the_parent_is_the_first_path(
    expression: str, path: str | None
) -> None:
    assert deletion_path(expression) == path


def test_docs_example_items_to_parse_maps_each_comment() -> None:
    compiled = CompiledPortAppConfig.compile(parse_port_app_config(yaml.safe_load(DOCS_EXAMPLE)))
    issue = {
        "key": "PROJ-1",
        "fields": {
            "status": {"name": "Open"},
            "comments": [
                {"id": "c1", "body": "first comment", "author": {"email": "a@x"}},
                {"id": "c2", "body": "x" * 50, "author": {"email": "b@x"}},
            ],
        },
    }
    result = compiled.mappers[0].map_items([issue])
    assert [e.to_port() for e in result.passed] == [
        {
            "identifier": "c1",
            "blueprint": "comment",
            "title": "first comment",
            "properties": {"author": "a@x"},
            "relations": {
                "issue": "PROJ-1",
                "owner": {
                    "combinator": "and",
                    "rules": [{"property": "email", "operator": "=", "value": "a@x"}],
                },
            },
        },
        {
            "identifier": "c2",
            "blueprint": "comment",
            "title": "x" * 40,
            "properties": {"author": "b@x"},
            "relations": {
                "issue": "PROJ-1",
                "owner": {
                    "combinator": "and",
                    "rules": [{"property": "email", "operator": "=", "value": "b@x"}],
                },
            },
        },
    ]


@pytest.mark.parametrize("top_level_transform", [True, False])
def test_items_to_parse_merges_parent_and_element(top_level_transform: bool) -> None:
    m = mapper(
        {
            **BASE,
            "identifier": ".member.id",
            "properties": {"team": ".team", "all": ".members | length"},
        },
        itemsToParse=".members",
        itemsToParseName="member",
        itemsToParseTopLevelTransform=top_level_transform,
    )
    result = m.map_items([{"team": "t", "members": [{"id": "m1"}, {"id": "m2"}]}])
    assert [e.identifier for e in result.passed] == ["m1", "m2"]
    # with the top-level transform the array is removed from the parent first (.members → null)
    expected_all = 0 if top_level_transform else 2
    assert [e.properties for e in result.passed] == [{"team": "t", "all": expected_all}] * 2


@pytest.mark.parametrize(
    ("expression", "message"),
    [(".members", "gave a string, not an array"), ("(.count)", "gave a number, not an array")],
)
def test_items_to_parse_that_is_not_an_array_skips_the_item_with_a_warning(
    expression: str, message: str
) -> None:
    m = mapper(BASE, itemsToParse=expression)
    result = m.map_items(
        [{"id": "a", "members": "nope", "count": 3}, {"id": "b", "members": [], "count": []}]
    )
    assert (result.passed, result.errors) == ([], [])
    [warning] = result.warnings
    assert (warning.index, warning.field) == (0, "itemsToParse")
    assert message in warning.message


def test_items_to_parse_without_a_derivable_path_skips_every_item() -> None:
    m = mapper({**BASE, "identifier": ".item"}, itemsToParse="[1, 2]")
    result = m.map_items([{"id": "a"}])
    assert (result.passed, result.errors) == ([], [])
    assert "'. | del(.)' of itemsToParse '[1, 2]' gave null" in result.warnings[0].message
    kept = mapper(
        {**BASE, "identifier": ".item | tostring"},
        itemsToParse="[1, 2]",
        itemsToParseTopLevelTransform=False,
    ).map_items([{"id": "a"}])
    assert [e.identifier for e in kept.passed] == ["1", "2"]


# --- changes: live events, register_raw, unregister_raw -----------------------------------

TWO_RESOURCES = {
    "resources": [
        {
            "kind": "item",
            "selector": {"query": '.status != "archived"'},
            "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"item"'}}},
        },
        {
            "kind": "item",
            "selector": {"query": '.priority == "high"'},
            "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"urgent"'}}},
        },
    ]
}


def keys(entities: Any) -> list[tuple[str, str]]:
    return [e.key for e in entities]


def test_live_event_updated_items_failing_the_selector_are_deleted() -> None:
    compiled = CompiledPortAppConfig.compile(parse_port_app_config(TWO_RESOURCES))
    items = [{"id": "1", "status": "open", "priority": "low"}]
    changes, issues = live_event_changes(compiled, [(0, items, []), (1, items, [])])
    assert keys(changes.upserts) == [("item", "1")]
    assert keys(changes.deletes) == [("urgent", "1")]
    assert issues == []


def test_live_event_deleted_items_are_deleted_only_where_they_pass_the_selector() -> None:
    compiled = CompiledPortAppConfig.compile(parse_port_app_config(TWO_RESOURCES))
    items = [{"id": "1", "status": "archived", "priority": "high"}]
    changes, _ = live_event_changes(compiled, [(0, [], items), (1, [], items)])
    assert keys(changes.upserts) == []
    assert keys(changes.deletes) == [("urgent", "1")]


def test_an_upsert_wins_over_a_delete_of_the_same_entity() -> None:
    compiled = CompiledPortAppConfig.compile(parse_port_app_config(TWO_RESOURCES))
    old = {"id": "1", "status": "open"}
    changes, _ = live_event_changes(compiled, [(0, [old], [old])])
    assert (keys(changes.upserts), keys(changes.deletes)) == ([("item", "1")], [])


def test_search_identifier_entities_are_never_deleted() -> None:
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "item",
                    "selector": {"query": ".keep"},
                    "port": {
                        "entity": {
                            "mappings": {
                                "identifier": {
                                    "combinator": '"and"',
                                    "rules": [
                                        {"property": '"x"', "operator": '"="', "value": ".id"}
                                    ],
                                },
                                "blueprint": '"item"',
                            }
                        }
                    },
                }
            ]
        }
    )
    compiled = CompiledPortAppConfig.compile(config)
    changes, _ = live_event_changes(compiled, [(0, [{"id": "1", "keep": False}], [])])
    assert not changes
    changes, _ = unregister_raw_changes(compiled, "item", [{"id": "1", "keep": True}])
    assert not changes


def test_register_and_unregister_raw() -> None:
    compiled = CompiledPortAppConfig.compile(parse_port_app_config(TWO_RESOURCES))
    items = [{"id": "1", "status": "open", "priority": "high"}, {"id": "2", "status": "archived"}]
    changes, _ = register_raw_changes(compiled, "item", items)
    assert keys(changes.upserts) == [("item", "1"), ("urgent", "1")]
    assert keys(changes.deletes) == [("item", "2"), ("urgent", "2")]
    changes, _ = unregister_raw_changes(compiled, "item", items)
    assert (keys(changes.upserts), keys(changes.deletes)) == ([], [("item", "1"), ("urgent", "1")])
    assert not register_raw_changes(compiled, "other", items)[0]


def test_write_options_come_from_the_config() -> None:
    config = parse_port_app_config({**TWO_RESOURCES, "enableMergeEntity": False})
    changes, _ = register_raw_changes(
        CompiledPortAppConfig.compile(config), "item", [{"id": "1", "status": "open"}]
    )
    assert changes.options.merge is False
    assert changes.options.delete_dependent_entities is True
