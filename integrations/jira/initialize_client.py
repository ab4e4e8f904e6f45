"""``create_jira_client()``: the two Jira Cloud REST calls the ported processors make.

Settings (``integration.config``): ``jiraHost`` (``https://<site>.atlassian.net``), and
``atlassianUserEmail`` + ``atlassianUserToken`` for basic auth (optional, e.g. for an
emulator). Errors are translated here, once: a transport error, ``408``, ``429`` or ``5xx``
raises ``RetryableError`` (the processor's retry policy tries again), any other error status
raises ``JiraAPIError`` with Jira's messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ocean_trio import ConfigError, OceanError, RetryableError, ocean

PAGE_SIZE = 50  # Jira Cloud's default page size for issue searches
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_TLS = httpx.create_ssl_context()


class JiraAPIError(OceanError):
    """Jira refused a request for a reason retrying will not fix (bad JQL, no permission)."""

    def __init__(self, path: str, status: int, messages: list[str]) -> None:
        super().__init__(f"GET {path}: HTTP {status}: {'; '.join(messages) or 'no message'}")
        self.status = status
        self.messages = messages


class JiraClient:
    """Jira Cloud's REST API v3 at ``host``.

    Each request opens its own ``httpx.AsyncClient``: the processors create a client per
    event and make one or two requests with it (Ocean's pattern), and a short-lived client
    needs no owner. In particular none is open across a ``yield`` of
    ``get_paginated_issues``, so a caller that stops iterating early leaks nothing. The
    clients share one TLS context: building one loads the CA bundle, ~40 ms of blocking.
    """

    def __init__(
        self,
        host: str,
        *,
        email: str | None = None,
        token: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.host = host.rstrip("/")
        self._auth = httpx.BasicAuth(email, token) if email and token else None
        self._page_size = page_size

    async def get_paginated_issues(
        self, params: Mapping[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the pages of issues matching ``params["jql"]`` (``GET /rest/api/3/search/jql``).

        Follows ``nextPageToken`` until Jira says ``isLast``. Asks for every field unless
        ``params`` names some: this endpoint returns bare issue ids by default.
        """
        query: dict[str, Any] = {"maxResults": self._page_size, "fields": "*all", **params}
        while True:
            page = await self._get_json("/rest/api/3/search/jql", query)
            yield list(page.get("issues") or [])
            token = page.get("nextPageToken")
            if page.get("isLast") or not token:
                return
            query["nextPageToken"] = token

    async def get_single_project(self, project_key: str) -> dict[str, Any] | None:
        """The project (``GET /rest/api/3/project/{key}``), or ``None`` when Jira answers 404."""
        path = f"/rest/api/3/project/{quote(project_key, safe='')}"
        project: dict[str, Any] | None = await self._get_json(path, {}, missing_ok=True)
        return project

    async def _get_json(
        self, path: str, params: Mapping[str, Any], *, missing_ok: bool = False
    ) -> Any:
        try:
            async with httpx.AsyncClient(
                base_url=self.host,
                auth=self._auth,
                headers={"accept": "application/json"},
                timeout=REQUEST_TIMEOUT,
                verify=_TLS,
            ) as client:
                response = await client.get(path, params=params)
        except httpx.TransportError as error:
            raise RetryableError(f"GET {path}: {error!r}") from error
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise RetryableError(f"GET {path}: HTTP {response.status_code}")
        if response.is_error:
            raise JiraAPIError(path, response.status_code, _error_messages(response))
        return response.json()


def _error_messages(response: httpx.Response) -> list[str]:
    # Jira's error body: {"errorMessages": [...], "errors": {"field": "message"}}
    try:
        body = response.json()
    except ValueError:
        return [response.text[:200]] if response.text else []
    if not isinstance(body, dict):
        return []
    messages = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        messages.extend(f"{k}: {v}" for k, v in errors.items())
    return messages


def create_jira_client() -> JiraClient:
    """A ``JiraClient`` for the integration's settings (``ocean.integration_config``)."""
    config = ocean.integration_config
    host = config.get("jira_host")
    if not isinstance(host, str) or not host:
        raise ConfigError(
            "integration.config.jiraHost is required (e.g. https://acme.atlassian.net)"
        )
    return JiraClient(
        host,
        email=config.get("atlassian_user_email"),
        token=config.get("atlassian_user_token"),
    )
