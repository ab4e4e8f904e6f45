"""Which of Port's Kafka messages ask an integration for a resync: Ocean's topics, group and filter.

Pure functions over the message's bytes, no Kafka client: ``KafkaListener`` applies them to what
it consumes, and tests check them case by case against Ocean's rules
(``port_ocean/core/event_listener/kafka.py``, ``_should_be_processed``):

- on ``<org>.integration.resync.requests``: a request iff ``context.integrationId`` is ours;
- on ``<org>.change.log``: a request iff ``context.integrationId`` is ours and ``action`` is
  ``"RESYNC"``; otherwise look at ``diff.after`` (the integration after the change): not when
  it is null (a deletion), not when ``after.identifier`` is another integration's, not when
  ``after.updatedAt == after.resyncState.updatedAt`` (only the resync state changed), and then
  iff the message's ``changelogDestination.type`` is ``"KAFKA"``.

Ocean reads fields with ``dict.get(key, {})``, so a field that is present but not an object
(``"context": null``) raises there and the message is dropped with an error in the log: such a
message is ``MALFORMED`` here, and asks for nothing, as in Ocean. So are a body that is not
UTF-8 JSON or not an object; an empty body (a tombstone) is ``IGNORED``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable

RESYNC_REQUESTS_TOPIC_FLAG = "OCEAN_KAFKA_INTEGRATION_RESYNC_REQUESTS_TOPIC_ENABLED"
"""The organization feature flag that moves the listener to the resync-requests topic."""

NO_SECURITY_GROUP_ID = "no-security"
"""Ocean's consumer group when ``kafkaSecurityEnabled`` is false (one group for every integration)."""


class Verdict(enum.Enum):
    """What one message means for one integration."""

    RESYNC_REQUESTED = "resync requested"
    INTEGRATION_CHANGED = "integration changed"
    IGNORED = "ignored"
    MALFORMED = "malformed"

    @property
    def asks_for_resync(self) -> bool:
        return self in (Verdict.RESYNC_REQUESTED, Verdict.INTEGRATION_CHANGED)


def change_log_topic(org_id: str) -> str:
    """Port's change log of an organization: ``<org>.change.log``."""
    return f"{org_id}.change.log"


def resync_requests_topic(org_id: str) -> str:
    """Port's resync requests of an organization: ``<org>.integration.resync.requests``."""
    return f"{org_id}.integration.resync.requests"


def topic_for(org_id: str, feature_flags: Iterable[str]) -> str:
    """The topic Ocean consumes: resync requests when the org has the flag, else the change log."""
    if RESYNC_REQUESTS_TOPIC_FLAG in feature_flags:
        return resync_requests_topic(org_id)
    return change_log_topic(org_id)


def group_id(
    org_id: str, integration_type: str, integration_identifier: str, *, security_enabled: bool
) -> str:
    """Ocean's consumer group: ``<org>.<type>.<identifier>``, or ``no-security`` without security."""
    if not security_enabled:
        return NO_SECURITY_GROUP_ID
    return f"{org_id}.{integration_type}.{integration_identifier}"


def judge(value: bytes | None, topic: str | None, integration_identifier: str) -> Verdict:
    """What the message ``value`` read from ``topic`` means for ``integration_identifier``."""
    if value is None or topic is None:
        return Verdict.IGNORED
    try:
        message = json.loads(value.decode())
        return _ocean_filter(message, topic, integration_identifier)
    except (ValueError, _NotAnObject):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return Verdict.MALFORMED


class _NotAnObject(Exception):
    """Ocean would have called ``.get`` on something that is not a dict (and raised)."""


def _get(container: object, key: str, default: object) -> object:
    if not isinstance(container, dict):
        raise _NotAnObject(key)
    return container.get(key, default)


def _ocean_filter(message: object, topic: str, identifier: str) -> Verdict:
    # Same order of reads as Ocean's, so the same messages raise (MALFORMED) there and here.
    if "integration.resync.requests" in topic:
        asked_for = _get(_get(message, "context", {}), "integrationId", None)
        return Verdict.RESYNC_REQUESTED if asked_for == identifier else Verdict.IGNORED
    if (
        "change.log" in topic
        and _get(_get(message, "context", {}), "integrationId", None) == identifier
        and _get(message, "action", "") == "RESYNC"
    ):
        return Verdict.RESYNC_REQUESTED
    after = _get(_get(message, "diff", {}), "after", {})
    if after is None:
        return Verdict.IGNORED  # the integration was deleted
    if _get(after, "identifier", None) != identifier:
        return Verdict.IGNORED
    if _get(after, "updatedAt", None) == _get(_get(after, "resyncState", {}), "updatedAt", None):
        return Verdict.IGNORED  # only its resync state changed
    if "change.log" in topic:
        destination = _get(_get(message, "changelogDestination", {}), "type", "")
        return Verdict.INTEGRATION_CHANGED if destination == "KAFKA" else Verdict.IGNORED
    return Verdict.IGNORED
