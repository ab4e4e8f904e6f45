"""``create_jira_client()``: the Jira Cloud REST calls of the ported processors and resync.

Settings (``integration.config``): ``jiraHost`` (``https://<site>.atlassian.net``), and
``atlassianUserEmail`` + ``atlassianUserToken`` for basic auth (optional, e.g. for an
emulator). Errors are translated here, once: a transport error, ``408``, ``429`` or ``5xx``
raises ``RetryableError`` (the processor's retry policy tries again), any other error status
raises ``JiraAPIError`` with Jira's messages.

The listings follow Ocean's Jira client (``jira/client.py``): issues from
``GET /rest/api/3/search/jql`` by ``nextPageToken`` (Ocean POSTs the same search; the GET
form takes the same parameters), projects from ``GET /rest/api/3/project/search`` and users
from ``GET /rest/api/3/users/search`` by ``startAt``/``maxResults`` until a page comes back
empty or ``startAt`` reaches ``total``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Self
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
    needs no owner. So a listing holds nothing between its pages, and its iterator is a
    plain object, not an async generator: a caller (a resync stopped early) may drop it at
    any page with nothing to close and no generator left suspended. The clients share one
    TLS context: building one loads the CA bundle, ~40 ms of blocking.
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

    def get_paginated_issues(
        self, params: Mapping[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of issues matching ``params["jql"]`` (``GET /rest/api/3/search/jql``).

        Follows ``nextPageToken`` until Jira says ``isLast``. ``params`` may name ``fields``
        (comma-separated, as Ocean's selector gives them) and ``expand``; without ``fields``
        every field is asked for: this endpoint returns bare issue ids by default.
        """
        query: dict[str, Any] = {"maxResults": self._page_size, "fields": "*all", **params}
        if isinstance(query["fields"], str):  # Ocean strips each name ("a, b" → ["a", "b"])
            query["fields"] = ",".join(f.strip() for f in query["fields"].split(",") if f.strip())
        if not query.get("expand"):
            query.pop("expand", None)
        return _TokenPages(self, "/rest/api/3/search/jql", "issues", query)

    def get_paginated_projects(
        self, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of projects (``GET /rest/api/3/project/search``, ``params`` e.g. ``expand``)."""
        return _OffsetPages(self, "/rest/api/3/project/search", "values", params)

    def get_paginated_users(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of users (``GET /rest/api/3/users/search``: a bare array, no ``total``)."""
        return _OffsetPages(self, "/rest/api/3/users/search", None, None)

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


class _Pages(AsyncIterator[list[dict[str, Any]]]):
    """One listing, a page per ``__anext__``; it stops at the first empty page (Ocean's rule).

    A page's request failing raises from ``__anext__`` and moves nothing forward: asking
    again asks for the same page. An answer without its list raises ``JiraAPIError``, where
    Ocean's client stops quietly: a resync that stops quietly deletes what it did not see.
    """

    def __init__(
        self, client: JiraClient, path: str, key: str | None, params: Mapping[str, Any] | None
    ) -> None:
        self._client = client
        self._path = path
        self._key = key  # the list's key in the answer; None: the answer is the list
        self._params: dict[str, Any] = dict(params or {})
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        if self._done:
            raise StopAsyncIteration
        answer = await self._client._get_json(self._path, self._params)
        items = answer.get(self._key) if self._key and isinstance(answer, dict) else answer
        if not isinstance(items, list):
            where = f"a list under {self._key!r}" if self._key else "a list"
            raise JiraAPIError(self._path, 200, [f"expected {where}, got {_shape(answer)}"])
        if not items:
            self._done = True
            raise StopAsyncIteration
        self._advance(answer, items)
        return items

    def _advance(self, answer: Any, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class _OffsetPages(_Pages):
    """``startAt``/``maxResults`` paging: Ocean's ``_get_paginated_data``."""

    def __init__(
        self, client: JiraClient, path: str, key: str | None, params: Mapping[str, Any] | None
    ) -> None:
        super().__init__(client, path, key, {"maxResults": client._page_size, **(params or {})})
        self._params["startAt"] = 0

    def _advance(self, answer: Any, items: list[dict[str, Any]]) -> None:
        self._params["startAt"] += len(items)
        total = answer.get("total") if isinstance(answer, dict) else None
        if isinstance(total, int) and self._params["startAt"] >= total:
            self._done = True


class _TokenPages(_Pages):
    """``nextPageToken`` paging (Jira's enhanced issue search)."""

    def _advance(self, answer: Any, items: list[dict[str, Any]]) -> None:
        token = answer.get("nextPageToken")
        if answer.get("isLast") or not token:
            self._done = True
        else:
            self._params["nextPageToken"] = token


def _shape(answer: Any) -> str:
    if isinstance(answer, dict):
        return "an object with keys " + (", ".join(sorted(map(str, answer))[:10]) or "none")
    return type(answer).__name__


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


def get_or_create_jira_client() -> JiraClient:
    """``create_jira_client()`` under the name Ocean's resync handlers call.

    Ocean caches its client (``lru_cache``): it owns a connection pool and a rate limiter.
    This one owns nothing, so a new one per call costs nothing and always follows the
    settings of the integration running now.
    """
    return create_jira_client()


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
