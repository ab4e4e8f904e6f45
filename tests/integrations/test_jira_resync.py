"""Ocean's Jira resync handlers on ocean-trio: only their imports changed, and they page
through the Jira emulator as through Jira Cloud.

The handlers are driven directly (no engine), inside ``event_context`` as a resync runs
them. Page boundaries are Ocean's page size, 50: the emulator holds 0, 1, 50 and 120 objects.
"""

from __future__ import annotations

import ast
import gc
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from ocean_trio import PortAppConfig, WebhookEvent, load_integration
from ocean_trio._integration import Integration, using
from ocean_trio.mapping import (
    CompiledPortAppConfig,
    live_event_changes,
    load_port_app_config,
    parse_port_app_config,
)
from ocean_trio.resync._context import EventContext, event_context
from ocean_trio.testing import make_settings

from .jira_emulator import JiraEmulator, serve_jira_emulator
from .mapped import by_key, resync_entities

JIRA_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "jira"
SHIPPED = JIRA_ROOT / ".port" / "resources" / "port-app-config.yml"
# Ocean's integrations/jira/main.py at port-labs/ocean@607beada0e3ad5a482ee929ed0399d8761d7989f
# (Apache-2.0), kept with the tests: the resync handlers are diffed against it.
OCEAN_MAIN = Path(__file__).parent / "data" / "ocean-jira-main.py.txt"
PORTED = ("on_resync_projects", "on_resync_issues", "on_resync_users")
TIMEOUT = 10
EMAIL, TOKEN = "bot@example.com", "api-token"
Batches = list[list[dict[str, Any]]]


# --- only the imports changed -------------------------------------------------------------


def handler_sources(source: str) -> dict[str, str]:
    """The text of each ported handler, from its first decorator to its last line."""
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name in PORTED:
            first = min(d.lineno for d in node.decorator_list)
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


def test_resync_handlers_are_oceans_line_for_line() -> None:
    ours = handler_sources((JIRA_ROOT / "main.py").read_text(encoding="utf-8"))
    oceans = handler_sources(OCEAN_MAIN.read_text(encoding="utf-8"))
    assert sorted(oceans) == sorted(PORTED)
    assert ours == oceans


def test_the_handlers_are_registered_for_their_kinds() -> None:
    integration = load_integration(JIRA_ROOT)
    names = {kind: [h.__name__ for h in hs] for kind, hs in integration.resync_handlers.items()}
    assert names == {
        "project": ["on_resync_projects"],
        "issue": ["on_resync_issues"],
        "user": ["on_resync_users"],
    }
    assert {k: c.__name__ for k, c in integration.resource_config_classes.items()} == {
        "issue": "JiraIssueConfig",
        "project": "JiraProjectResourceConfig",
    }


# --- driving the handlers -----------------------------------------------------------------


@asynccontextmanager
async def jira(emulator: JiraEmulator, tmp_path: Path) -> AsyncIterator[Integration]:
    """The Jira integration, its settings pointing at ``emulator`` served on loopback."""
    async with serve_jira_emulator(emulator) as url:
        integration = load_integration(JIRA_ROOT)
        config = {"jiraHost": url, "atlassianUserEmail": EMAIL, "atlassianUserToken": TOKEN}
        integration.settings = make_settings(tmp_path, integration={"config": config})
        yield integration


def mapping(integration: Integration, yaml_text: str | None = None) -> PortAppConfig:
    """The shipped mapping, or ``yaml_text``, parsed with the integration's resource classes."""
    classes = integration.resource_config_classes
    if yaml_text is None:
        return load_port_app_config(SHIPPED, resource_classes=classes)
    return parse_port_app_config(yaml.safe_load(yaml_text), resource_classes=classes)


def of_kind(config: PortAppConfig, kind: str) -> int:
    [(index, _)] = config.resources_of_kind(kind)
    return index


def handler_of(integration: Integration, kind: str) -> Callable[[str], Any]:
    [handler] = integration.resync_handlers[kind]
    return handler


