"""Shared fixtures: a throw-away integration folder with a mapping, and its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

ITEM_MAPPING = """
resources:
  - kind: item
    selector:
      query: '.status != "archived"'
    port:
      entity:
        mappings:
          identifier: .id
          title: .title
          blueprint: '"item"'
          properties:
            status: .status
  - kind: item
    selector:
      query: '.priority == "high"'
    port:
      entity:
        mappings:
          identifier: .id
          blueprint: '"urgentItem"'
          properties:
            priority: .priority
"""


@pytest.fixture
def integration_root(tmp_path: Path) -> Path:
    """A folder with ``.port/resources/port-app-config.yml`` mapping kind ``item`` twice."""
    resources = tmp_path / "integration" / ".port" / "resources"
    resources.mkdir(parents=True)
    (resources / "port-app-config.yml").write_text(ITEM_MAPPING)
    return tmp_path / "integration"
