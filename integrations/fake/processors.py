"""Live event processors for FakeTracker webhooks: check the signature, fetch the fresh object.

Both processors trust nothing in the payload but the object's id. The HMAC of the exact body
was checked at ingress (``main.py`` registers the verifier), so only authentic events were
journaled; ``authenticate`` checks it again, as a processor ported from Ocean does (and as
a replay of an event journaled before the verifier existed needs). ``handle_event`` fetches
the object from the tracker's API (a ``404`` means it is gone, so its entities are deleted;
a ``5xx`` or a transport error is retried). Events about one object share a ``group_key``,
so they are applied in order.

Each fetch opens its own ``httpx.AsyncClient`` (``tracker_client()``): the tracker is on
loopback, where a new connection costs well under a millisecond, and a client per call has an
obvious lifetime (no pool outliving the trio run that made it, nothing to close at shutdown).
The clients share one TLS context, because building one (loading the CA bundle) blocks the
event loop for ~40 ms. A remote service over TLS would rather get one client owned by the app.

The resync (``main.py``) reads the same API a page at a time (``fetch_page``), with one
client per resync run; the objects it lists have the very shape ``handle_event`` fetches, so
the mapping gives the same entities for an object whichever way it came.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, ClassVar

import httpx

from ocean_trio import (
    AbstractWebhookProcessor,
    ConfigError,
    EventHeaders,
    EventPayload,
    ResourceConfig,
    RetryableError,
    WebhookEvent,
    WebhookEventRawResults,
    logger,
    ocean,
)

SIGNATURE_HEADER = "x-fake-signature"  # EventHeaders names are lower-case
DEFAULT_API_PORT = 8001
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100  # the tracker refuses larger pages (perPage)
_TLS = httpx.create_ssl_context()  # shared by every client (see the module docstring)


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=`` + hex HMAC-SHA256 of ``body``; constant time."""
    if not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def api_url() -> str:
    """The tracker's API: ``fake_api_url`` (set once the tracker is up), else its configured port."""
    config = ocean.integration_config
    url = config.get("fake_api_url")
    if isinstance(url, str) and url:
        return url.rstrip("/")
    return f"http://127.0.0.1:{config.get('fake_api_port', DEFAULT_API_PORT)}"


def tracker_client() -> httpx.AsyncClient:
    """A client for the tracker's API (``api_url()``); close it (``async with``)."""
    return httpx.AsyncClient(base_url=api_url(), verify=_TLS)


def resync_page_size() -> int:
    """``integration.config.pageSize``: objects per page (and batch) in a resync, 1 to 100."""
    value = ocean.integration_config.get("page_size", DEFAULT_PAGE_SIZE)
    try:
        size = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ConfigError(
            f"integration.config.pageSize must be an integer from 1 to {MAX_PAGE_SIZE},"
            f" got {value!r}"
        )
    return size


async def fetch_page(
    client: httpx.AsyncClient, url: str
) -> tuple[list[dict[str, Any]], str | None]:
    """GET one page of a list: its objects, and the next page's URL (``Link: rel="next"``) or ``None``.

    An error status raises ``httpx.HTTPStatusError`` with the tracker's message; a transport
    error propagates (``httpx.TransportError``): a resync does not retry a page, it fails
    the kind.
    """
    response = await client.get(url)
    if response.is_error:
        raise httpx.HTTPStatusError(
            f"GET {url}: HTTP {response.status_code}: {response.text[:200]}",
            request=response.request,
            response=response,
        )
    page = response.json()
    if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
        raise ValueError(f"GET {url}: expected a JSON array of objects")
    next_url = response.links.get("next", {}).get("url")
    return page, next_url


async def fetch_json(client: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
    """GET ``path``: the object, ``None`` on 404; ``RetryableError`` when trying again may help."""
    try:
        response = await client.get(path)
    except httpx.TransportError as error:
        raise RetryableError(f"GET {path}: {error!r}") from error
    if response.status_code == 404:
        return None
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableError(f"GET {path}: HTTP {response.status_code}")
    response.raise_for_status()  # any other error status is a bug, not worth a retry
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"GET {path}: expected a JSON object, got {type(data).__name__}")
    return data


class FakeTrackerProcessor(AbstractWebhookProcessor):
    """What both processors share: event selection, signature check, fetching.

    Subclasses set ``kind`` (the payload key and resource kind), ``id_field`` (the field
    naming the object in the API) and ``deleted_event``.
    """

    kind: ClassVar[str]
    id_field: ClassVar[str]
    deleted_event: ClassVar[str | None] = None

    @classmethod
    def object_id(cls, payload: EventPayload) -> str | None:
        obj = payload.get(cls.kind)
        value = obj.get(cls.id_field) if isinstance(obj, dict) else None
        return value if isinstance(value, str) and value else None

    @classmethod
    def _is_ours(cls, payload: EventPayload) -> bool:
        name = payload.get("webhookEvent")
        return isinstance(name, str) and name.startswith(cls.kind + "_")

    @classmethod
    def group_key(cls, event: WebhookEvent) -> str | None:
        """The object's id: events about one object are processed one at a time, in order."""
        return cls.object_id(event.payload) if cls._is_ours(event.payload) else None

    async def should_process_event(self, event: WebhookEvent) -> bool:
        return self._is_ours(event.payload)

    async def get_matching_kinds(self, event: WebhookEvent) -> list[str]:
        return [self.kind]

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        secret = ocean.integration_config.get("webhook_secret")
        if not isinstance(secret, str) or not secret:
            logger.error("integration.config.webhookSecret is not set: rejecting every event")
            return False
        return verify_signature(secret, self.event.body, headers.get(SIGNATURE_HEADER))

    async def validate_payload(self, payload: EventPayload) -> bool:
        return self.object_id(payload) is not None and isinstance(
            payload[self.kind].get("key"), str
        )

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        reference = payload[self.kind]
        if payload["webhookEvent"] == self.deleted_event:
            return WebhookEventRawResults(updated_raw_results=[], deleted_raw_results=[reference])
        path = f"/api/{self.kind}s/{self.object_id(payload)}"
        async with tracker_client() as client:
            fresh = await fetch_json(client, path)
        if fresh is None:
            logger.info("%s %s no longer exists: deleting it", self.kind, reference["key"])
            return WebhookEventRawResults(updated_raw_results=[], deleted_raw_results=[reference])
        return WebhookEventRawResults(updated_raw_results=[fresh], deleted_raw_results=[])


class IssueWebhookProcessor(FakeTrackerProcessor):
    """``issue_created`` / ``issue_updated`` / ``issue_deleted``, ordered per issue id."""

    kind = "issue"
    id_field = "id"
    deleted_event = "issue_deleted"


class ProjectWebhookProcessor(FakeTrackerProcessor):
    """``project_*`` events, ordered per project key."""

    kind = "project"
    id_field = "key"
    deleted_event = "project_deleted"
