"""A loopback emulator of the Jira Cloud REST endpoints the ported processors and resync call.

- ``GET /rest/api/3/search/jql?jql=…[&nextPageToken=…][&maxResults=…][&fields=…][&expand=…]``
  answers ``{"issues": [...], "nextPageToken": "…", "isLast": false}``; the last page has
  ``"isLast": true`` and no token. As on Jira Cloud, an issue is only ``{"id": …}`` unless
  ``fields`` asks for more (``*all``, ``*navigable`` or a comma-separated list); ``expand``
  adds ``changelog`` to each issue and ``names`` to the answer (other values are ignored,
  as Jira ignores what it cannot expand).
- ``GET /rest/api/3/project/{key}`` answers the project, lead included, or ``404`` with
  Jira's error body ``{"errorMessages": [...], "errors": {}}``.
- ``GET /rest/api/3/project/search?startAt=&maxResults=&expand=`` answers Jira's page of
  projects ordered by key (its default ``orderBy``): ``{"self", "nextPage" (when not
  last), "maxResults", "startAt", "total", "isLast", "values"}``. ``maxResults`` defaults to
  50 and is cut to 100. A project here has no ``lead`` unless ``expand`` names ``lead``,
  ``insight`` (``totalIssueCount``, ``lastIssueUpdateTime``) only when expanded.
- ``GET /rest/api/3/users/search?startAt=&maxResults=`` answers a bare array of users
  (``maxResults`` defaults to 50, at most 1000): no ``total``, so a client reads until a
  page comes back empty.

A ``startAt`` or ``maxResults`` that is not a whole number (or is negative) answers ``400``.
Issues look like Jira's: ``{"id", "key", "self", "fields": {"summary", "status": {"name",
"statusCategory"}, "project": {"key", …}, "assignee", "priority", "labels", …}}``. JQL is
supported only as far as the tests use it: ``key = X``, ``<clause> AND key = X`` and a lone
``<clause>``, where ``<clause>`` is ``project``, ``status`` or ``statusCategory`` with ``=``
or ``!=`` (values bare or double-quoted, compared case-insensitively; a status category by
name, ``Done``, or key, ``done``); anything else, the empty query included, is a ``400``
like Jira's for a query it cannot run. Every JQL received is kept in ``jql_seen``.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Obj = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_RESULTS_DEFAULT = 50
MAX_RESULTS_LIMIT = 5000  # issue search
PROJECT_SEARCH_LIMIT = 100
USER_SEARCH_LIMIT = 1000

_VALUE = r'(?:"[^"]*"|[\w.-]+)'
_CLAUSE = re.compile(
    rf"^(?P<field>project|statusCategory|status)\s*(?P<op>!=|=)\s*(?P<value>{_VALUE})$", re.I
)
_KEY = re.compile(rf"^key\s*=\s*(?P<value>{_VALUE})$", re.I)
_AND = re.compile(r"\s+AND\s+", re.I)
_PROJECT_PATH = re.compile(r"^/rest/api/3/project/(?P<key>[^/]+)$")


class JqlError(ValueError):
    """A query outside the emulator's JQL subset."""


def _unquote(value: str) -> str:
    return value[1:-1] if value.startswith('"') else value


