"""The KAFKA event listener against a real Kafka-protocol broker (tansu) and the Port emulator.

Each test gets a fresh organization id, so its own topics and consumer group. A fake
``ResyncRequests`` records what the listener asks for, and can hold a request (it never
returns until cancelled) or fail it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from ocean_trio._exceptions import StartupError
from ocean_trio.catalog._port_client import PortClient
from ocean_trio.resync._kafka import (
    DuplicateInstanceError,
    KafkaListener,
    KafkaListenerSettings,
    KafkaSubscription,
)
from ocean_trio.resync._kafka_messages import RESYNC_REQUESTS_TOPIC_FLAG
from ocean_trio.testing import (
    PortEmulator,
    PortKafka,
    open_port_kafka,
    port_client_for,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIER = "my-integration"
TYPE = "fake"
SESSION_TIMEOUT_MS = 2000  # tansu makes a member wait about half of it to join (1 s)
WAIT = 20.0  # a join takes ~1 s, a rebalance ~1-3 s; a loaded CI machine gets more


class FakeRequests:
    """Records each ``request_durably``; ``hold`` keeps requests from returning, ``fail`` raises."""

    def __init__(self, *, hold: bool = False, fail: bool = False) -> None:
        self.hold = hold
        self.fail = fail
        self.reasons: list[str] = []  # every request made, returned or not
        self._arrived = trio.Event()

    async def request_durably(self, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        # No checkpoint from here on: a request that is recorded has returned (unless held),
        # so a test that saw it and cancels the listener does not cancel the request.
        self.reasons.append(reason)
        self._arrived.set()
        self._arrived = trio.Event()
        if self.fail:
            raise RuntimeError("the request store is broken")
        if self.hold:
            await trio.sleep_forever()

    async def wait_for(self, count: int) -> list[str]:
        """Wait until ``count`` requests were made (within ``WAIT``); all the reasons so far."""
        with trio.fail_after(WAIT):
            while len(self.reasons) < count:
                await self._arrived.wait()
        return list(self.reasons)


@attrs.define
class Setup:
    emulator: PortEmulator
    port: PortClient
    kafka: PortKafka
    bootstrap: str

    @property
    def org_id(self) -> str:
        return str(self.emulator.organization["id"])

    @property
    def group(self) -> str:
        return f"{self.org_id}.{TYPE}.{IDENTIFIER}"

    def listener(
        self, requests: FakeRequests, *, session_timeout_ms: int = SESSION_TIMEOUT_MS
    ) -> KafkaListener:
        settings = KafkaListenerSettings(
            brokers=self.bootstrap,
            security_protocol="PLAINTEXT",  # tansu speaks no SASL; credentials still fetched
            session_timeout_ms=session_timeout_ms,
        )
        return KafkaListener(
            settings,
            integration_identifier=IDENTIFIER,
            integration_type=TYPE,
            port=self.port,
            requests=requests,
        )


@asynccontextmanager
async def setup(
    bootstrap: str, *, flags: tuple[str, ...] = (), topics: bool = True
) -> AsyncIterator[Setup]:
    emulator = PortEmulator()
    emulator.organization["id"] = f"org_{uuid.uuid4().hex[:12]}"
    emulator.organization["featureFlags"] = list(flags)
    async with (
        port_client_for(emulator, user_agent="port-ocean/test/0.1.0/fake/exporter") as port,
        open_port_kafka(bootstrap, str(emulator.organization["id"])) as kafka,
    ):
        if topics:
            await kafka.create_topics()
        yield Setup(emulator, port, kafka, bootstrap)


@asynccontextmanager
async def listening(listener: KafkaListener) -> AsyncIterator[KafkaSubscription]:
    """Run ``listener`` until the block ends (then cancel it and wait until it closed)."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            subscription: KafkaSubscription = await nursery.start(listener.run)
        yield subscription
        nursery.cancel_scope.cancel()


@pytest.fixture
async def s(kafka_bootstrap: str) -> AsyncIterator[Setup]:
    async with setup(kafka_bootstrap) as made:
        yield made


# --- the normal path -------------------------------------------------------------------------


