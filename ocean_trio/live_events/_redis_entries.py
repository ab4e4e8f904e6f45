"""The ``redis`` journal's key names and its stream-entry fields (pure: no I/O).

Every key starts with the settings' ``prefix``, so integrations sharing a Redis never meet.
An event is one stream entry whose fields are the ``events`` row of the SQLite journal;
a dead letter is the same fields plus ``status``, ``error``, ``attempts``, ``updated_at``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import cast

import attrs
from coredis.response.types import StreamEntry, StreamPendingExt

from ._event import WebhookEvent
from ._journal import EventStatus, JournalRecord, stored_payload

GROUP = "ocean-trio"
"""The consumer group of every shard stream (consumers are named by instance id)."""

Fields = Mapping[bytes, bytes]


@attrs.frozen
class RedisKeys:
    """The names of the journal's keys under ``prefix``."""

    prefix: str
    shards: int

    @property
    def seq(self) -> str:
        """The global event counter (``INCR``): every append and replay takes the next number."""
        return f"{self.prefix}:seq"

    @property
    def pending(self) -> str:
        """How many events wait in the shard streams, across instances (``max_pending``)."""
        return f"{self.prefix}:pending"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.prefix}:dead"

    @property
    def instances(self) -> str:
        """A sorted set of live processing instances, scored by when their heartbeat expires."""
        return f"{self.prefix}:instances"

    def stream(self, shard: int) -> str:
        return f"{self.prefix}:shard:{shard}"

    def lease(self, shard: int) -> str:
        return f"{self.prefix}:lease:{shard}"

    def dedup(self, path: str, delivery_id: str) -> str:
        # The path's length first: no (path, id) pair can spell another one's key.
        return f"{self.prefix}:dedup:{len(path)}:{path}:{delivery_id}"

    def shard_of(self, event: WebhookEvent) -> int:
        """The shard of ``event``: by group id (so a group stays in one shard, in order), else path."""
        return self.shard_for(event.group_id, event.path)

    def shard_for(self, group_id: str | None, path: str) -> int:
        key = group_id if group_id is not None else path
        return zlib.crc32(key.encode()) % self.shards

    def shard_of_stream(self, key: bytes | str) -> int:
        name = key.decode() if isinstance(key, bytes) else key
        return int(name.rpartition(":")[2])


def entry_parts(entry: StreamEntry) -> tuple[bytes, Fields]:
    """An entry's id and fields, typed as the ``decode_responses=False`` client returns them."""
    return cast(bytes, entry.identifier), cast(Fields, entry.field_values)


def pending_parts(pending: StreamPendingExt) -> tuple[bytes, int]:
    """A pending entry's id and how many times it was delivered."""
    return cast(bytes, pending.identifier), pending.delivered


def event_fields(event: WebhookEvent) -> list[str | bytes]:
    """``event`` as a flat field/value list for ``XADD`` (the script adds ``seq``)."""
    fields: list[str | bytes] = [
        "trace_id",
        event.trace_id,
        "path",
        event.path,
        "headers",
        json.dumps(event.headers),
        "body",
        event.body,
        "received_at",
        repr(event.received_at),
    ]
    if event.group_id is not None:
        fields += ["group_id", event.group_id]
    if event.delivery_id is not None:
        fields += ["delivery_id", event.delivery_id]
    return fields


class MalformedEntryError(ValueError):
    """A stream entry lacks a field or has one that does not parse (not written by us)."""


def decode_event(fields: Fields, *, parse: bool = False) -> tuple[int, WebhookEvent]:
    """The global seq and the event of a shard-stream entry; raises ``MalformedEntryError``."""
    try:
        seq = int(fields[b"seq"])
        headers = json.loads(fields[b"headers"])
        received_at = float(fields[b"received_at"])
        trace_id = fields[b"trace_id"].decode()
        path = fields[b"path"].decode()
        body = fields[b"body"]
    except (KeyError, ValueError) as error:
        raise MalformedEntryError(f"not a journal entry ({error!r})") from None
    event = WebhookEvent(
        trace_id=trace_id,
        payload=stored_payload(body, parse=parse),
        headers=headers,
        path=path,
        body=body,
        received_at=received_at,
        group_id=_optional(fields, b"group_id"),
        delivery_id=_optional(fields, b"delivery_id"),
    )
    return seq, event


def decode_record(fields: Fields, status: EventStatus | None = None) -> JournalRecord:
    """A dead letter (or, with ``status``, a pending entry) as a record with its payload parsed.

    A dead letter whose original entry was malformed still lists, with what it has.
    """
    try:
        seq, event = decode_event(fields, parse=True)
    except MalformedEntryError:
        seq, event = _salvage(fields)
    if status is not None:
        return JournalRecord(seq, event, status, None, 0, event.received_at)
    return JournalRecord(
        seq,
        event,
        EventStatus(fields.get(b"status", b"dead").decode()),
        _optional(fields, b"error"),
        int(fields.get(b"attempts", b"0")),
        float(fields.get(b"updated_at", b"0")),
    )


def _salvage(fields: Fields) -> tuple[int, WebhookEvent]:
    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    seq = int(fields[b"seq"]) if fields.get(b"seq", b"").isdigit() else 0
    event = WebhookEvent(
        trace_id=text(b"trace_id"),
        payload={},
        headers={},
        path=text(b"path"),
        body=fields.get(b"body", b""),
        received_at=0.0,
        group_id=_optional(fields, b"group_id"),
        delivery_id=_optional(fields, b"delivery_id"),
    )
    return seq, event


def _optional(fields: Fields, name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode(errors="replace")