async def resync(integration: Integration, config: PortAppConfig, kind: str) -> Batches:
    """Every batch the handler of ``kind`` yields for that resource of ``config``."""
    resource = config.resources[of_kind(config, kind)]
    context = EventContext(port_app_config=config, resource_config=resource)
    with using(integration), event_context(context):
        async with aclosing(handler_of(integration, kind)(kind)) as batches:
            return [batch async for batch in batches]


def sizes(batches: Batches) -> list[int]:
    return [len(batch) for batch in batches]


def requests_to(emulator: JiraEmulator, path: str) -> list[dict[str, str]]:
    return [query for seen, query in emulator.requests if seen == path]


BOUNDARIES = [
    pytest.param(0, [], id="empty"),
    pytest.param(1, [1], id="one"),
    pytest.param(50, [50], id="one-full-page"),
    pytest.param(120, [50, 50, 20], id="several-pages"),
]


@pytest.mark.parametrize(("count", "expected"), BOUNDARIES)
async def test_projects_page_by_start_at_until_the_total(
    tmp_path: Path, count: int, expected: list[int]
) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    for n in range(count):
        emulator.add_project(f"P{n:03d}", f"Project {n}")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            batches = await resync(integration, mapping(integration), "project")
    assert sizes(batches) == expected
    assert [p["key"] for b in batches for p in b] == [f"P{n:03d}" for n in range(count)]
    # Ocean's loop: startAt moves by the page's length and stops once it reaches ``total``
    # (50 of 50: no request for an empty page); an empty first page stops it too.
    queries = requests_to(emulator, "/rest/api/3/project/search")
    assert [q["startAt"] for q in queries] == [str(50 * n) for n in range(max(1, len(expected)))]
    assert {(q["maxResults"], q["expand"]) for q in queries} == {("50", "lead")}
    assert all("lead" in p and "insight" not in p for b in batches for p in b)


@pytest.mark.parametrize(("count", "expected"), BOUNDARIES)
async def test_users_page_by_start_at_until_an_empty_page(
    tmp_path: Path, count: int, expected: list[int]
) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    for n in range(count):
        emulator.add_user(f"acc-{n}", f"User {n}", email=f"u{n}@example.com")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            batches = await resync(integration, mapping(integration), "user")
    assert sizes(batches) == expected
    assert [u["accountId"] for b in batches for u in b] == [f"acc-{n}" for n in range(count)]
    # users/search is a bare array without ``total``: Ocean reads until a page is empty
    starts = [q["startAt"] for q in requests_to(emulator, "/rest/api/3/users/search")]
    assert starts == [str(s) for s in [*(50 * n for n in range(len(expected))), count]]


@pytest.mark.parametrize(("count", "expected"), BOUNDARIES)
async def test_issues_page_by_next_page_token_with_the_selector_jql(
    tmp_path: Path, count: int, expected: list[int]
) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_project("PROJ", "Project")
    for n in range(1, count + 1):
        emulator.add_issue(f"PROJ-{n}", f"Issue {n}", status="In Progress" if n % 2 else "To Do")
    for n in range(count + 1, count + 4):  # outside the shipped jql: statusCategory != Done
        emulator.add_issue(f"PROJ-{n}", f"Closed {n}", status="Done")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            batches = await resync(integration, mapping(integration), "issue")
    assert sizes(batches) == expected
    assert [i["key"] for b in batches for i in b] == [f"PROJ-{n}" for n in range(1, count + 1)]
    queries = requests_to(emulator, "/rest/api/3/search/jql")
    assert len(queries) == max(1, len(expected))  # a full last page says isLast: no more
    assert {(q["jql"], q["fields"], q["maxResults"]) for q in queries} == {
        ("statusCategory != Done", "*all", "50")
    }
    assert ["nextPageToken" in q for q in queries] == [n > 0 for n in range(len(queries))]
    assert all("expand" not in q for q in queries)
    assert all(i["fields"]["summary"].startswith("Issue") for b in batches for i in b)


