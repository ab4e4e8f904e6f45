"""Ocean's Jira processors on ocean-trio: only their imports changed, and they work end to end.

The end-to-end tests run the integration (``load_integration``) on a real hypercorn and the
Jira emulator on another, both on 127.0.0.1 port 0.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import trio

from ocean_trio import EventStatus, load_integration
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .jira_emulator import JiraEmulator, serve_jira_emulator

if TYPE_CHECKING:
    # The integration's own module: importable once ``load_integration`` put its folder on sys.path.
    from jira.overrides import JiraIssueConfig

JIRA_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "jira"
# A copy of Ocean's "Implementing live events" page (the seed the processors come from),
# kept with the tests so they run on a fresh clone.
SEED = Path(__file__).parent / "data" / "ocean-implementing-live-events.md"
SHARED_SEED = Path("/work/shared/seeds/002_15c436e792698e12.txt")
PORTED = {
    "IssueWebhookProcessor": JIRA_ROOT / "webhook_processors" / "issue_webhook_processor.py",
    "ProjectWebhookProcessor": JIRA_ROOT / "webhook_processors" / "project_webhook_processor.py",
}
OCEAN_MODULES = ("port_ocean", "loguru")  # what ``ocean_trio`` replaces
TIMEOUT = 10  # seconds; each test takes well under one

EMAIL, TOKEN = "bot@example.com", "api-token"

# --- only the imports changed -------------------------------------------------------------


def seed_blocks() -> dict[str, str]:
    """The seed's python code blocks, by the processor class each one defines."""
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", SEED.read_text(encoding="utf-8"), re.S)
    return {name: b for b in blocks for name in PORTED if f"class {name}(" in b}


