"""Ocean's Jira integration on ocean-trio: ``ocean-trio sail integrations/jira``.

The processors in ``webhook_processors/`` are Ocean's documented ones, and the resync
handlers below (projects, issues, users) Ocean's ``main.py`` ones, with only their imports
changed. Settings: ``jiraHost``, ``atlassianUserEmail``, ``atlassianUserToken`` under
``integration.config`` (see ``config.yaml``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

# Ocean integrations import their siblings as top-level modules (``from kinds import Kinds``,
# ``from jira.overrides import …``). ``load_integration`` puts this folder first on sys.path;
# do the same when hypercorn imports this file as ``integrations.jira.main``.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import jira  # noqa: E402
from initialize_client import get_or_create_jira_client  # noqa: E402
from jira.overrides import JiraIssueConfig, JiraProjectResourceConfig  # noqa: E402
from kinds import Kinds  # noqa: E402
from webhook_processors.issue_webhook_processor import IssueWebhookProcessor  # noqa: E402
from webhook_processors.project_webhook_processor import ProjectWebhookProcessor  # noqa: E402

from ocean_trio import ASYNC_GENERATOR_RESYNC_TYPE, event, logger, ocean  # noqa: E402

# ``jira`` is also the name of a popular PyPI distribution: fail loudly if it won.
if Path(jira.__file__).resolve().parent != _HERE / "jira":
    raise ImportError(f"'jira' resolves to {jira.__file__}, not to {_HERE / 'jira'}")

ocean.register_resource_config(Kinds.ISSUE, JiraIssueConfig)
ocean.register_resource_config(Kinds.PROJECT, JiraProjectResourceConfig)


# --- Ocean's resync handlers (integrations/jira/main.py), only the imports changed ---------


@ocean.on_resync(Kinds.PROJECT)
async def on_resync_projects(kind: str) -> ASYNC_GENERATOR_RESYNC_TYPE:
    client = get_or_create_jira_client()

    selector = cast(JiraProjectResourceConfig, event.resource_config).selector
    params = {"expand": selector.expand}

    async for projects in client.get_paginated_projects(params):
        logger.info(f"Received project batch with {len(projects)} projects")
        yield projects


@ocean.on_resync(Kinds.ISSUE)
async def on_resync_issues(kind: str) -> ASYNC_GENERATOR_RESYNC_TYPE:
    client = get_or_create_jira_client()

    params = {}
    config = cast(JiraIssueConfig, event.resource_config)

    jql = config.selector.jql.strip() if config.selector.jql else ""
    params["jql"] = jql
    logger.info(f"Using JQL filter: {jql}")

    if config.selector.fields:
        params["fields"] = config.selector.fields
    if config.selector.expand:
        params["expand"] = config.selector.expand
    async for issues in client.get_paginated_issues(params):
        logger.info(f"Received issue batch with {len(issues)} issues")
        yield issues


@ocean.on_resync(Kinds.USER)
async def on_resync_users(kind: str) -> ASYNC_GENERATOR_RESYNC_TYPE:
    client = get_or_create_jira_client()

    async for users_batch in client.get_paginated_users():
        logger.info(f"Received users batch with {len(users_batch)} users")
        yield users_batch


# ------------------------------------------------------------------------------------------

ocean.add_webhook_processor("/webhook", IssueWebhookProcessor)
ocean.add_webhook_processor("/webhook", ProjectWebhookProcessor)

app = ocean.asgi_app(__file__)