ISSUE_SELECTOR = """
resources:
  - kind: issue
    selector:
      query: "true"
{selector}
    port:
      entity:
        mappings:
          identifier: .key
          blueprint: '"jiraIssue"'
"""


async def test_the_issue_selector_sends_its_fields_and_expand(tmp_path: Path) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_issue("PROJ-1", "First", assignee="bob")
    selector = (
        '      jql: "  project = PROJ  "\n'
        '      fields: "summary, status"\n'
        '      expand: "changelog"'
    )
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            config = mapping(integration, ISSUE_SELECTOR.format(selector=selector))
            [[issue]] = await resync(integration, config, "issue")
    [query] = requests_to(emulator, "/rest/api/3/search/jql")
    # the jql stripped (Ocean's handler), the field names stripped (Ocean's client)
    assert query == {
        "maxResults": "50",
        "fields": "summary,status",
        "jql": "project = PROJ",
        "expand": "changelog",
    }
    assert set(issue["fields"]) == {"summary", "status"}
    assert issue["changelog"]["histories"] == []


async def test_an_issue_resource_without_jql_sends_an_empty_one_which_jira_refuses(
    tmp_path: Path,
) -> None:
    """Ocean's handler sends ``""`` when the selector has no jql (Ocean's own default jql is
    never empty); Jira's search refuses an unbounded query, so the kind fails."""
    from initialize_client import JiraAPIError

    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_issue("PROJ-1", "First")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            config = mapping(integration, ISSUE_SELECTOR.format(selector=""))
            with pytest.raises(JiraAPIError) as refused:
                await resync(integration, config, "issue")
    assert refused.value.status == 400
    assert "Unbounded JQL queries are not allowed here" in str(refused.value)
    assert emulator.jql_seen == [""]


async def test_the_project_selector_expands_insight_by_default_as_in_ocean(
    tmp_path: Path,
) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_project("PROJ", "Project", lead="Alice Admin")
    emulator.add_issue("PROJ-1", "First")
    text = """
resources:
  - kind: project
    selector:
      query: "true"
    port:
      entity:
        mappings:
          identifier: .key
          blueprint: '"jiraProject"'
"""
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            [[project]] = await resync(integration, mapping(integration, text), "project")
    assert requests_to(emulator, "/rest/api/3/project/search")[0]["expand"] == "insight"
    assert project["insight"] == {
        "totalIssueCount": 1,
        "lastIssueUpdateTime": "2025-01-07T10:30:00.000+0000",
    }
    assert "lead" not in project  # project search lists no lead unless it is expanded


async def test_stopping_a_handler_early_asks_no_more_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """The client's listings are iterator objects, not async generators: closing the handler
    after one batch leaves no generator suspended (trio warns about those when collected)."""
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    for n in range(120):
        emulator.add_user(f"acc-{n}", f"User {n}")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            config = mapping(integration)
            resource = config.resources[of_kind(config, "user")]
            context = EventContext(port_app_config=config, resource_config=resource)
            with (
                using(integration),
                event_context(context),
                warnings.catch_warnings(record=True) as caught,
            ):
                warnings.simplefilter("always")
                batches = handler_of(integration, "user")("user")
                assert len(await batches.__anext__()) == 50
                await batches.aclose()
                del batches
                gc.collect()
                await trio.lowlevel.checkpoint()
    assert len(requests_to(emulator, "/rest/api/3/users/search")) == 1
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []


# --- the same entities as live events -------------------------------------------------------