def compile_jql(jql: str) -> Callable[[Obj], bool]:
    """A predicate over stored issues for ``jql`` (the subset described in the module docstring)."""
    if not jql.strip():
        raise JqlError(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
        )
    parts = _AND.split(jql.strip())
    if not 1 <= len(parts) <= 2:
        raise JqlError(f"Error in the JQL Query: unsupported query {jql!r}")
    tests: list[Callable[[Obj], bool]] = []
    for index, part in enumerate(parts):
        key = _KEY.match(part)
        if key is not None and index == len(parts) - 1:

            def has_key(issue: Obj, wanted: str = _unquote(key["value"]).upper()) -> bool:
                return str(issue["key"]).upper() == wanted

            tests.append(has_key)
            continue
        clause = _CLAUSE.match(part)
        if clause is None or (index == 1 and len(parts) == 2):
            raise JqlError(f"Error in the JQL Query: unsupported clause {part!r}")
        field, negate = clause["field"].lower(), clause["op"] == "!="
        value = _unquote(clause["value"]).lower()

        def test(issue: Obj, field: str = field, value: str = value, negate: bool = negate) -> bool:
            fields = issue["fields"]
            if field == "project":
                actual = {str(fields["project"]["key"]).lower()}
            elif field == "status":
                actual = {str(fields["status"]["name"]).lower()}
            else:
                category = fields["status"]["statusCategory"]
                actual = {category["key"].lower(), category["name"].lower()}
            return (value in actual) != negate

        tests.append(test)
    return lambda issue: all(test(issue) for test in tests)


