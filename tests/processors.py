"""Processors shared by the test suites: an event's ``item`` is the fresh data of kind ``item``."""

from __future__ import annotations

from ocean_trio import (
    AbstractWebhookProcessor,
    EventHeaders,
    EventPayload,
    ResourceConfig,
    WebhookEvent,
    WebhookEventRawResults,
)


class ItemProcessor(AbstractWebhookProcessor):
    """Accepts every event as kind ``item``, grouped by item id, and returns ``payload["item"]``
    as updated, or as deleted when ``payload["action"] == "deleted"``. Tests override a method
    or two."""

    @classmethod
    def group_key(cls, event: WebhookEvent) -> str | None:
        item = event.payload.get("item")
        return str(item["id"]) if isinstance(item, dict) and "id" in item else None

    async def should_process_event(self, event: WebhookEvent) -> bool:
        return True

    async def get_matching_kinds(self, event: WebhookEvent) -> list[str]:
        return ["item"]

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        return True

    async def validate_payload(self, payload: EventPayload) -> bool:
        return True

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if payload.get("action") == "deleted":
            return WebhookEventRawResults(
                updated_raw_results=[], deleted_raw_results=[payload["item"]]
            )
        return WebhookEventRawResults(updated_raw_results=[payload["item"]], deleted_raw_results=[])