async def live(
    integration: Integration, compiled: CompiledPortAppConfig, kind: str, payload: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """What the ported processor of ``kind`` does with ``payload``, mapped as live events are."""
    [processor_class] = [
        p for p in integration.webhook_processors["/webhook"] if p.__name__.lower().startswith(kind)
    ]
    index = of_kind(compiled.config, kind)
    processor = processor_class(WebhookEvent.from_dict({"payload": payload}))
    with using(integration):
        results = await processor.handle_event(payload, compiled.config.resources[index])
    changes, issues = live_event_changes(
        compiled, [(index, results.updated_raw_results, results.deleted_raw_results)]
    )
    assert issues == []
    return by_key(changes.upserts)


async def test_with_the_shipped_mapping_a_resync_gives_the_entities_live_events_give(
    tmp_path: Path,
) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_project("PROJ", "Project One", lead="Alice Admin")
    emulator.add_issue("PROJ-1", "First", assignee="bob", priority="High", labels=("api",))
    emulator.add_issue("PROJ-2", "Second", status="In Progress")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            config = mapping(integration)
            compiled = CompiledPortAppConfig.compile(config)
            from_resync: dict[tuple[str, str], dict[str, Any]] = {}
            for kind in ("project", "issue"):
                index = of_kind(config, kind)
                for batch in await resync(integration, config, kind):
                    from_resync |= resync_entities(compiled, index, batch)

            from_live = await live(
                integration,
                compiled,
                "project",
                {"webhookEvent": "project_updated", "project": {"key": "PROJ"}},
            )
            for key in ("PROJ-1", "PROJ-2"):
                payload = {"webhookEvent": "jira:issue_updated", "issue": {"key": key}}
                from_live |= await live(integration, compiled, "issue", payload)

    assert from_resync == from_live
    assert sorted(from_resync) == [
        ("jiraIssue", "PROJ-1"),
        ("jiraIssue", "PROJ-2"),
        ("jiraProject", "PROJ"),
    ]
    project = from_resync[("jiraProject", "PROJ")]
    assert project["properties"]["lead"] == "Alice Admin"  # listed with expand=lead
    assert project["properties"]["url"] == f"{emulator.base_url}/projects/PROJ"
    assert from_resync[("jiraIssue", "PROJ-1")]["properties"]["assignee"] == "bob@example.com"


async def test_users_map_with_the_shipped_mapping(tmp_path: Path) -> None:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_user("acc-1", "Alice Admin", email="alice@example.com")
    emulator.add_user("app-1", "Automation", account_type="app")
    with trio.fail_after(TIMEOUT):
        async with jira(emulator, tmp_path) as integration:
            config = mapping(integration)
            [batch] = await resync(integration, config, "user")
    compiled = CompiledPortAppConfig.compile(config)
    alice, bot = resync_entities(compiled, of_kind(config, "user"), batch).values()
    assert alice == {
        "identifier": "acc-1",
        "blueprint": "jiraUser",
        "title": "Alice Admin",
        "properties": {
            "emailAddress": "alice@example.com",
            "active": True,
            "accountType": "atlassian",
            "timeZone": "Europe/London",
            "locale": "en_US",
            "avatarUrl": "https://avatars.example/acc-1/48",
        },
    }
    assert (bot["identifier"], bot["properties"]["emailAddress"]) == ("app-1", None)


# --- the client on its own ------------------------------------------------------------------


class ProjectsWithoutValues(JiraEmulator):
    """Answers the project search without its ``values`` (an API that changed under us)."""

    def _project_search(self, query: dict[str, str]) -> tuple[int, Any]:
        status, body = super()._project_search(query)
        return status, {k: v for k, v in body.items() if k != "values"}


async def test_an_answer_without_its_list_fails_rather_than_ending_the_listing() -> None:
    """Ocean's client would stop quietly, and a resync would then delete every project."""
    load_integration(JIRA_ROOT)  # puts the integration's folder on sys.path
    from initialize_client import JiraAPIError, JiraClient

    emulator = ProjectsWithoutValues(email=EMAIL, token=TOKEN)
    emulator.add_project("PROJ", "Project")
    with trio.fail_after(TIMEOUT):
        async with serve_jira_emulator(emulator) as url:
            client = JiraClient(url, email=EMAIL, token=TOKEN)
            with pytest.raises(JiraAPIError) as failed:
                _ = [page async for page in client.get_paginated_projects()]
    assert str(failed.value) == (
        "GET /rest/api/3/project/search: HTTP 200: expected a list under 'values', got an"
        " object with keys isLast, maxResults, self, startAt, total"
    )
