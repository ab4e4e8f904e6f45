"""The KAFKA event listener: Port's change log (or resync-request topic) → durable resync requests.

Ocean's topics, consumer group and message filter (``_kafka_messages``), with one difference
that matters: Ocean commits a message's offset right after a fire-and-forget dispatch, so a
process that dies before the resync ran loses the trigger. Here an offset is committed only
after ``ResyncRequests.request_durably`` returned for its message (at-least-once); messages
that ask for nothing are committed without a request.

confluent-kafka's consumer is blocking: each ``consume()`` runs in a worker thread for at most
``POLL_SECONDS``, never abandoned (an abandoned poll makes ``close()`` wait for it), so a
cancellation ends the loop within that time; ``close()`` then runs shielded and bounded, and
the group is left at once instead of after a session timeout.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any, Protocol

import attrs
import trio
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from .._exceptions import ConfigError, OceanError, StartupError
from .._log import LogLimiter
from ..catalog._port_client import KafkaCredentials, PortClient
from ._kafka_messages import Verdict, group_id, judge, topic_for

logger = logging.getLogger("ocean_trio.resync.kafka")

PORT_BROKERS = ",".join(
    f"b-{n}-public.publicclusterprod.t9rw6w.c1.kafka.eu-west-1.amazonaws.com:9196"
    for n in (1, 2, 3)
)
"""Ocean's default ``brokers``: Port's public Kafka cluster."""

POLL_SECONDS = 0.25  # the longest one consume() blocks: how long a cancellation may wait
BATCH_SIZE = 100
CLOSE_SECONDS = 10.0  # leaving the group must not hang a shutdown
METADATA_SECONDS = 10.0  # reading committed offsets and watermarks when partitions come


@attrs.frozen(kw_only=True)
class KafkaListenerSettings:
    """Ocean's ``KafkaEventListenerSettings`` (wire names camelCase), plus ``sessionTimeoutMs``.

    ``brokers`` is comma-separated, or a JSON array (``'["b1:9096","b2:9096"]'``) as Ocean takes
    it. With ``kafka_security_enabled`` the credentials come from Port and the group is
    ``<org>.<type>.<identifier>``; without, the consumer connects in plain text and joins
    Ocean's group ``no-security`` (shared by every integration on those brokers), as Ocean does.
    SASL settings apply only to a ``security_protocol`` starting with ``SASL``.
    ``consumer_poll_timeout`` (seconds) is taken for compatibility; a poll never blocks longer
    than 0.25 s, so cancellation is prompt. ``session_timeout_ms`` sets the consumer's
    ``session.timeout.ms`` (librdkafka's default when None).
    """

    brokers: str = PORT_BROKERS
    security_protocol: str = "SASL_SSL"
    authentication_mechanism: str = "SCRAM-SHA-512"
    kafka_security_enabled: bool = True
    consumer_poll_timeout: int = 1
    session_timeout_ms: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``brokers`` as librdkafka takes it (a JSON array joined with commas, as Ocean does)."""
        text = self.brokers.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                return self.brokers
            if isinstance(parsed, list):
                return ",".join(str(broker) for broker in parsed)
        return self.brokers

    def changelog_destination(self) -> dict[str, Any]:
        """What Ocean tells Port when it creates or patches the integration."""
        return {"type": "KAFKA"}


class ResyncRequests(Protocol):
    """Where the listener asks for resyncs (the resync coordinator)."""

    async def request_durably(self, reason: str) -> None:
        """Return once the request is recorded durably: a resync will run for it even if
        the process dies right after (at-least-once)."""
        ...


class KafkaListenerError(OceanError):
    """The KAFKA listener cannot go on (a fatal consumer error); the message says why."""


class DuplicateInstanceError(StartupError):
    """Another instance of the same integration (type and identifier) holds the consumer group."""


@attrs.frozen
class KafkaSubscription:
    """What ``KafkaListener.run`` gives ``started()``: the topic, the group, the first partitions."""

    topic: str
    group_id: str
    partitions: tuple[int, ...]


@attrs.frozen
class KafkaListenerStatistics:
    consumed: int
    requested: int
    ignored: int
    malformed: int


class KafkaListener:
    """Consumes Port's resync triggers from Kafka and records each one with ``requests``.

    ``await nursery.start(listener.run)`` returns a ``KafkaSubscription`` once the consumer
    has joined its group and been given partitions. It raises ``DuplicateInstanceError`` when
    that first assignment is empty (another instance with the same identity holds the
    partitions: Ocean's single-instance rule, which Ocean enforces with a SIGINT), and
    ``StartupError`` when the topic does not exist or Port has no Kafka credentials.
    """

    def __init__(
        self,
        settings: KafkaListenerSettings,
        *,
        integration_identifier: str,
        integration_type: str,
        port: PortClient,
        requests: ResyncRequests,
    ) -> None:
        self._settings = settings
        self._identifier = integration_identifier
        self._type = integration_type
        self._port = port
        self._requests = requests
        # One thread at a time touches the consumer: librdkafka must never close() during a
        # consume(), and a sequential loop needs no more.
        self._limiter = trio.CapacityLimiter(1)
        self._consumed = self._requested = self._ignored = self._malformed = 0
        self._log_limiter = LogLimiter(logger)  # a broker outage reports an error every poll

    def statistics(self) -> KafkaListenerStatistics:
        return KafkaListenerStatistics(
            self._consumed, self._requested, self._ignored, self._malformed
        )

    async def run(
        self, *, task_status: trio.TaskStatus[KafkaSubscription] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Consume until cancelled; leave the group on the way out."""
        topic, group, credentials = await self._subscription()
        consumer = _open_consumer(self._settings, group, credentials)
        assignments = _Assignments()
        try:
            consumer.subscribe(
                [topic],
                on_assign=assignments.on_assign,
                on_revoke=assignments.on_revoke,
                on_lost=assignments.on_lost,
            )
            logger.info("Kafka: subscribed to %s as group %s", topic, group)
            joined = False
            while True:
                messages = await self._thread(consumer.consume, BATCH_SIZE, POLL_SECONDS)
                if not joined and any(_unknown_topic(m) for m in messages):
                    brokers = self._settings.bootstrap_servers
                    raise StartupError(f"Kafka topic {topic} does not exist on {brokers}")
                if not joined and assignments.first is not None:
                    if not assignments.first:
                        raise DuplicateInstanceError(
                            f"Kafka group {group} gave this consumer no partition: another"
                            f" instance of integration {self._type}/{self._identifier} is"
                            " running (only one may)"
                        )
                    logger.info("Kafka: joined group %s, partitions %s", group, assignments.first)
                    task_status.started(KafkaSubscription(topic, group, assignments.first))
                    joined = True
                await self._handle(consumer, messages)
        except KafkaException as error:
            raise KafkaListenerError(
                f"Kafka consumer of group {group}: {_describe(error)}"
            ) from error
        finally:
            # Shielded so a cancelled listener still leaves its group (the next start joins
            # at once instead of after a session timeout), bounded so a dead broker cannot
            # hold the shutdown: past the deadline the thread is abandoned.
            with trio.move_on_after(CLOSE_SECONDS, shield=True) as closing:
                await trio.to_thread.run_sync(consumer.close, abandon_on_cancel=True)
            if closing.cancelled_caught:
                logger.warning(
                    "Kafka: closing the consumer took over %.0fs; gave up", CLOSE_SECONDS
                )

    async def _subscription(self) -> tuple[str, str, KafkaCredentials | None]:
        organization = await self._port.get_organization()
        org_id = organization.get("id")
        if not isinstance(org_id, str) or not org_id:
            raise StartupError("Port's GET /v1/organization answered no organization id")
        flags = organization.get("featureFlags")
        topic = topic_for(org_id, flags if isinstance(flags, list) else [])
        credentials = None
        security = self._settings.kafka_security_enabled
        if security:
            credentials = await self._port.get_kafka_credentials()
            if credentials is None:
                raise StartupError("Port has no Kafka credentials for this organization")
        group = group_id(org_id, self._type, self._identifier, security_enabled=security)
        return topic, group, credentials

    async def _handle(self, consumer: Consumer, messages: list[Message]) -> None:
        # Offsets to commit, by partition: a message's is recorded once it needs nothing more
        # (its request returned, or it asks for nothing), never before.
        done: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                self._log_limiter.warning(error.code(), "Kafka: %s", error.str())
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue  # only error events lack them
            self._consumed += 1
            verdict = judge(message.value(), topic, self._identifier)
            where = f"{topic} [{partition}] @ {offset}"
            if verdict.asks_for_resync:
                logger.info("Kafka: %s: %s", where, verdict.value)
                await self._requests.request_durably(f"KAFKA: {verdict.value} ({where})")
                self._requested += 1
                done[topic, partition] = offset + 1
                # Shielded: the request is recorded, so its offset must be committed even if
                # we are being cancelled now, or the next start would ask for it again.
                with trio.CancelScope(shield=True):
                    await self._commit(consumer, done)
                continue
            if verdict is Verdict.MALFORMED:
                self._malformed += 1
                logger.warning("Kafka: %s is not a message of Port's (skipped)", where)
            else:
                self._ignored += 1
                logger.debug("Kafka: %s asks for nothing", where)
            done[topic, partition] = offset + 1
        await self._commit(consumer, done)

    async def _commit(self, consumer: Consumer, done: dict[tuple[str, int], int]) -> None:
        if not done:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in done.items()]
        done.clear()
        try:
            committed = await self._thread(
                partial(consumer.commit, offsets=offsets, asynchronous=False)
            )
        except KafkaException as error:
            # Not fatal: the next commit covers these offsets too; if none comes before a
            # restart, the messages are delivered again (at-least-once).
            logger.warning("Kafka: commit of %s failed: %s", offsets, _describe(error))
            return
        for tp in committed:
            if tp.error is not None:
                logger.warning(
                    "Kafka: commit of %s [%d] failed: %s", tp.topic, tp.partition, tp.error
                )

    async def _thread(self, function: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(function, *args, limiter=self._limiter)


@attrs.define
class _Assignments:
    """What the rebalance callbacks saw. They run in the consumer's thread, inside consume()."""

    first: tuple[int, ...] | None = None

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.first is None:
            self.first = tuple(tp.partition for tp in partitions)
        else:
            logger.info("Kafka: partitions %s assigned", [tp.partition for tp in partitions])
        if partitions:
            _assign_from_baseline(consumer, partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions:
            logger.info("Kafka: partitions %s revoked", [tp.partition for tp in partitions])

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning("Kafka: partitions %s lost", [tp.partition for tp in partitions])


def _assign_from_baseline(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Start each partition at its committed offset; one never committed starts at its end
    (Ocean's ``latest``), and that end is committed at once. Without it, a message published
    while a group that never committed was down would be skipped at the next start."""
    try:
        positions = consumer.committed(partitions, timeout=METADATA_SECONDS)
        unknown = [tp for tp in positions if tp.error is not None]
        if unknown:
            # Never overwrite a committed offset that could not be read.
            logger.warning("Kafka: committed offsets unreadable: %s", unknown)
            return
        fresh = [tp for tp in positions if tp.offset < 0]
        for tp in fresh:
            _, tp.offset = consumer.get_watermark_offsets(tp, timeout=METADATA_SECONDS)
        if fresh:
            consumer.commit(offsets=fresh, asynchronous=False)
    except KafkaException as error:
        # The assignment goes on from librdkafka's own positions (committed, else latest).
        logger.warning("Kafka: no start positions for %s: %s", partitions, _describe(error))
        return
    consumer.incremental_assign(positions)


def consumer_config(
    settings: KafkaListenerSettings, group: str, credentials: KafkaCredentials | None
) -> dict[str, Any]:
    """librdkafka's configuration for the listener's consumer (Ocean's, see the settings)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        # Sticky: a running instance keeps its partitions when another joins, so the newcomer's
        # first assignment is empty (the single-instance rule) and it is the one that stops.
        "partition.assignment.strategy": "cooperative-sticky",
        "logger": logging.getLogger("ocean_trio.resync.kafka.librdkafka"),
    }
    if credentials is not None:
        config["security.protocol"] = settings.security_protocol
        if settings.security_protocol.upper().startswith("SASL"):
            config["sasl.mechanism"] = settings.authentication_mechanism
            config["sasl.username"] = credentials.username
            config["sasl.password"] = credentials.password
    if settings.session_timeout_ms is not None:
        config["session.timeout.ms"] = settings.session_timeout_ms
        config["heartbeat.interval.ms"] = max(100, settings.session_timeout_ms // 6)
    return config


def _open_consumer(
    settings: KafkaListenerSettings, group: str, credentials: KafkaCredentials | None
) -> Consumer:
    try:
        return Consumer(consumer_config(settings, group, credentials))
    except KafkaException as error:
        raise ConfigError(f"eventListener (KAFKA): {_describe(error)}") from error


def _unknown_topic(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def _describe(error: KafkaException) -> str:
    cause = error.args[0] if error.args else None
    return cause.str() if isinstance(cause, KafkaError) else str(error)
