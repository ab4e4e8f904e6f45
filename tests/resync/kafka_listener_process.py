"""A KAFKA listener in a process of its own, for a test to kill: ``python -m
tests.resync.kafka_listener_process <port-url> <bootstrap> <session-ms>``.

It prints ``joined`` once the listener has its partitions, then ``requested <reason>`` for each
request, which it holds forever (never recorded, never returned): a kill -9 then is a crash
between the consumption of a trigger and its recording.
"""

from __future__ import annotations

import sys

import trio

from ocean_trio.catalog._port_client import PortClient
from ocean_trio.resync._kafka import KafkaListener, KafkaListenerSettings

IDENTIFIER = "my-integration"
TYPE = "fake"


class HeldRequests:
    async def request_durably(self, reason: str) -> None:
        print("requested", reason, flush=True)
        await trio.sleep_forever()


async def main(port_url: str, bootstrap: str, session_ms: int) -> None:
    async with PortClient.open(
        base_url=port_url, client_id="client-id", client_secret="client-secret", user_agent="test"
    ) as port:
        settings = KafkaListenerSettings(
            brokers=bootstrap, security_protocol="PLAINTEXT", session_timeout_ms=session_ms
        )
        listener = KafkaListener(
            settings,
            integration_identifier=IDENTIFIER,
            integration_type=TYPE,
            port=port,
            requests=HeldRequests(),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(listener.run)
            print("joined", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