@attrs.define
class JiraEmulator:
    """Projects and issues (insertion order), the requests seen, and the ASGI app serving them."""

    email: str | None = None
    token: str | None = None
    base_url: str = "http://jira.invalid"
    projects: dict[str, Obj] = attrs.field(factory=dict)
    issues: dict[str, Obj] = attrs.field(factory=dict)
    users: dict[str, Obj] = attrs.field(factory=dict)
    jql_seen: list[str] = attrs.field(factory=list)
    requests: list[tuple[str, dict[str, str]]] = attrs.field(factory=list)
    _next_id: int = 10001

    # --- data -----------------------------------------------------------------------------

    def add_project(self, key: str, name: str, *, lead: str = "Alice Admin") -> Obj:
        project_id = str(10000 + len(self.projects))
        project = {
            "id": project_id,
            "key": key,
            "name": name,
            "projectTypeKey": "software",
            "lead": {"accountId": f"acc-{lead.split()[0].lower()}", "displayName": lead},
        }
        self.projects[key] = project
        return project

    def add_issue(
        self,
        key: str,
        summary: str,
        *,
        status: str = "To Do",
        assignee: str | None = None,
        priority: str = "Medium",
        labels: tuple[str, ...] = (),
    ) -> Obj:
        project_key = key.rsplit("-", 1)[0]
        project = self.projects.get(project_key) or self.add_project(project_key, project_key)
        issue_id = str(self._next_id)
        self._next_id += 1
        person = (
            None
            if assignee is None
            else {
                "accountId": f"acc-{assignee}",
                "displayName": assignee.title(),
                "emailAddress": f"{assignee}@example.com",
            }
        )
        issue = {
            "id": issue_id,
            "key": key,
            "fields": {
                "summary": summary,
                "status": {"name": status, "statusCategory": _category(status)},
                "issuetype": {"name": "Task"},
                "project": {"id": project["id"], "key": project_key, "name": project["name"]},
                "assignee": person,
                "reporter": {"accountId": "acc-alice", "emailAddress": "alice@example.com"},
                "priority": {"name": priority},
                "labels": list(labels),
                "created": "2025-01-06T09:00:00.000+0000",
                "updated": "2025-01-07T10:30:00.000+0000",
            },
        }
        self.issues[key] = issue
        return issue

    def set_status(self, key: str, status: str) -> None:
        self.issues[key]["fields"]["status"] = {"name": status, "statusCategory": _category(status)}

    def add_user(
        self,
        account_id: str,
        display_name: str,
        *,
        email: str | None = None,
        active: bool = True,
        account_type: str = "atlassian",
    ) -> Obj:
        """A user as ``users/search`` lists one (an app user has no email, no locale)."""
        user: Obj = {"accountId": account_id, "accountType": account_type}
        if email is not None:
            user["emailAddress"] = email
        user["avatarUrls"] = {
            size: f"https://avatars.example/{account_id}/{size.split('x')[0]}"
            for size in ("48x48", "24x24", "16x16", "32x32")
        }
        user["displayName"] = display_name
        user["active"] = active
        if account_type == "atlassian":
            user["timeZone"] = "Europe/London"
            user["locale"] = "en_US"
        self.users[account_id] = user
        return user

    # --- HTTP -----------------------------------------------------------------------------

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        query = dict(
            urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        )
        self.requests.append((scope["path"], query))
        status, body = self._respond(scope, query)
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _respond(self, scope: Mapping[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        if scope["method"] != "GET":
            return 405, _errors(f"method {scope['method']} not allowed")
        if not self._authorized(scope):
            return 401, _errors("Client must be authenticated to access this resource.")
        path = scope["path"]
        if path == "/rest/api/3/search/jql":
            return self._search(query)
        if path == "/rest/api/3/project/search":
            return self._project_search(query)
        if path == "/rest/api/3/users/search":
            return self._user_search(query)
        match = _PROJECT_PATH.match(path)
        if match is not None:
            key = urllib.parse.unquote(match["key"])
            project = self.projects.get(key)
            if project is None:
                return 404, _errors(f"No project could be found with key '{key}'.")
            return 200, {**project, "self": f"{self.base_url}/rest/api/3/project/{project['id']}"}
        return 404, _errors(f"no emulated endpoint at {path}")

    def _authorized(self, scope: Mapping[str, Any]) -> bool:
        if self.email is None:
            return True
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        headers = dict(scope["headers"])
        authorization: bytes = headers.get(b"authorization", b"")
        return authorization.decode() == f"Basic {expected}"

    def _search(self, query: dict[str, str]) -> tuple[int, Obj]:
        jql = query.get("jql")
        if jql is None:
            return 400, _errors("The 'jql' parameter is required.")
        self.jql_seen.append(jql)
        try:
            matches = compile_jql(jql)
            max_results = max(
                1, min(int(query.get("maxResults", MAX_RESULTS_DEFAULT)), MAX_RESULTS_LIMIT)
            )
            offset = _decode_token(query["nextPageToken"], jql) if "nextPageToken" in query else 0
        except (JqlError, ValueError) as error:
            return 400, _errors(str(error))
        found = [issue for issue in self.issues.values() if matches(issue)]
        page = found[offset : offset + max_results]
        expand = _names(query.get("expand"))
        body: Obj = {"issues": [self._shape(issue, query.get("fields"), expand) for issue in page]}
        if "names" in expand:
            body["names"] = {name: name.title() for issue in page for name in issue["fields"]}
        if offset + max_results < len(found):
            body["nextPageToken"] = _encode_token(offset + max_results, jql)
            body["isLast"] = False
        else:
            body["isLast"] = True
        return 200, body

    def _shape(self, issue: Obj, fields: str | None, expand: set[str]) -> Obj:
        if not fields:
            shaped: Obj = {"id": issue["id"]}
        else:
            wanted = _names(fields)
            shown = (
                issue["fields"]
                if wanted & {"*all", "*navigable"}
                else {k: v for k, v in issue["fields"].items() if k in wanted}
            )
            shaped = {
                "expand": "renderedFields,names,schema,operations,editmeta,changelog",
                "id": issue["id"],
                "self": f"{self.base_url}/rest/api/3/issue/{issue['id']}",
                "key": issue["key"],
                "fields": _copy(shown),  # callers may not alias our state
            }
        if "changelog" in expand:
            shaped["changelog"] = {"startAt": 0, "maxResults": 0, "total": 0, "histories": []}
        return shaped

    def _project_search(self, query: dict[str, str]) -> tuple[int, Any]:
        try:
            start_at, max_results = _paging(query, PROJECT_SEARCH_LIMIT)
        except ValueError as error:
            return 400, _errors(str(error))
        expand = _names(query.get("expand"))
        ordered = [self.projects[key] for key in sorted(self.projects)]
        values = [
            self._listed_project(p, expand) for p in ordered[start_at : start_at + max_results]
        ]
        search = f"{self.base_url}/rest/api/3/project/search"
        is_last = start_at + max_results >= len(ordered)
        body: Obj = {"self": f"{search}?startAt={start_at}&maxResults={max_results}"}
        if not is_last:
            body["nextPage"] = f"{search}?startAt={start_at + max_results}&maxResults={max_results}"
        body.update(
            maxResults=max_results,
            startAt=start_at,
            total=len(ordered),
            isLast=is_last,
            values=values,
        )
        return 200, body

    def _listed_project(self, project: Obj, expand: set[str]) -> Obj:
        listed: Obj = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": f"{self.base_url}/rest/api/3/project/{project['id']}",
            "id": project["id"],
            "key": project["key"],
            "name": project["name"],
            "projectTypeKey": project["projectTypeKey"],
            "simplified": False,
            "style": "classic",
            "isPrivate": False,
            "properties": {},
        }
        if expand & {"lead", "*"}:
            listed["lead"] = _copy(project["lead"])
        if expand & {"insight", "*"}:
            mine = [
                i["fields"]
                for i in self.issues.values()
                if i["fields"]["project"]["key"] == project["key"]
            ]
            listed["insight"] = {"totalIssueCount": len(mine)}
            if mine:
                listed["insight"]["lastIssueUpdateTime"] = max(f["updated"] for f in mine)
        return listed

    def _user_search(self, query: dict[str, str]) -> tuple[int, Any]:
        try:
            start_at, max_results = _paging(query, USER_SEARCH_LIMIT)
        except ValueError as error:
            return 400, _errors(str(error))
        users = list(self.users.values())[start_at : start_at + max_results]
        return 200, [
            {"self": f"{self.base_url}/rest/api/3/user?accountId={u['accountId']}", **_copy(u)}
            for u in users
        ]


def _category(status: str) -> Obj:
    # Jira's three status categories, for the statuses tests use.
    if status.lower() == "done":
        return {"key": "done", "name": "Done"}
    if status.lower() == "to do":
        return {"key": "new", "name": "To Do"}
    return {"key": "indeterminate", "name": "In Progress"}


def _names(value: str | None) -> set[str]:
    """A comma-separated parameter (``fields``, ``expand``) as a set of names."""
    return {name.strip() for name in (value or "").split(",") if name.strip()}


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _paging(query: dict[str, str], limit: int) -> tuple[int, int]:
    """``startAt`` (default 0) and ``maxResults`` (default 50, cut to ``limit``)."""
    values = []
    for name, default in (("startAt", 0), ("maxResults", MAX_RESULTS_DEFAULT)):
        raw = query.get(name, str(default))
        if not (raw.isascii() and raw.isdigit()):
            raise ValueError(f"The value '{raw}' is invalid for the '{name}' parameter.")
        values.append(int(raw))
    return values[0], max(1, min(values[1], limit))


def _errors(message: str) -> Obj:
    return {"errorMessages": [message], "errors": {}}


def _encode_token(offset: int, jql: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, jql]).encode()).decode()


def _decode_token(token: str, jql: str) -> int:
    try:
        offset, token_jql = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise ValueError("The provided next page token is invalid.") from None
    if token_jql != jql or not isinstance(offset, int):
        raise ValueError("The provided next page token does not match the query.")
    return offset


@asynccontextmanager
async def serve_jira_emulator(emulator: JiraEmulator) -> AsyncIterator[str]:
    """Serve ``emulator`` on 127.0.0.1 (port 0) with hypercorn; yield its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            # hypercorn's ASGI TypedDicts are stricter than the spec (``more_body`` required).
            partial(serve, emulator, config, shutdown_trigger=shutdown.wait, mode="asgi")  # type: ignore[arg-type]
        )
        emulator.base_url = urls[0]
        try:
            yield urls[0]
        finally:
            shutdown.set()
