"""Ocean's Jira integration processors on ocean-trio (run with ``ocean-trio sail integrations/jira``)."""
