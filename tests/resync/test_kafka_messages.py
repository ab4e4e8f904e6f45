"""The KAFKA listener's pure parts: Ocean's message filter, topics, group id, settings, config;
and the two Port routes it calls (emulator + ``PortClient``). No broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocean_trio.catalog._port_client import KafkaCredentials
from ocean_trio.resync._kafka import PORT_BROKERS, KafkaListenerSettings, consumer_config
from ocean_trio.resync._kafka_messages import (
    RESYNC_REQUESTS_TOPIC_FLAG,
    Verdict,
    group_id,
    judge,
    topic_for,
)
from ocean_trio.testing import (
    PortEmulator,
    integration_change_message,
    port_client_for,
    resync_request_message,
)

ME = "my-integration"
CHANGE_LOG = "org_1.change.log"
REQUESTS = "org_1.integration.resync.requests"


def verdict(message: Any, topic: str = CHANGE_LOG) -> Verdict:
    value = message if isinstance(message, bytes) else json.dumps(message).encode()
    return judge(value, topic, ME)


def changed(**after: Any) -> dict[str, Any]:
    """A change-log message whose ``diff.after`` is ``after`` (destination KAFKA)."""
    return {"diff": {"after": after}, "changelogDestination": {"type": "KAFKA"}}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # A resync request for us, and not for us.
        ({"action": "RESYNC", "context": {"integrationId": ME}}, Verdict.RESYNC_REQUESTED),
        ({"action": "RESYNC", "context": {"integrationId": "other"}}, Verdict.IGNORED),
        ({"action": "UPDATE", "context": {"integrationId": ME}}, Verdict.IGNORED),
        # Our integration changed: its config, not only its resync state.
        (
            changed(identifier=ME, updatedAt="2", resyncState={"updatedAt": "1"}),
            Verdict.INTEGRATION_CHANGED,
        ),
        (changed(identifier=ME, updatedAt="2"), Verdict.INTEGRATION_CHANGED),
        (changed(identifier=ME, updatedAt="2", resyncState={"updatedAt": "2"}), Verdict.IGNORED),
        (changed(identifier=ME), Verdict.IGNORED),  # no updatedAt on either side: None == None
        (changed(identifier="other", updatedAt="2"), Verdict.IGNORED),
        ({"diff": {"after": None}, "changelogDestination": {"type": "KAFKA"}}, Verdict.IGNORED),
        ({"diff": {"after": {"identifier": ME, "updatedAt": "2"}}}, Verdict.IGNORED),  # no dest.
        (
            {
                "diff": {"after": {"identifier": ME, "updatedAt": "2"}},
                "changelogDestination": {"type": "WEBHOOK"},
            },
            Verdict.IGNORED,
        ),
        ({}, Verdict.IGNORED),
        # Where Ocean's .get(key, {}) meets a null or a non-object, it raises: no resync.
        ({"context": None, "action": "RESYNC"}, Verdict.MALFORMED),
        ({"diff": None}, Verdict.MALFORMED),
        ({"diff": {"after": "x"}}, Verdict.MALFORMED),
        (changed(identifier=ME, updatedAt="2", resyncState=None), Verdict.MALFORMED),
        (
            {"diff": {"after": {"identifier": ME, "updatedAt": "2"}}, "changelogDestination": None},
            Verdict.MALFORMED,
        ),
        ([1, 2], Verdict.MALFORMED),
        (b"not json", Verdict.MALFORMED),
        (b"\xff\xfe", Verdict.MALFORMED),
    ],
)
def test_the_change_log_filter_is_oceans(message: Any, expected: Verdict) -> None:
    assert verdict(message) is expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"context": {"integrationId": ME}}, Verdict.RESYNC_REQUESTED),  # any action
        ({"context": {"integrationId": "other"}, "action": "RESYNC"}, Verdict.IGNORED),
        # The change-log rules do not apply on this topic.
        (changed(identifier=ME, updatedAt="2"), Verdict.IGNORED),
        ({"context": None}, Verdict.MALFORMED),
    ],
)
def test_the_resync_requests_filter_is_oceans(message: Any, expected: Verdict) -> None:
    assert verdict(message, REQUESTS) is expected


def test_empty_messages_ask_for_nothing() -> None:
    assert judge(None, CHANGE_LOG, ME) is Verdict.IGNORED
    assert judge(b"{}", None, ME) is Verdict.IGNORED


def test_the_test_helpers_messages_mean_what_they_say() -> None:
    assert verdict(resync_request_message(ME)) is Verdict.RESYNC_REQUESTED
    assert verdict(resync_request_message(ME), REQUESTS) is Verdict.RESYNC_REQUESTED
    assert verdict(resync_request_message("other")) is Verdict.IGNORED
    assert verdict(integration_change_message(ME)) is Verdict.INTEGRATION_CHANGED
    assert verdict(integration_change_message(ME, state_only=True)) is Verdict.IGNORED
    assert verdict(integration_change_message(ME, deleted=True)) is Verdict.IGNORED
    assert verdict(integration_change_message(ME, destination="WEBHOOK")) is Verdict.IGNORED
    assert verdict(integration_change_message("other")) is Verdict.IGNORED


def test_topics_and_group_are_oceans() -> None:
    assert topic_for("org_1", []) == CHANGE_LOG
    assert topic_for("org_1", ["OTHER", RESYNC_REQUESTS_TOPIC_FLAG]) == REQUESTS
    assert group_id("org_1", "jira", ME, security_enabled=True) == f"org_1.jira.{ME}"
    assert group_id("org_1", "jira", ME, security_enabled=False) == "no-security"


def test_settings_defaults_are_oceans() -> None:
    settings = KafkaListenerSettings()
    assert settings.brokers == PORT_BROKERS
    assert PORT_BROKERS.startswith("b-1-public.publicclusterprod.t9rw6w.c1.kafka.eu-west-1.")
    assert PORT_BROKERS.count(",") == 2
    assert settings.security_protocol == "SASL_SSL"
    assert settings.authentication_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_security_enabled is True
    assert settings.consumer_poll_timeout == 1
    assert settings.changelog_destination() == {"type": "KAFKA"}


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        ('["b1:9092", "b2:9092"]', "b1:9092,b2:9092"),
        ('["single:9092"]', "single:9092"),
        ("[]", ""),
        ("b1:9092,b2:9092", "b1:9092,b2:9092"),
        ("[b1:9092, b2:9092", "[b1:9092, b2:9092"),  # not JSON: as given
    ],
)
def test_brokers_take_a_json_array_as_ocean_does(brokers: str, expected: str) -> None:
    assert KafkaListenerSettings(brokers=brokers).bootstrap_servers == expected


def test_consumer_config_with_security() -> None:
    credentials = KafkaCredentials("user", "secret")
    config = consumer_config(KafkaListenerSettings(brokers="b:9096"), "g", credentials)
    config.pop("logger")
    assert config == {
        "bootstrap.servers": "b:9096",
        "group.id": "g",
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "partition.assignment.strategy": "cooperative-sticky",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "user",
        "sasl.password": "secret",
    }
    assert "secret" not in repr(credentials)


def test_consumer_config_without_sasl_or_security() -> None:
    plain = KafkaListenerSettings(brokers="b:9092", security_protocol="PLAINTEXT")
    config = consumer_config(plain, "g", KafkaCredentials("user", "secret"))
    assert config["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith("sasl.") for key in config)
    insecure = KafkaListenerSettings(kafka_security_enabled=False, session_timeout_ms=6000)
    config = consumer_config(insecure, "no-security", None)
    assert "security.protocol" not in config
    assert (config["session.timeout.ms"], config["heartbeat.interval.ms"]) == (6000, 1000)


async def test_port_client_reads_the_organization_and_the_kafka_credentials() -> None:
    emulator = PortEmulator()
    emulator.organization["featureFlags"] = [RESYNC_REQUESTS_TOPIC_FLAG]
    async with port_client_for(emulator, user_agent="test") as port:
        organization = await port.get_organization()
        assert organization["id"] == "org_emulated"
        assert organization["featureFlags"] == [RESYNC_REQUESTS_TOPIC_FLAG]
        credentials = await port.get_kafka_credentials()
        assert credentials == KafkaCredentials("emulated-kafka-user", "emulated-kafka-password")
        emulator.kafka_credentials = None
        assert await port.get_kafka_credentials() is None
        assert emulator.calls("GET", "/v1/organization") == 1
        assert emulator.calls("GET", "/v1/kafka-credentials") == 2
        emulator.reset()
        assert emulator.organization["featureFlags"] == []
        assert emulator.kafka_credentials is not None