def split_imports(source: str) -> tuple[set[tuple[str, str]], list[str]]:
    """The ``(module, name)`` pairs imported at top level, and every other line of ``source``.

    The other lines keep comments and blank lines, minus the blank lines around the import
    block (their number depends on how imports are grouped).
    """
    tree = ast.parse(source)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    import_lines = {i for n in imports for i in range(n.lineno, (n.end_lineno or n.lineno) + 1)}
    names: set[tuple[str, str]] = set()
    for node in imports:
        if isinstance(node, ast.ImportFrom):
            names |= {(node.module or "", alias.name) for alias in node.names}
        else:
            names |= {(alias.name, "") for alias in node.names}
    lines = [line for n, line in enumerate(source.splitlines(), 1) if n not in import_lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return names, lines


def used_names(lines: list[str]) -> set[str]:
    return {n.id for n in ast.walk(ast.parse("\n".join(lines))) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("processor", sorted(PORTED))
def test_only_imports_changed(processor: str) -> None:
    seed_imports, seed_code = split_imports(seed_blocks()[processor])
    our_imports, our_code = split_imports(PORTED[processor].read_text(encoding="utf-8"))

    assert our_code == seed_code

    # Ocean's imports now come from ocean_trio, under the same names; the integration's own
    # modules (initialize_client, jira.overrides, kinds) are imported as before.
    expected = {
        ("ocean_trio", name) if module.startswith(OCEAN_MODULES) else (module, name)
        for module, name in seed_imports
    }
    assert our_imports <= expected, our_imports - expected
    # What is no longer imported was never used (``typing.Any``, which ruff rejects).
    assert not {name for _, name in expected - our_imports} & used_names(seed_code)
    assert {m for m, _ in our_imports} - {"ocean_trio", "typing"} == {
        m for m, _ in seed_imports if not m.startswith(OCEAN_MODULES) and m != "typing"
    }


@pytest.mark.skipif(not SHARED_SEED.is_file(), reason="the shared seeds are not on this machine")
def test_vendored_seed_is_the_shared_seed() -> None:
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


# --- end to end on the Jira emulator ------------------------------------------------------

MAPPING = """
resources:
  - kind: project
    selector:
      query: "true"
    port:
      entity:
        mappings:
          identifier: .key
          title: .name
          blueprint: '"jiraProject"'
          properties:
            lead: .lead.displayName
  - kind: issue
    selector:
      query: "true"
{jql}
    port:
      entity:
        mappings:
          identifier: .key
          title: .fields.summary
          blueprint: '"jiraIssue"'
          properties:
            status: .fields.status.name
            assignee: .fields.assignee.emailAddress
            priority: .fields.priority.name
            labels: .fields.labels
          relations:
            project: .fields.project.key
"""


def seeded_emulator() -> JiraEmulator:
    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    emulator.add_project("PROJ", "Project One", lead="Alice Admin")
    emulator.add_issue("PROJ-1", "First issue", assignee="bob", priority="High", labels=("api",))
    return emulator


@asynccontextmanager
async def jira_integration(
    tmp_path: Path, emulator: JiraEmulator, *, jql: str | None = None, shipped: bool = False
) -> AsyncIterator[TestServer]:
    """The Jira integration against ``emulator``; the test mapping unless ``shipped``."""
    overrides: dict[str, Any] = {}
    if not shipped:
        resources = tmp_path / "resources"
        resources.mkdir()
        jql_line = "" if jql is None else f'      jql: "{jql}"'
        (resources / "port-app-config.yml").write_text(MAPPING.format(jql=jql_line))
        overrides["resourcesPath"] = str(resources)
    async with serve_jira_emulator(emulator) as jira_url:
        config = {"jiraHost": jira_url, "atlassianUserEmail": EMAIL, "atlassianUserToken": TOKEN}
        settings = make_settings(tmp_path, integration={"config": config}, **overrides)
        async with serve_integration(load_integration(JIRA_ROOT), settings) as server:
            yield server


def issue_event(name: str, key: str = "PROJ-1", issue_id: str = "10001") -> dict[str, object]:
    """A Jira Cloud issue webhook, trimmed to what the processor reads."""
    return {
        "timestamp": 1736160000000,
        "webhookEvent": name,
        "issue_event_type_name": "issue_generic",
        "issue": {"id": issue_id, "key": key, "fields": {"summary": "whatever"}},
    }


async def test_issue_updated_fetches_the_issue_by_key(tmp_path: Path) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator) as server:
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            [(_, outcome)] = await server.next_outcomes(1)
            assert (outcome.status, outcome.upserts, outcome.deletes) == (EventStatus.DONE, 1, 0)
            assert emulator.jql_seen == ["key = PROJ-1"]
            assert emulator.requests == [
                (
                    "/rest/api/3/search/jql",
                    {"maxResults": "50", "fields": "*all", "jql": "key = PROJ-1"},
                )
            ]
            entity = await server.catalog.get_entity("jiraIssue", "PROJ-1")
            assert entity is not None
            assert entity["title"] == "First issue"
            assert entity["properties"] == {
                "status": "To Do",
                "assignee": "bob@example.com",
                "priority": "High",
                "labels": ["api"],
            }
            assert entity["relations"] == {"project": "PROJ"}


@pytest.mark.parametrize(
    ("jql", "sent"),
    [
        ("project = PROJ", "project = PROJ AND key = PROJ-1"),
        ("status != Done", "status != Done AND key = PROJ-1"),
    ],
)
async def test_selector_jql_narrows_the_fetch(tmp_path: Path, jql: str, sent: str) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator, jql=jql) as server:
            [resource] = server.app.mapping.config.resources_of_kind("issue")
            assert type(resource[1]).__name__ == "JiraIssueConfig"
            assert cast("JiraIssueConfig", resource[1]).selector.jql == jql
            await server.post_event("/webhook", issue_event("jira:issue_created"))
            [(_, outcome)] = await server.next_outcomes(1)
            assert (outcome.status, outcome.upserts) == (EventStatus.DONE, 1)
            assert emulator.jql_seen == [sent]
            assert await server.catalog.get_entity("jiraIssue", "PROJ-1") is not None


async def test_issue_outside_the_selector_jql_is_deleted(tmp_path: Path) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator, jql="status != Done") as server:
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            [(_, first)] = await server.next_outcomes(1)
            assert (first.status, first.upserts, first.deletes) == (EventStatus.DONE, 1, 0)
            emulator.set_status("PROJ-1", "Done")
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            [(_, second)] = await server.next_outcomes(1)
            assert (second.status, second.upserts, second.deletes) == (EventStatus.DONE, 0, 1)
            assert emulator.jql_seen == ["status != Done AND key = PROJ-1"] * 2
            assert await server.catalog.get_entity("jiraIssue", "PROJ-1") is None


async def test_issue_deleted_removes_the_entity_without_fetching(tmp_path: Path) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator) as server:
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            await server.post_event("/webhook", issue_event("jira:issue_deleted"))
            outcomes = [o for _, o in await server.next_outcomes(2)]
            assert [(o.upserts, o.deletes) for o in outcomes] == [(1, 0), (0, 1)]
            assert emulator.jql_seen == ["key = PROJ-1"]  # the delete fetched nothing
            assert await server.catalog.get_entity("jiraIssue", "PROJ-1") is None


async def test_issue_not_found_is_deleted(tmp_path: Path) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator) as server:
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            [(_, first)] = await server.next_outcomes(1)
            assert first.upserts == 1
            del emulator.issues["PROJ-1"]
            await server.post_event("/webhook", issue_event("jira:issue_updated"))
            [(_, second)] = await server.next_outcomes(1)
            assert (second.status, second.upserts, second.deletes) == (EventStatus.DONE, 0, 1)
            [run] = second.runs
            assert run.results is not None
            assert run.results.deleted_raw_results == [issue_event("")["issue"]]
            assert await server.catalog.get_entity("jiraIssue", "PROJ-1") is None


