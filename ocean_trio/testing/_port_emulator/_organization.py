"""Port's organization routes: what the KAFKA event listener asks before it subscribes.

- ``GET /v1/organization`` → ``{organization: {id, name, featureFlags}}``: the org id names the
  Kafka topics (``<id>.change.log``); the flag ``OCEAN_KAFKA_INTEGRATION_RESYNC_REQUESTS_TOPIC_ENABLED``
  moves the listener to ``<id>.integration.resync.requests``.
- ``GET /v1/kafka-credentials`` → ``{credentials: {username, password}}``, or
  ``{credentials: null}`` when the emulator's ``kafka_credentials`` is None.

Both need a bearer token, like every ``/v1`` route. A test changes ``emulator.organization``
and ``emulator.kafka_credentials`` in place (``reset`` restores the defaults).
"""

from __future__ import annotations

from typing import Protocol

import attrs
from quart_trio import QuartTrio

from ._routes import Reply, add_rules
from ._wire import Obj

DEFAULT_ORG_ID = "org_emulated"


def default_organization() -> Obj:
    """A fresh ``organization`` object: id ``org_emulated``, no feature flags."""
    return {"id": DEFAULT_ORG_ID, "name": "Emulated organization", "featureFlags": []}


def default_kafka_credentials() -> Obj:
    """A fresh ``credentials`` object (the emulator does not run a broker; tests bring one)."""
    return {"username": "emulated-kafka-user", "password": "emulated-kafka-password"}


class EmulatedOrganization(Protocol):
    """What these routes read of the emulator (``PortEmulator``)."""

    organization: Obj
    kafka_credentials: Obj | None


@attrs.frozen
class OrganizationRoutes:
    """``GET /v1/organization`` and ``GET /v1/kafka-credentials`` over the emulator's state."""

    emulator: EmulatedOrganization

    def register(self, app: QuartTrio) -> None:
        """Add the two routes to ``app`` (the bearer-token check is the app's)."""
        add_rules(
            app,
            [
                ("/v1/organization", self._get_organization, "GET"),
                ("/v1/kafka-credentials", self._get_kafka_credentials, "GET"),
            ],
        )

    async def _get_organization(self) -> Reply:
        return {"ok": True, "organization": self.emulator.organization}, 200

    async def _get_kafka_credentials(self) -> Reply:
        return {"ok": True, "credentials": self.emulator.kafka_credentials}, 200
