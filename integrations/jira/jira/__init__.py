"""The Jira integration's own modules (``jira.overrides``), as in Ocean's Jira integration.

A regular package (this file) on purpose: with the integration's folder first on
``sys.path``, ``import jira`` finds it before any installed ``jira`` distribution.
"""
