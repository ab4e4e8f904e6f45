"""Item-by-item parity with Ocean's JQ entity processor (port_ocean/core/handlers/entity_processor).

Each case states what Ocean's code does with the item; the comments name the Ocean function.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest

from ocean_trio import MappingError
from ocean_trio.mapping import (
    CompiledPortAppConfig,
    MappingIssue,
    live_event_changes,
    parse_port_app_config,
)
from ocean_trio.mapping._items_to_parse import deletion_path

from .test_mapper import BASE, mapper

# --- fields: a jq runtime error is a warning, the field is null, the entity is kept ----------


@pytest.mark.parametrize(
    ("expression", "item", "message"),
    [
        (".tags[]", {"id": "a", "tags": None}, "Cannot iterate over null"),
        (".n | tonumber", {"id": "a", "n": "nan?"}, "cannot be parsed as a number"),
        (".n + 1", {"id": "a", "n": "x"}, "cannot be added"),
    ],
)
def test_a_runtime_error_in_a_field_is_a_warning_and_the_field_is_null(
    expression: str, item: dict[str, Any], message: str
) -> None:
    # _search: any exception is logged as a WARNING ("Search failed for field ...") → None.
    result = mapper({**BASE, "title": expression, "icon": '"Jira"'}).map_items([item])
    assert result.errors == []
    [entity] = result.passed
    assert (entity.identifier, entity.title, entity.icon) == ("a", None, "Jira")
    assert result.misconfigurations == {"title": expression}
    [warning] = result.warnings
    assert (warning.index, warning.field) == (0, "title")
    assert message in warning.message


def test_a_runtime_error_in_the_identifier_drops_the_item_without_an_error() -> None:
    result = mapper({"identifier": ".id | tonumber", "blueprint": '"svc"'}).map_items([{"id": "x"}])
    assert (result.passed, result.errors, result.dropped) == ([], [], 1)
    assert [(w.index, w.field) for w in result.warnings] == [(0, "identifier")]


def test_runtime_errors_in_properties_and_search_rules_are_warnings() -> None:
    m = mapper(
        {
            **BASE,
            "properties": {"n": ".n | tonumber", "ok": ".id"},
            "relations": {
                "owner": {
                    "combinator": '"and"',
                    "rules": [{"property": '"email"', "operator": '"="', "value": ".mails[]"}],
                }
            },
        }
    )
    result = m.map_items([{"id": "a", "n": "x", "mails": 3}])
    assert result.errors == []
    [entity] = result.passed
    assert entity.properties == {"n": None, "ok": "a"}
    assert entity.relations == {
        "owner": {
            "combinator": "and",
            "rules": [{"property": "email", "operator": "=", "value": None}],
        }
    }
    # Ocean's paths: dotted, without list indexes (_search_as_object)
    assert [w.field for w in result.warnings] == ["properties.n", "relations.owner.rules.value"]
    assert result.misconfigurations == {
        "properties.n": ".n | tonumber",
        "relations.owner.rules.value": ".mails[]",
    }


# --- identifier and blueprint: only falsiness matters (_parse_items) ------------------------


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (".n", 5),
        ("{a: .id}", {"a": "x"}),
        ("[.id]", ["x"]),
        ("true", True),
        ('"0"', "0"),
    ],
)
def test_any_truthy_identifier_is_kept_as_is(identifier: str, expected: Any) -> None:
    result = mapper({"identifier": identifier, "blueprint": '"svc"'}).map_items(
        [{"id": "x", "n": 5}]
    )
    assert (result.errors, result.dropped) == ([], 0)
    assert [e.identifier for e in result.passed] == [expected]


@pytest.mark.parametrize(
    ("identifier", "blueprint"),
    [("0", '"svc"'), ("[]", '"svc"'), ("{}", '"svc"'), (".id", '""'), (".id", "0"), (".id", "[]")],
)
def test_a_falsy_identifier_or_blueprint_drops_the_item_without_an_error(
    identifier: str, blueprint: str
) -> None:
    result = mapper({"identifier": identifier, "blueprint": blueprint}).map_items([{"id": "x"}])
    assert (result.passed, result.errors, result.warnings, result.dropped) == ([], [], [], 1)


def test_a_truthy_non_string_blueprint_is_kept() -> None:
    result = mapper({"identifier": ".id", "blueprint": "7"}).map_items([{"id": "x"}])
    assert [(e.identifier, e.blueprint) for e in result.passed] == [("x", 7)]


# --- icon and team: Ocean's pydantic v1 Entity model (icon: str | None, team: str | None |
# list[Any] | dict[str, Any]; pydantic v1's str coerces int, float and bool with str()) -------


@pytest.mark.parametrize(
    ("value", "icon"),
    [(5, "5"), (True, "True"), (False, "False"), (1.5, "1.5"), ("Jira", "Jira"), (None, None)],
)
def test_icon_is_coerced_to_a_string(value: Any, icon: Any) -> None:
    result = mapper({**BASE, "icon": ".v"}).map_items([{"id": "a", "v": value}])
    assert [e.icon for e in result.passed] == [icon]
    assert result.errors == []


@pytest.mark.parametrize(
    ("value", "team"),
    [
        (5, "5"),
        (True, "True"),
        (1.5, "1.5"),
        ("t", "t"),
        (None, None),
        (["a", 1], ["a", 1]),
        ({"combinator": "and", "rules": []}, {"combinator": "and", "rules": []}),
    ],
)
def test_team_is_coerced_like_ocean(value: Any, team: Any) -> None:
    result = mapper({**BASE, "team": ".v"}).map_items([{"id": "a", "v": value}])
    assert [e.team for e in result.passed] == [team]
    assert result.errors == []


@pytest.mark.parametrize("value", [{"a": 1}, ["a"], []])
def test_an_icon_the_entity_model_refuses_is_an_entity_error(value: Any) -> None:
    result = mapper({**BASE, "icon": ".v"}).map_items(
        [{"id": "a", "v": value}, {"id": "b", "v": "ok"}], parse_all=True
    )
    assert [e.identifier for e in result.passed] == ["b"]
    [error] = result.errors
    assert (error.index, error.field) == (0, "icon")
    assert "string" in error.message


def test_a_refused_icon_on_a_dropped_item_only_drops_it() -> None:
    # the identifier/blueprint check comes before Entity.parse_obj
    result = mapper({**BASE, "icon": ".v"}).map_items([{"v": {"a": 1}}])
    assert (result.errors, result.dropped) == ([], 1)


# --- the raw item: only dates and datetimes are made JSON-compatible (make_json_compatible) ----


def test_a_raw_item_jq_cannot_take_is_an_item_error() -> None:
    result = mapper(BASE).map_items([{"id": "a", "at": datetime.time(1, 2)}, {"id": "b"}])
    assert [e.identifier for e in result.passed] == ["b"]
    assert [(e.index, e.field) for e in result.errors] == [(0, "item")]


def test_a_raw_item_with_a_date_is_made_json_compatible_as_in_ocean() -> None:
    # only then are keys made strings with str(): True → "True" (json.dumps would say "true")
    m = mapper({**BASE, "title": '.["True"]', "properties": {"at": ".at"}})
    result = m.map_items([{"id": "a", True: "t", "at": datetime.datetime(2026, 1, 2, 3, 4)}])
    [entity] = result.passed
    assert (entity.title, entity.properties) == ("t", {"at": "2026-01-02T03:04:00"})
    plain = m.map_items([{"id": "a", True: "t"}])
    assert plain.passed[0].title is None


# --- itemsToParse: the path del() removes (extract_jq_deletion_path_revised) ---------------


@pytest.mark.parametrize(
    ("expression", "path"),
    [
        # Ocean's own test table
        (".file.content", ".file.content"),
        ("(.file.content)", ".file.content"),
        (". as $all | .file.content", ".file.content"),
        ("$items | .file.content", ".file.content"),
        (". | .file.content", ".file.content"),
        (".file.content // {}", ".file.content"),
        (".file.content // []", ".file.content"),
        (".[0].key", ".[0].key"),
        (".[0].[1].key", ".[0].[1].key"),
        (".file[0].content", ".file[0].content"),
        (".file.[0].content", ".file.[0].content"),
        (". as $all | ($all | .file.content) as $items | $items", ".file.content"),
        ("(. as $all | .file.content)", ".file.content"),
        ("$items", None),
        (".", None),
        (". as $root", None),
        ("(.file.content", None),
        ("  .file.content  ", ".file.content"),
        (".first.path | .second.path", ".first.path"),
        ('.["key"].value', '.["key"].value'),
        # a segment counts only when it starts with a path (re.match, not re.search)
        ("map(.x)", None),
        ("select(.ok) | .items", ".items"),
        ("[.members[] | select(.active)]", None),
        ("[.members[] | .x]", ".x"),
        ('"x" + .a', None),
        # parentheses: the text up to the first closing one
        ("(.a | .b) | .c", ".a"),
        ("(.a // []) | map(.x)", ".a"),
        # the path stops where the regex stops
        (".a[] | .b", ".a"),
        (".a | length", ".a"),
    ],
)
def test_the_deletion_path_is_oceans(expression: str, path: str | None) -> None:
    assert deletion_path(expression) == path


def test_items_to_parse_without_a_leading_path_skips_every_item_with_a_warning() -> None:
    # Ocean derives no path from "[.members[] | select(.active)]", so del(.) → null → skipped
    m = mapper({**BASE, "identifier": ".item.id"}, itemsToParse="[.members[] | select(.active)]")
    result = m.map_items([{"members": [{"id": "m1", "active": True}]}])
    assert (result.passed, result.errors) == ([], [])
    [warning] = result.warnings
    assert (warning.index, warning.field) == (0, "itemsToParse")
    kept = mapper(
        {**BASE, "identifier": ".item.id"},
        itemsToParse="[.members[] | select(.active)]",
        itemsToParseTopLevelTransform=False,
    ).map_items([{"members": [{"id": "m1", "active": True}, {"id": "m2"}]}])
    assert [e.identifier for e in kept.passed] == ["m1"]


def test_items_to_parse_removes_the_path_ocean_derives() -> None:
    # "select(.ok) | .items": Ocean removes .items (not .ok) from the parent
    m = mapper(
        {**BASE, "identifier": ".item", "properties": {"ok": ".ok", "items": ".items"}},
        itemsToParse="select(.ok) | .items",
    )
    result = m.map_items([{"ok": True, "items": ["a"]}])
    assert [(e.identifier, e.properties) for e in result.passed] == [
        ("a", {"ok": True, "items": None})
    ]


# --- itemsToParse: a non-array or a failure is a warning, the raw item yields nothing -------


@pytest.mark.parametrize(
    ("expression", "item"),
    [
        (".members", {"members": "nope"}),
        (".members", {}),
        ("(.count)", {"count": 3}),
        (".members | map(.)", {"members": "x"}),
    ],
)
def test_items_to_parse_giving_no_array_is_a_warning(expression: str, item: Any) -> None:
    m = mapper({**BASE, "identifier": ".item"}, itemsToParse=expression)
    result = m.map_items([item, {"members": ["m"], "count": ["m"]}])
    assert result.errors == []
    assert [(w.index, w.field) for w in result.warnings] == [(0, "itemsToParse")]


def test_items_to_parse_on_a_raw_item_that_is_not_an_object() -> None:
    m = mapper({**BASE, "identifier": ".item"}, itemsToParse=".[0]")
    # del(.[0]) leaves a list, which cannot be merged: Ocean raises (TypeError)
    result = m.map_items([[["a"]]])
    assert [(e.index, e.field) for e in result.errors] == [(0, "itemsToParse")]
    # an empty array merges nothing, so nothing fails
    assert m.map_items([[[]]]).errors == []


# --- invalid jq: the message points into the user's expression ------------------------------


@pytest.mark.parametrize(
    ("mappings", "query", "field", "fragment"),
    [
        ({**BASE, "properties": {"url": ".a[["}}, "true", "properties.url", "column 4"),
        ({**BASE, "title": ".a | .b[["}, "true", "title", "column 9"),
        ({**BASE, "title": ".a | foo(1)"}, "true", "title", "foo/1 is not defined"),
        (BASE, "| nope", "selector", "column 1"),
        (BASE, ".a == (1", "selector", "column 8"),
    ],
)
def test_invalid_jq_points_at_the_users_expression(
    mappings: dict[str, Any], query: str, field: str, fragment: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapper(mappings, query)
    message = str(caught.value)
    assert message.startswith(f"resources[0] (kind k): {field}: invalid jq")
    assert fragment in message
    assert "__first" not in message
    assert "<top-level>" not in message


def test_invalid_items_to_parse_points_at_its_expression() -> None:
    with pytest.raises(MappingError, match=r"itemsToParse: invalid jq.*column 4") as caught:
        mapper(BASE, itemsToParse=".a |")
    assert "__first" not in str(caught.value)


def test_jq_comments_are_accepted_as_in_ocean() -> None:
    m = mapper({**BASE, "title": ".name # the display name", "icon": ".tags[] # first tag"})
    result = m.map_items([{"id": "a", "name": "n", "tags": ["t", "u"]}])
    assert [(e.title, e.icon) for e in result.passed] == [("n", "t")]


def test_warnings_and_errors_are_separate_lists() -> None:
    result = mapper({**BASE, "title": ".n | tonumber"}, ".ok").map_items(
        [{"id": "a", "n": "x", "ok": True}, {"id": "b", "ok": "yes"}]
    )
    assert [(w.index, w.field) for w in result.warnings] == [(0, "title")]
    assert [(e.index, e.field) for e in result.errors] == [(1, "selector")]
    assert isinstance(result.warnings[0], MappingIssue)
    assert set(result.to_json()) == {"passed", "failed", "errors", "warnings"}


def test_live_events_keep_errors_for_the_caller_and_log_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "k",
                    "selector": {"query": ".ok"},
                    "port": {"entity": {"mappings": {**BASE, "title": ".n | tonumber"}}},
                }
            ]
        }
    )
    compiled = CompiledPortAppConfig.compile(config)
    items = [{"id": "a", "n": "x", "ok": True}, {"id": "b", "ok": "yes"}]
    with caplog.at_level(logging.WARNING, logger="ocean_trio.mapping"):
        changes, issues = live_event_changes(compiled, [(0, items, [])])
    assert [e.key for e in changes.upserts] == [("svc", "a")]
    assert [(i.index, i.field) for i in issues] == [(1, "selector")]
    [record] = caplog.records
    assert "resources[0] (kind k): item 0: title:" in record.getMessage()


def test_a_derived_deletion_path_that_is_not_valid_jq_skips_every_item() -> None:
    # '.["a]b"]' is valid jq; Ocean's regex cuts the path at the first "]" (del(.["a])), jq
    # refuses that, its search gives null and every raw item is skipped with a warning.
    m = mapper({**BASE, "identifier": ".item"}, itemsToParse='.["a]b"]')
    result = m.map_items([{"a]b": ["x"]}])
    assert (result.passed, result.errors) == ([], [])
    [warning] = result.warnings
    assert "gave null" in warning.message
    kept = mapper(
        {**BASE, "identifier": ".item"},
        itemsToParse='.["a]b"]',
        itemsToParseTopLevelTransform=False,
    ).map_items([{"a]b": ["x"]}])
    assert [e.identifier for e in kept.passed] == ["x"]


def test_misconfiguration_paths_are_oceans() -> None:
    m = mapper(
        {
            **BASE,
            "title": None,
            "team": {
                "combinator": '"or"',
                "rules": [
                    {"property": '"a"', "operator": '"="', "value": ".a"},
                    {"property": '"b"', "operator": '"="', "value": ".b"},
                ],
            },
        }
    )
    result = m.map_items([{"id": "x"}])
    [entity] = result.passed
    assert entity.title is None
    # a field set to null is a misconfiguration; list items share a path, the last one wins
    assert result.misconfigurations == {"title": "null", "team.rules.value": ".b"}
    assert (result.errors, result.warnings) == ([], [])
