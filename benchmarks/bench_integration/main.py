"""The benchmark's integration: signed events whose payload is the item itself, mapped directly."""

from __future__ import annotations

import hashlib
import hmac
import os

from ocean_trio import (
    AbstractWebhookProcessor,
    EventHeaders,
    EventPayload,
    ResourceConfig,
    WebhookEvent,
    WebhookEventRawResults,
    ocean,
)

SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "bench-secret").encode()


class ItemProcessor(AbstractWebhookProcessor):
    """Checks the HMAC signature of the raw body and returns the payload as the fresh item."""

    @classmethod
    def group_key(cls, event: WebhookEvent) -> str | None:
        return str(event.payload.get("id"))

    async def should_process_event(self, event: WebhookEvent) -> bool:
        return event.payload.get("type") == "item"

    async def get_matching_kinds(self, event: WebhookEvent) -> list[str]:
        return ["item"]

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        expected = "sha256=" + hmac.new(SECRET, self.event.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("x-signature-256", ""))

    async def validate_payload(self, payload: EventPayload) -> bool:
        return "id" in payload

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        return WebhookEventRawResults(updated_raw_results=[payload], deleted_raw_results=[])


ocean.add_webhook_processor("/webhook", ItemProcessor)

app = ocean.asgi_app(__file__)
