"""Example integrations; each folder runs with ``ocean-trio sail integrations/<name>``."""
