"""The resource kinds of the Jira integration (Ocean's ``kinds.Kinds``)."""

from __future__ import annotations


class Kinds:
    ISSUE = "issue"
    PROJECT = "project"
    USER = "user"
