"""The relay's WebSocket protocol: JSON text messages, one per frame (docs/relay.md).

Relay → integration: ``hello`` (once, first), ``event``, ``ping``. Integration → relay:
``ready`` (once, answering ``hello``), ``ack``, ``pong``. Pure functions over frozen
values: both sides encode and decode here, and a malformed message is a ``ProtocolError``
naming what is wrong (the side that gets one closes the connection).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from .._exceptions import OceanError

PROTOCOL_VERSION = 1
CONNECT_PATH = "/relay/connect"

CLOSE_REPLACED = 4000
"""Close code: a newer connection of the integration took this one's place."""
CLOSE_SILENT = 4001
"""Close code: nothing came from the peer within the heartbeat's horizon."""
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1008  # policy violation: a message this protocol does not allow
CLOSE_TRY_AGAIN_LATER = 1013


class ProtocolError(OceanError):
    """A message that does not follow the relay protocol; the connection is closed."""


def fallback_delivery_id(relay_id: str, seq: int) -> str:
    """The delivery id of a relayed event whose sender gave none: stable across the
    relay's redeliveries (the relay's identity and the event's number in its journal)."""
    return f"relay:{relay_id}:{seq}"


class AckStatus(enum.StrEnum):
    """How the integration took a relayed event; each is final for the relay."""

    JOURNALED = "journaled"
    DUPLICATE = "duplicate"  # journaled before (a redelivery, or the sender's retry)
    REFUSED = (
        "refused"  # never will be (bad signature, bad body, no processors): ``error`` says why
    )


@attrs.frozen
class Hello:
    """First message of the relay: who it is and how the session runs."""

    relay_id: str
    max_in_flight: int
    heartbeat_seconds: float
    protocol: int = PROTOCOL_VERSION


@attrs.frozen
class Ready:
    """The integration's answer to ``hello``: the largest body it takes (bigger events are
    refused by the relay for it, so no message exceeds what the integration reads)."""

    max_body_bytes: int


@attrs.frozen(eq=False)
class RelayedEvent:
    """A pending event of the relay's journal, as received from its sender."""

    seq: int
    path: str  # the webhook path, ``/webhook`` (served as ``/integration/webhook``)
    headers: Mapping[str, str]  # lower-case names, as the relay's ingress recorded them
    body: bytes
    trace_id: str
    received_at: float
    delivery_id: str | None = None


@attrs.frozen
class Ack:
    """The integration took event ``seq`` for good: journaled, a duplicate, or refused."""

    seq: int
    status: AckStatus
    trace_id: str | None = None  # the integration's trace id (journaled, duplicate)
    error: str | None = None  # why it was refused


@attrs.frozen
class Ping:
    """Heartbeat from the relay; answered with ``Pong``."""


@attrs.frozen
class Pong:
    """Answer to ``Ping``."""


FromRelay = Hello | RelayedEvent | Ping
FromIntegration = Ready | Ack | Pong


def encode(message: FromRelay | FromIntegration) -> str:
    """One message as the JSON text of its frame."""
    data: dict[str, Any]
    if isinstance(message, Hello):
        data = {
            "type": "hello",
            "protocol": message.protocol,
            "relay_id": message.relay_id,
            "max_in_flight": message.max_in_flight,
            "heartbeat_seconds": message.heartbeat_seconds,
        }
    elif isinstance(message, RelayedEvent):
        data = {
            "type": "event",
            "seq": message.seq,
            "path": message.path,
            "headers": dict(message.headers),
            "body": base64.b64encode(message.body).decode("ascii"),
            "trace_id": message.trace_id,
            "received_at": message.received_at,
            "delivery_id": message.delivery_id,
        }
    elif isinstance(message, Ready):
        data = {"type": "ready", "max_body_bytes": message.max_body_bytes}
    elif isinstance(message, Ack):
        data = {"type": "ack", "seq": message.seq, "status": message.status.value}
        if message.trace_id is not None:
            data["trace_id"] = message.trace_id
        if message.error is not None:
            data["error"] = message.error
    elif isinstance(message, Ping):
        data = {"type": "ping"}
    else:
        data = {"type": "pong"}
    return json.dumps(data, separators=(",", ":"))


def decode_from_relay(text: str | bytes) -> FromRelay:
    """A message the relay sent; ``ProtocolError`` when it is not one."""
    data = _object(text)
    kind = data.get("type")
    if kind == "event":
        return RelayedEvent(
            seq=_seq(data),
            path=_path(data),
            headers=_headers(data),
            body=_body(data),
            trace_id=_str(data, "trace_id"),
            received_at=_number(data, "received_at"),
            delivery_id=_optional_str(data, "delivery_id"),
        )
    if kind == "ping":
        return Ping()
    if kind == "hello":
        protocol = _int(data, "protocol", minimum=1)
        if protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the relay speaks protocol {protocol}; this integration speaks"
                f" {PROTOCOL_VERSION} (run the same ocean-trio version on both sides)"
            )
        return Hello(
            relay_id=_str(data, "relay_id"),
            max_in_flight=_int(data, "max_in_flight", minimum=1),
            heartbeat_seconds=_number(data, "heartbeat_seconds", positive=True),
            protocol=protocol,
        )
    raise ProtocolError(f"unknown message type {kind!r} from the relay")


def decode_from_integration(text: str | bytes) -> FromIntegration:
    """A message the integration sent; ``ProtocolError`` when it is not one."""
    data = _object(text)
    kind = data.get("type")
    if kind == "ack":
        raw_status = data.get("status")
        try:
            status = AckStatus(str(raw_status))
        except ValueError:
            raise ProtocolError(f"ack: unknown status {raw_status!r}") from None
        return Ack(
            seq=_seq(data),
            status=status,
            trace_id=_optional_str(data, "trace_id"),
            error=_optional_str(data, "error"),
        )
    if kind == "pong":
        return Pong()
    if kind == "ready":
        return Ready(max_body_bytes=_int(data, "max_body_bytes", minimum=1))
    raise ProtocolError(f"unknown message type {kind!r} from the integration")


def _object(text: str | bytes) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ProtocolError("binary frame: the protocol sends JSON text frames only")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ProtocolError(f"message is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError("message is not a JSON object")
    return data


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{data.get('type')}: {key} must be a non-empty string")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{data.get('type')}: {key} must be a string or null")
    return value


def _int(data: Mapping[str, Any], key: str, *, minimum: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError(f"{data.get('type')}: {key} must be an integer >= {minimum}")
    return value


def _seq(data: Mapping[str, Any]) -> int:
    return _int(data, "seq", minimum=1)


def _number(data: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
    value = data.get(key)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or (positive and value <= 0)
    ):
        kind = "a positive number" if positive else "a number"
        raise ProtocolError(f"{data.get('type')}: {key} must be {kind}")
    return float(value)


def _path(data: Mapping[str, Any]) -> str:
    path = _str(data, "path")
    if not path.startswith("/"):
        raise ProtocolError(f"event: path must start with '/', not {path!r}")
    return path


def _headers(data: Mapping[str, Any]) -> dict[str, str]:
    headers = data.get("headers")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ProtocolError("event: headers must be an object of strings")
    return {k.lower(): v for k, v in headers.items()}


def _body(data: Mapping[str, Any]) -> bytes:
    body = data.get("body")
    if not isinstance(body, str):
        raise ProtocolError("event: body must be a base64 string")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ProtocolError(f"event: body is not valid base64: {error}") from None
