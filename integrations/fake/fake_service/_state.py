"""The tracker's data: projects and issues, seeded deterministically, and the changes made to them."""

from __future__ import annotations

import datetime
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

Obj = dict[str, Any]
Kind = Literal["issue", "project"]
STATUSES = ("todo", "in_progress", "in_review", "done")
PRIORITIES = ("low", "medium", "high")
PEOPLE = ("alice", "bob", "carol", "dave", "erin")
LABELS = ("backend", "frontend", "bug", "security", "ux", "infra", "docs")
PROJECT_STATUSES = ("active", "paused")
_PROJECTS = (
    ("WEB", "Website"),
    ("API", "Public API"),
    ("OPS", "Operations"),
    ("MOB", "Mobile app"),
)
_VERBS = ("Fix", "Add", "Refactor", "Document", "Speed up", "Remove", "Test")
_THINGS = (
    "login form",
    "search results",
    "rate limiter",
    "billing page",
    "deploy script",
    "webhook retries",
    "dark mode",
    "CSV export",
    "session cache",
    "onboarding flow",
)
# Seed timestamps start here so the seeded data is the same on every run.
_EPOCH = datetime.datetime(2025, 1, 6, 9, 0, tzinfo=datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen
class Change:
    """One change to announce: the webhook event name and the object as it is now."""

    event: str
    kind: Kind
    obj: Obj

    def payload(self) -> Obj:
        return {
            "webhookEvent": self.event,
            "timestamp": int(time.time() * 1000),
            self.kind: self.obj,
        }


class InvalidFields(ValueError):
    """A write names an unknown field or gives a value of the wrong shape (HTTP 400)."""


class TrackerState:
    """Projects (by key) and issues (by id); methods return copies, never the stored dicts."""

    def __init__(self, *, seed: int = 7, projects: int = 3, issues: int = 12) -> None:
        """``projects`` (at most 4) and ``issues`` generated from ``seed``; no projects, no issues."""
        if issues > 0 and projects < 1:
            raise ValueError("issues need at least one project")
        rng = random.Random(seed)
        self.api_url: str | None = None
        self._projects: dict[str, Obj] = {}
        # By id; ids only grow, so insertion order is id order (what paging relies on).
        self._issues: dict[str, Obj] = {}
        self._next_id = 10001
        self._next_number: dict[str, int] = {}
        for key, name in _PROJECTS[: max(0, min(projects, len(_PROJECTS)))]:
            self._projects[key] = {
                "key": key,
                "name": name,
                "lead": rng.choice(PEOPLE),
                "status": "active",
            }
        keys = list(self._projects)
        for n in range(issues):
            updated = _EPOCH + datetime.timedelta(minutes=37 * n + rng.randrange(30))
            self._add_issue(keys[n % len(keys)], self._random_fields(rng), updated)

    # reading

    def project(self, key: str) -> Obj | None:
        project = self._projects.get(key)
        return None if project is None else self._public("project", project)

    def projects(self) -> list[Obj]:
        return [self._public("project", p) for p in self._projects.values()]

    def issue(self, issue_id: str) -> Obj | None:
        issue = self._issues.get(issue_id)
        return None if issue is None else self._public("issue", issue)

    def issues(self, project: str | None = None) -> list[Obj]:
        return [
            self._public("issue", i)
            for i in self._issues.values()
            if project is None or i["projectKey"] == project
        ]

    def project_page(self, *, after: str | None, limit: int) -> tuple[list[Obj], bool]:
        """Up to ``limit`` projects in key order, keys after ``after``; and whether more follow."""
        keys = sorted(k for k in self._projects if after is None or k > after)
        return [self._public("project", self._projects[k]) for k in keys[:limit]], len(keys) > limit

    def issue_page(
        self, *, after: int | None, limit: int, project: str | None = None
    ) -> tuple[list[Obj], bool]:
        """Up to ``limit`` issues (of ``project``) in id order, ids above ``after``; and whether more follow."""
        page: list[Obj] = []
        for issue in self._issues.values():
            if (after is not None and int(issue["id"]) <= after) or (
                project is not None and issue["projectKey"] != project
            ):
                continue
            if len(page) == limit:
                return page, True
            page.append(self._public("issue", issue))
        return page, False

    def snapshot_changes(self) -> list[Change]:
        """One ``project_updated`` per project and one ``issue_created`` per issue: the initial fill."""
        return [Change("project_updated", "project", p) for p in self.projects()] + [
            Change("issue_created", "issue", i) for i in self.issues()
        ]

    # writing

    def create_issue(self, project: str, fields: Mapping[str, Any]) -> Change:
        if project not in self._projects:
            raise InvalidFields(f"unknown project {project!r}")
        values: Obj = {
            "title": "New issue",
            "status": "todo",
            "assignee": None,
            "priority": "medium",
            "labels": [],
            **_check_issue_fields(fields),
        }
        issue = self._add_issue(project, values, _now())
        return Change("issue_created", "issue", self._public("issue", issue))

    def update_issue(self, issue_id: str, fields: Mapping[str, Any]) -> Change | None:
        issue = self._issues.get(issue_id)
        if issue is None:
            return None
        issue.update(_check_issue_fields(fields))
        issue["updated"] = _iso(_now())
        return Change("issue_updated", "issue", self._public("issue", issue))

    def delete_issue(self, issue_id: str) -> Change | None:
        issue = self._issues.pop(issue_id, None)
        return (
            None
            if issue is None
            else Change("issue_deleted", "issue", self._public("issue", issue))
        )

    def update_project(self, key: str, fields: Mapping[str, Any]) -> Change | None:
        project = self._projects.get(key)
        if project is None:
            return None
        project.update(_check_project_fields(fields))
        return Change("project_updated", "project", self._public("project", project))

    def random_change(self, rng: random.Random) -> Change:
        """A plausible change: mostly issue edits, sometimes a new or deleted issue or a project edit."""
        roll = rng.random()
        issue_ids = list(self._issues)
        if not issue_ids or (roll < 0.1 and len(issue_ids) < 30):
            return self.create_issue(rng.choice(list(self._projects)), self._random_fields(rng))
        if roll < 0.2 and len(issue_ids) > 6:
            change = self.delete_issue(rng.choice(issue_ids))
        elif roll < 0.3:
            key = rng.choice(list(self._projects))
            field = rng.choice(("lead", "status"))
            value = rng.choice(PEOPLE if field == "lead" else PROJECT_STATUSES)
            change = self.update_project(key, {field: value})
        else:
            field = rng.choice(("status", "status", "assignee", "title", "priority", "labels"))
            change = self.update_issue(
                rng.choice(issue_ids), {field: self._random_fields(rng)[field]}
            )
        assert change is not None  # the id was picked from what exists
        return change

    # internals

    def _add_issue(
        self, project: str, values: Mapping[str, Any], updated: datetime.datetime
    ) -> Obj:
        number = self._next_number.get(project, 1)
        self._next_number[project] = number + 1
        issue = {
            "id": str(self._next_id),
            "key": f"{project}-{number}",
            "projectKey": project,
            **values,
            "updated": _iso(updated),
        }
        self._next_id += 1
        self._issues[issue["id"]] = issue
        return issue

    @staticmethod
    def _random_fields(rng: random.Random) -> Obj:
        return {
            "title": f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}",
            "status": rng.choice(STATUSES),
            "assignee": rng.choice((*PEOPLE, None)),
            "priority": rng.choice(PRIORITIES),
            "labels": sorted(rng.sample(LABELS, rng.randrange(3))),
        }

    def _public(self, kind: Kind, obj: Obj) -> Obj:
        # A copy with the object's API address, like Jira's "self".
        public = dict(obj, labels=list(obj["labels"])) if kind == "issue" else dict(obj)
        if self.api_url is not None:
            ident = obj["id"] if kind == "issue" else obj["key"]
            public["self"] = f"{self.api_url}/api/{kind}s/{ident}"
        return public


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_issue_fields(fields: Mapping[str, Any]) -> Obj:
    checks: dict[str, Callable[[Any], bool]] = {
        "title": lambda v: isinstance(v, str) and bool(v.strip()),
        "status": lambda v: v in STATUSES,
        "assignee": lambda v: v is None or isinstance(v, str),
        "priority": lambda v: v in PRIORITIES,
        "labels": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }
    return _check(fields, checks)


def _check_project_fields(fields: Mapping[str, Any]) -> Obj:
    checks: dict[str, Callable[[Any], bool]] = {
        "name": lambda v: isinstance(v, str) and bool(v.strip()),
        "lead": lambda v: v is None or isinstance(v, str),
        "status": lambda v: v in PROJECT_STATUSES,
    }
    return _check(fields, checks)


def _check(fields: Mapping[str, Any], checks: Mapping[str, Callable[[Any], bool]]) -> Obj:
    for name, value in fields.items():
        if name not in checks:
            raise InvalidFields(f"unknown field {name!r} (allowed: {', '.join(checks)})")
        if not checks[name](value):
            raise InvalidFields(f"invalid value for {name!r}: {json.dumps(value)}")
    return dict(fields)
