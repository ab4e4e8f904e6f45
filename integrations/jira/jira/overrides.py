"""The Jira resource config: issues take a ``jql`` selector field next to the jq ``query``."""

from __future__ import annotations

import attrs

from ocean_trio import ResourceConfig, Selector


@attrs.frozen(kw_only=True)
class JiraIssueSelector(Selector):
    """``query`` (jq, applied to fetched issues) and ``jql`` (sent to Jira when fetching)."""

    jql: str | None = None


@attrs.frozen(kw_only=True)
class JiraIssueConfig(ResourceConfig):
    """A resource of kind ``issue``; registered in ``main.py`` with ``register_resource_config``."""

    selector: JiraIssueSelector
