"""Port's Kafka messages for tests: what Port publishes to ask an integration for a resync.

``open_port_kafka(bootstrap_servers, org_id)`` yields a ``PortKafka`` that creates the
organization's topics and publishes Port-shaped messages to them: a resync request (on the
change log or the resync-requests topic), an integration updated (its config changed, or only
its resync state), an integration deleted. It also reads a consumer group's committed offsets
and state, so a test can check what a listener acknowledged and that it left its group.

The message builders (``resync_request_message``, ``integration_change_message``) are plain
functions returning dicts, for tests that need no broker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import trio
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ..resync._kafka_messages import change_log_topic, resync_requests_topic

_log = logging.getLogger("ocean_trio.testing.kafka")
_TIMEOUT = 10.0  # each broker call; a test's own fail_after bounds the whole


def _stamp(offset_seconds: float = 0.0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resync_request_message(integration_identifier: str) -> dict[str, Any]:
    """A resync request for ``integration_identifier`` (a user pressed "Resync" in Port)."""
    return {
        "action": "RESYNC",
        "resourceType": "integration",
        "status": "SUCCESS",
        "context": {"integrationId": integration_identifier},
        "diff": {"before": None, "after": None},
    }


def integration_change_message(
    integration_identifier: str,
    *,
    deleted: bool = False,
    state_only: bool = False,
    destination: str = "KAFKA",
) -> dict[str, Any]:
    """A change-log message about an integration: updated (its config changed, so a resync is
    due), ``state_only`` (only its resync state changed: ``updatedAt`` equals the state's), or
    ``deleted`` (``diff.after`` is null). ``destination`` is its changelog destination type.
    """
    before = {"identifier": integration_identifier, "updatedAt": _stamp(-60)}
    updated_at = _stamp()
    after: dict[str, Any] | None = {
        "identifier": integration_identifier,
        "updatedAt": updated_at,
        "resyncState": {
            "status": "completed",
            "updatedAt": updated_at if state_only else _stamp(-30),
        },
        "changelogDestination": {"type": destination},
    }
    if deleted:
        after = None
    return {
        "action": "DELETE" if deleted else "UPDATE",
        "resourceType": "integration",
        "status": "SUCCESS",
        "context": {"integrationId": integration_identifier},
        "diff": {"before": before, "after": after},
        "changelogDestination": {"type": destination},
    }


class PortKafka:
    """Publishes Port's messages for organization ``org_id``; see ``open_port_kafka``."""

    def __init__(self, bootstrap_servers: str, org_id: str) -> None:
        config: dict[str, str | int | float | bool] = {"bootstrap.servers": bootstrap_servers}
        self.org_id = org_id
        self.change_log = change_log_topic(org_id)
        self.resync_requests = resync_requests_topic(org_id)
        # Both closed by aclose(): a broker waits for its clients before it stops (tansu: 5 s).
        self._clients = ExitStack()
        self._producer = self._clients.enter_context(Producer(config, logger=_log))
        # Kept alive while its futures resolve (a dropped AdminClient fails them).
        self._admin = self._clients.enter_context(AdminClient(config, logger=_log))
        self._limiter = trio.CapacityLimiter(1)

    async def create_topics(self, *, partitions: int = 1) -> None:
        """Create both topics of the organization (ones that exist are left as they are)."""

        def create() -> None:
            topics = [NewTopic(t, partitions, 1) for t in (self.change_log, self.resync_requests)]
            for future in self._admin.create_topics(topics).values():
                try:
                    future.result(_TIMEOUT)
                except KafkaException as error:
                    if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise

        await trio.to_thread.run_sync(create, limiter=self._limiter)

    async def publish(self, topic: str, message: Mapping[str, Any] | bytes) -> int:
        """Publish ``message`` (JSON-encoded unless bytes) and return its offset once stored."""
        value = message if isinstance(message, bytes) else json.dumps(message).encode()
        delivered: list[int] = []
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, stored: Any) -> None:
            if error is not None:
                failures.append(error)
            else:
                delivered.append(stored.offset())

        def produce() -> None:
            # One message per flush: tansu misreports the end of a batch of several.
            self._producer.produce(topic, value, on_delivery=on_delivery)
            self._producer.flush(_TIMEOUT)

        await trio.to_thread.run_sync(produce, limiter=self._limiter)
        if failures or not delivered:
            why = failures[0].str() if failures else "not delivered in time"
            raise RuntimeError(f"publishing to {topic} failed: {why}")
        return delivered[0]

    async def request_resync(
        self, integration_identifier: str, *, on: Literal["change log", "resync requests"]
    ) -> int:
        """Publish a resync request on the change log or the resync-requests topic; its offset."""
        topic = self.change_log if on == "change log" else self.resync_requests
        return await self.publish(topic, resync_request_message(integration_identifier))

    async def integration_changed(self, integration_identifier: str, **options: Any) -> int:
        """Publish ``integration_change_message(...)`` on the change log; its offset."""
        message = integration_change_message(integration_identifier, **options)
        return await self.publish(self.change_log, message)

    async def committed(self, group_id: str) -> dict[str, dict[int, int]]:
        """The group's committed offsets: ``{topic: {partition: next offset}}``."""

        def read() -> dict[str, dict[int, int]]:
            request = [ConsumerGroupTopicPartitions(group_id)]
            answer = self._admin.list_consumer_group_offsets(request)[group_id].result(_TIMEOUT)
            offsets: dict[str, dict[int, int]] = {}
            for tp in answer.topic_partitions or []:
                if tp.offset >= 0:
                    offsets.setdefault(tp.topic, {})[tp.partition] = tp.offset
            return offsets

        return await trio.to_thread.run_sync(read, limiter=self._limiter)

    async def group_state(self, group_id: str) -> str:
        """The group's state as the broker reports it: ``stable`` while a member consumes,
        ``empty`` once every member left (a member that vanished keeps it until its session
        times out)."""

        def read() -> str:
            group = self._admin.describe_consumer_groups([group_id])[group_id].result(_TIMEOUT)
            return str(group.state.name).lower()

        return await trio.to_thread.run_sync(read, limiter=self._limiter)

    async def aclose(self) -> None:
        """Deliver the messages still queued and disconnect (shielded, at most 10 s)."""

        def close() -> None:
            self._producer.flush(_TIMEOUT)
            self._clients.close()

        with trio.move_on_after(_TIMEOUT, shield=True):
            await trio.to_thread.run_sync(close, limiter=self._limiter, abandon_on_cancel=True)


@asynccontextmanager
async def open_port_kafka(bootstrap_servers: str, org_id: str) -> AsyncIterator[PortKafka]:
    """A ``PortKafka`` on ``bootstrap_servers`` for ``org_id``; flushed on exit."""
    kafka = PortKafka(bootstrap_servers, org_id)
    try:
        yield kafka
    finally:
        await kafka.aclose()