async def test_change_log_triggers_each_ask_for_one_resync(s: Setup) -> None:
    requests = FakeRequests()
    async with listening(s.listener(requests)) as subscription:
        assert subscription == KafkaSubscription(s.kafka.change_log, s.group, (0,))
        first = await s.kafka.request_resync(IDENTIFIER, on="change log")
        assert await requests.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {first})"
        ]
        # The next trigger's request comes right after the first's: had the first been
        # asked for twice, it would be in between.
        second = await s.kafka.integration_changed(IDENTIFIER)
        assert await requests.wait_for(2) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {first})",
            f"KAFKA: integration changed ({s.kafka.change_log} [0] @ {second})",
        ]
    assert await s.kafka.committed(s.group) == {s.kafka.change_log: {0: second + 1}}


async def test_messages_that_ask_for_nothing_are_committed_without_a_request(s: Setup) -> None:
    requests = FakeRequests()
    listener = s.listener(requests)
    async with listening(listener):
        asking_for_nothing: list[dict[str, Any]] = [
            {"deleted": True},
            {"state_only": True},
            {"destination": "WEBHOOK"},
        ]
        for options in asking_for_nothing:
            await s.kafka.integration_changed(IDENTIFIER, **options)
        await s.kafka.integration_changed("another-integration")
        await s.kafka.request_resync("another-integration", on="change log")
        await s.kafka.publish(s.kafka.change_log, b"not json")
        await s.kafka.publish(s.kafka.change_log, {"context": None, "action": "RESYNC"})
        last = await s.kafka.request_resync(IDENTIFIER, on="change log")
        assert await requests.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {last})"
        ]
    stats = listener.statistics()
    assert (stats.consumed, stats.requested, stats.ignored, stats.malformed) == (8, 1, 5, 2)
    assert await s.kafka.committed(s.group) == {s.kafka.change_log: {0: last + 1}}


async def test_with_the_feature_flag_the_resync_requests_topic_is_read(
    kafka_bootstrap: str,
) -> None:
    async with setup(kafka_bootstrap, flags=(RESYNC_REQUESTS_TOPIC_FLAG,)) as s:
        requests = FakeRequests()
        async with listening(s.listener(requests)) as subscription:
            assert subscription.topic == s.kafka.resync_requests
            await s.kafka.request_resync("another-integration", on="resync requests")
            await s.kafka.request_resync(IDENTIFIER, on="change log")  # not read
            ours = await s.kafka.request_resync(IDENTIFIER, on="resync requests")
            assert await requests.wait_for(1) == [
                f"KAFKA: resync requested ({s.kafka.resync_requests} [0] @ {ours})"
            ]
        assert await s.kafka.committed(s.group) == {s.kafka.resync_requests: {0: ours + 1}}


# --- at-least-once ---------------------------------------------------------------------------


async def test_a_trigger_whose_request_did_not_return_is_delivered_again(s: Setup) -> None:
    # The request is held, then the listener cancelled: the resync was never recorded, so
    # the message must not be acknowledged (Ocean commits it before dispatching).
    held = FakeRequests(hold=True)
    async with listening(s.listener(held)):
        offset = await s.kafka.request_resync(IDENTIFIER, on="change log")
        await held.wait_for(1)
    assert await s.kafka.committed(s.group) == {s.kafka.change_log: {0: offset}}

    again = FakeRequests()
    async with listening(s.listener(again)):
        assert await again.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {offset})"
        ]
    assert await s.kafka.committed(s.group) == {s.kafka.change_log: {0: offset + 1}}

    # Recorded and committed: a third start does not ask for it again.
    third = FakeRequests()
    async with listening(s.listener(third)):
        later = await s.kafka.request_resync(IDENTIFIER, on="change log")
        assert await third.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {later})"
        ]


