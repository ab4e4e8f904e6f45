"""Shared fixtures: a throw-away integration folder with a mapping, and its settings."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

# CI (``CI=true``, as .ci/run is run) replays the same examples each time, so a submission
# never fails on a new random example; local runs stay random and keep finding them
# (``FUZZ_EXAMPLES=3000`` runs the ingress fuzz longer).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

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


MAIN = textwrap.dedent(
    """
    from ocean_trio import AbstractWebhookProcessor, WebhookEventRawResults, ocean


    class Echo(AbstractWebhookProcessor):
        async def should_process_event(self, event):
            return True

        async def get_matching_kinds(self, event):
            return ["item"]

        async def authenticate(self, payload, headers):
            return True

        async def validate_payload(self, payload):
            return True

        async def handle_event(self, payload, resource_config):
            return WebhookEventRawResults(updated_raw_results=[payload], deleted_raw_results=[])


    ocean.add_webhook_processor("/webhook", Echo)
    app = ocean.asgi_app(__file__)
    """
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """An importable integration package ``smoke_integration`` under ``tmp_path``."""
    root = tmp_path / "smoke_integration"
    (root / ".port" / "resources").mkdir(parents=True)
    (root / ".port" / "resources" / "port-app-config.yml").write_text(ITEM_MAPPING)
    (root / "__init__.py").write_text("")
    (root / "main.py").write_text(MAIN)
    return root
