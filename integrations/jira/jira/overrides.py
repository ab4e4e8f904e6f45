"""The Jira resource configs: the selector fields Ocean's Jira integration adds.

Issues take ``jql`` (sent to Jira when fetching), ``fields`` and ``expand`` next to the jq
``query``; projects take ``expand``. Both are registered in ``main.py`` with
``register_resource_config``. Defaults are Ocean's, except ``jql``: Ocean's default has
top-level ``OR``s, which the ported issue processor (``<jql> AND key = X``, without
parentheses) would get wrong, so here it stays unset and a resource states it.
"""

from __future__ import annotations

import attrs

from ocean_trio import ResourceConfig, Selector


@attrs.frozen(kw_only=True)
class JiraIssueSelector(Selector):
    """``query`` (jq, applied to fetched issues), and what is sent to Jira's issue search.

    ``jql``: which issues (resync: ``jql`` alone; live events: ``<jql> AND key = <KEY>``).
    ``fields``: comma-separated issue fields to return, ``*all`` for every one (Ocean's
    default). ``expand``: comma-separated extras (``renderedFields``, ``names``,
    ``changelog``…), none by default.
    """

    jql: str | None = None
    fields: str | None = "*all"
    expand: str | None = None


@attrs.frozen(kw_only=True)
class JiraIssueConfig(ResourceConfig):
    """A resource of kind ``issue``."""

    selector: JiraIssueSelector


@attrs.frozen(kw_only=True)
class JiraProjectSelector(Selector):
    """``expand``: comma-separated extras of Jira's project search (``description``, ``lead``,
    ``issueTypes``, ``url``, ``projectKeys``, ``insight``); Ocean's default is ``insight``.

    Jira's project search leaves the lead out unless it is expanded, while
    ``GET /rest/api/3/project/{key}`` (what the live event processor fetches) includes it:
    a mapping that uses ``.lead`` expands ``lead`` so both give the same entity.
    """

    expand: str = "insight"


@attrs.frozen(kw_only=True)
class JiraProjectResourceConfig(ResourceConfig):
    """A resource of kind ``project``."""

    selector: JiraProjectSelector
