"""Live event values: ``WebhookEvent`` (what arrived) and ``WebhookEventRawResults`` (what a processor found)."""

from __future__ import annotations

import datetime
import json
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

EventPayload = dict[str, Any]
"""The webhook's JSON body (always an object)."""

EventHeaders = dict[str, str]
"""Request headers, names lower-cased; repeated headers joined with ``", "``."""


# Trace ids need uniqueness, not secrecy: a PRNG seeded once from the OS avoids a getrandom()
# system call per event (measurable at thousands of events per second).
_trace_ids = random.Random()


def new_trace_id() -> str:
    """A random (version 4) UUID string identifying one event."""
    return str(uuid.UUID(int=_trace_ids.getrandbits(128), version=4))


@attrs.frozen
class RawRequest:
    """What is left of the HTTP request: its exact body and headers (for signature checks).

    Mirrors Ocean's ``WebhookRequestAdapter`` so ported code calling ``await request.body()``
    keeps working, also for events replayed from the journal.
    """

    raw_body: bytes
    headers: EventHeaders

    async def body(self) -> bytes:
        return self.raw_body

    async def json(self) -> Any:
        return json.loads(self.raw_body)


@attrs.frozen(eq=False)
class WebhookEvent:
    """One live event as received on a webhook path.

    ``body`` is the exact request body, so processors can verify signatures; ``payload`` is
    that body parsed. ``group_id`` is the ordering key: events sharing it are processed one
    at a time, in arrival order.
    """

    trace_id: str
    payload: EventPayload
    headers: EventHeaders
    path: str = ""
    body: bytes = b""
    received_at: float = attrs.field(factory=time.time)
    group_id: str | None = None
    delivery_id: str | None = None

    @classmethod
    def from_body(
        cls,
        path: str,
        body: bytes,
        payload: EventPayload,
        headers: Mapping[str, str],
        *,
        group_id: str | None = None,
        delivery_id: str | None = None,
    ) -> WebhookEvent:
        """An event just received: new trace id, received now."""
        return cls(
            trace_id=new_trace_id(),
            payload=payload,
            headers=dict(headers),
            path=path,
            body=body,
            group_id=group_id,
            delivery_id=delivery_id,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookEvent:
        """Ocean's ``WebhookEvent.from_dict``: trace_id, payload, headers (tests and replays)."""
        payload = data["payload"]
        return cls(
            trace_id=str(data.get("trace_id") or new_trace_id()),
            payload=payload,
            headers=dict(data.get("headers") or {}),
            path=str(data.get("path", "")),
            body=data.get("body") or json.dumps(payload).encode(),
            group_id=data.get("group_id"),
        )

    @property
    def created_at(self) -> datetime.datetime:
        """When the event was received (UTC), Ocean's name."""
        return datetime.datetime.fromtimestamp(self.received_at, tz=datetime.UTC)

    @property
    def original_request(self) -> RawRequest:
        """The raw body and headers, as Ocean's ``_original_request`` gives them."""
        return RawRequest(self.body, self.headers)

    @property
    def _original_request(self) -> RawRequest:
        return self.original_request

    def clone(self) -> WebhookEvent:
        """Events are immutable; a clone is the same event (Ocean parity, group id kept)."""
        return self


@attrs.define
class WebhookEventRawResults:
    """What ``handle_event`` returns: raw items to upsert and raw items to delete."""

    updated_raw_results: list[dict[str, Any]] = attrs.field(factory=list)
    deleted_raw_results: list[dict[str, Any]] = attrs.field(factory=list)
