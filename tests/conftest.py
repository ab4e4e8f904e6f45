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


# Each application of an event is logged in APPLIED_LOG ("<trace id> <pid> <item id>
# <title>", one line, appended whole): what the kill -9 tests count (split, Redis).
# Grouped by item id, so an item's versions apply in the order they were acknowledged.
LOGGED_MAIN = textwrap.dedent(
    """
    import os
    from ocean_trio import AbstractWebhookProcessor, WebhookEventRawResults, ocean


    class Item(AbstractWebhookProcessor):
        @classmethod
        def group_key(cls, event):
            return event.payload["id"]

        async def should_process_event(self, event):
            return True

        async def get_matching_kinds(self, event):
            return ["item"]

        async def authenticate(self, payload, headers):
            return True

        async def validate_payload(self, payload):
            return True

        async def handle_event(self, payload, resource_config):
            if resource_config.port.entity.mappings.blueprint == '"item"':
                line = f"{self.event.trace_id} {os.getpid()} {payload['id']} {payload['title']}\\n"
                fd = os.open(os.environ["APPLIED_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            return WebhookEventRawResults(updated_raw_results=[payload], deleted_raw_results=[])


    ocean.add_webhook_processor("/webhook", Item)
    app = ocean.asgi_app(__file__)

    @ocean.on_start()
    async def started():
        with open(os.environ["STARTS_LOG"], "a") as log:
            log.write(f"{os.getpid()}\\n")
    """
)


@pytest.fixture
def logged_package(tmp_path: Path) -> Path:
    """An importable integration package (``split_integration.main:app``) running LOGGED_MAIN."""
    root = tmp_path / "split_integration"
    (root / ".port" / "resources").mkdir(parents=True)
    (root / ".port" / "resources" / "port-app-config.yml").write_text(ITEM_MAPPING)
    (root / "__init__.py").write_text("")
    (root / "main.py").write_text(LOGGED_MAIN)
    return root