class Lines:
    """The lines a process prints, one at a time."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        with trio.fail_after(WAIT):
            while b"\n" not in self._buffer:
                chunk = await self._stream.receive_some()
                if not chunk:
                    raise EOFError(f"the process ended; it printed {self._buffer!r}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


async def test_a_trigger_consumed_by_a_process_killed_before_recording_it_runs_after_restart(
    s: Setup, tmp_path: Path
) -> None:
    # kill -9: no finally, no close(), the member vanishes without leaving its group.
    argv = [sys.executable, "-m", "tests.resync.kafka_listener_process", s.port.base_url]
    argv += [s.bootstrap, str(SESSION_TIMEOUT_MS)]
    with (tmp_path / "listener.log").open("wb") as log:
        process = await trio.lowlevel.open_process(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
    try:
        assert process.stdout is not None
        lines = Lines(process.stdout)
        assert await lines.next() == "joined"
        offset = await s.kafka.request_resync(IDENTIFIER, on="change log")
        reason = f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {offset})"
        assert await lines.next() == f"requested {reason}"
    finally:
        process.kill()
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    assert await s.kafka.committed(s.group) == {s.kafka.change_log: {0: offset}}
    # The restart waits for the dead member's session to time out, then gets the partition
    # (not an empty first assignment: no "another instance" error) and the trigger again.
    again = FakeRequests()
    async with listening(s.listener(again)):
        assert await again.wait_for(1) == [reason]


async def test_a_request_that_fails_stops_the_listener_and_is_not_committed(s: Setup) -> None:
    failing = FakeRequests(fail=True)
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="request store is broken")):
        async with listening(s.listener(failing)):
            offset = await s.kafka.request_resync(IDENTIFIER, on="change log")
            await trio.sleep_forever()  # ended by the listener's error
    again = FakeRequests()
    async with listening(s.listener(again)):
        assert await again.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {offset})"
        ]


# --- the group -------------------------------------------------------------------------------


async def test_a_second_instance_stops_with_an_error_naming_the_group(s: Setup) -> None:
    first = FakeRequests()
    async with listening(s.listener(first)):
        second = s.listener(FakeRequests())
        with trio.fail_after(WAIT), pytest.raises(DuplicateInstanceError) as caught:
            await second.run()
        assert str(caught.value) == (
            f"Kafka group {s.group} gave this consumer no partition: another instance of"
            f" integration {TYPE}/{IDENTIFIER} is running (only one may)"
        )
        # The first instance kept its partition and goes on.
        offset = await s.kafka.request_resync(IDENTIFIER, on="change log")
        assert await first.wait_for(1) == [
            f"KAFKA: resync requested ({s.kafka.change_log} [0] @ {offset})"
        ]


async def test_shutdown_leaves_the_group_so_a_restart_joins_at_once(s: Setup) -> None:
    # With a 6 s session, tansu lets a member join after ~3 s; a member that vanished without
    # leaving holds the group until its session times out (~9 s before the next joins).
    session_ms = 6000
    async with listening(s.listener(FakeRequests(), session_timeout_ms=session_ms)):
        assert await s.kafka.group_state(s.group) == "stable"
    assert await s.kafka.group_state(s.group) == "empty"
    started = trio.current_time()
    async with listening(s.listener(FakeRequests(), session_timeout_ms=session_ms)):
        assert trio.current_time() - started < session_ms / 1000


async def test_cancellation_ends_the_listener_promptly(s: Setup) -> None:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            await nursery.start(s.listener(FakeRequests()).run)
        nursery.cancel_scope.cancel()
        cancelled_at = trio.current_time()
    # One poll (0.25 s) plus close() (leaving the group: milliseconds on loopback).
    assert trio.current_time() - cancelled_at < 1.0


async def test_a_missing_topic_is_a_startup_error(kafka_bootstrap: str) -> None:
    async with setup(kafka_bootstrap, topics=False) as s:
        with trio.fail_after(WAIT), pytest.raises(StartupError) as caught:
            await s.listener(FakeRequests()).run()
        assert not isinstance(caught.value, DuplicateInstanceError)
        assert str(caught.value) == (
            f"Kafka topic {s.kafka.change_log} does not exist on {kafka_bootstrap}"
        )


async def test_no_credentials_from_port_is_a_startup_error(s: Setup) -> None:
    s.emulator.kafka_credentials = None
    with trio.fail_after(WAIT), pytest.raises(StartupError, match="Port has no Kafka credentials"):
        await s.listener(FakeRequests()).run()