async def test_project_updated_then_soft_deleted_with_the_shipped_mapping(tmp_path: Path) -> None:
    emulator = seeded_emulator()
    with trio.fail_after(TIMEOUT):
        async with jira_integration(tmp_path, emulator, shipped=True) as server:
            project = {"self": "https://x/rest/api/3/project/10000", "id": 10000, "key": "PROJ"}
            await server.post_event(
                "/webhook", {"webhookEvent": "project_updated", "project": project}
            )
            [(_, updated)] = await server.next_outcomes(1)
            assert (updated.status, updated.upserts, updated.deletes) == (EventStatus.DONE, 1, 0)
            entity = await server.catalog.get_entity("jiraProject", "PROJ")
            assert entity is not None
            assert entity["title"] == "Project One"
            assert entity["properties"] == {
                "url": f"{emulator.base_url}/projects/PROJ",
                "lead": "Alice Admin",
                "projectType": "software",
            }

            unknown = {"webhookEvent": "project_updated", "project": {"key": "NOPE"}}
            await server.post_event("/webhook", unknown)
            [(_, missing)] = await server.next_outcomes(1)
            # Ocean's processor only logs a project it cannot fetch: nothing changes.
            assert (missing.status, missing.upserts, missing.deletes) == (EventStatus.DONE, 0, 0)

            deleted = {"webhookEvent": "project_soft_deleted", "project": project}
            await server.post_event("/webhook", deleted)
            [(_, removed)] = await server.next_outcomes(1)
            assert (removed.status, removed.upserts, removed.deletes) == (EventStatus.DONE, 0, 1)
            assert await server.catalog.get_entity("jiraProject", "PROJ") is None
            assert [path for path, _ in emulator.requests] == [
                "/rest/api/3/project/PROJ",
                "/rest/api/3/project/NOPE",
            ]


def test_jira_overrides_is_the_integrations_own_module() -> None:
    load_integration(JIRA_ROOT)
    overrides = sys.modules["jira.overrides"]
    assert Path(overrides.__file__ or "") == JIRA_ROOT / "jira" / "overrides.py"


# --- the client on its own ----------------------------------------------------------------


async def test_client_follows_next_page_tokens_and_reports_jira_errors() -> None:
    load_integration(JIRA_ROOT)  # puts the integration's folder on sys.path
    from initialize_client import JiraAPIError, JiraClient

    emulator = JiraEmulator(email=EMAIL, token=TOKEN)
    for n in range(1, 6):
        emulator.add_issue(f"PROJ-{n}", f"Issue {n}")
    emulator.add_issue("OTHER-1", "Elsewhere")
    with trio.fail_after(TIMEOUT):
        async with serve_jira_emulator(emulator) as url:
            client = JiraClient(url, email=EMAIL, token=TOKEN, page_size=2)
            pages = [page async for page in client.get_paginated_issues({"jql": "project = PROJ"})]
            assert [[i["key"] for i in page] for page in pages] == [
                ["PROJ-1", "PROJ-2"],
                ["PROJ-3", "PROJ-4"],
                ["PROJ-5"],
            ]
            tokens = [query.get("nextPageToken") for _, query in emulator.requests]
            assert tokens[0] is None
            assert None not in tokens[1:]
            assert len(set(tokens)) == 3

            with pytest.raises(JiraAPIError, match="Error in the JQL Query") as bad_jql:
                _ = [page async for page in client.get_paginated_issues({"jql": "summary ~ x"})]
            assert bad_jql.value.status == 400
            assert await client.get_single_project("NOPE") is None

            stranger = JiraClient(url, email=EMAIL, token="wrong")
            with pytest.raises(JiraAPIError, match="must be authenticated") as denied:
                await stranger.get_single_project("PROJ")
            assert denied.value.status == 401


async def test_main_imports_as_a_package_module_for_hypercorn() -> None:
    """``hypercorn integrations.jira.main:app`` works too: main.py puts its folder on sys.path."""
    code = (
        "import integrations.jira.main as m; "
        "print(type(m.app).__name__, sorted(p.__name__ "
        "for p in m.ocean.webhook_processors['/webhook']))"
    )
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [sys.executable, "-c", code], cwd=JIRA_ROOT.parents[1], capture_stdout=True
        )
    assert done.stdout.decode() == (
        "IntegrationASGI ['IssueWebhookProcessor', 'ProjectWebhookProcessor']\n"
    )
