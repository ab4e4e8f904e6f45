"""Ocean's Jira live event processors on ocean-trio: ``ocean-trio sail integrations/jira``.

The processors in ``webhook_processors/`` are Ocean's documented ones with only their
imports changed. Settings: ``jiraHost``, ``atlassianUserEmail``, ``atlassianUserToken``
under ``integration.config`` (see ``config.yaml``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Ocean integrations import their siblings as top-level modules (``from kinds import Kinds``,
# ``from jira.overrides import …``). ``load_integration`` puts this folder first on sys.path;
# do the same when hypercorn imports this file as ``integrations.jira.main``.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import jira  # noqa: E402
from jira.overrides import JiraIssueConfig  # noqa: E402
from webhook_processors.issue_webhook_processor import IssueWebhookProcessor  # noqa: E402
from webhook_processors.project_webhook_processor import ProjectWebhookProcessor  # noqa: E402

from ocean_trio import ocean  # noqa: E402

# ``jira`` is also the name of a popular PyPI distribution: fail loudly if it won.
if Path(jira.__file__).resolve().parent != _HERE / "jira":
    raise ImportError(f"'jira' resolves to {jira.__file__}, not to {_HERE / 'jira'}")

ocean.register_resource_config("issue", JiraIssueConfig)
ocean.add_webhook_processor("/webhook", IssueWebhookProcessor)
ocean.add_webhook_processor("/webhook", ProjectWebhookProcessor)

app = ocean.asgi_app(__file__)
