"""Port's resync routes: the owned-entities search, resync requests and the resync state.

- ``POST /v1/blueprints/entities/datasource-entities``: ``{datasource_prefix,
  datasource_suffix, limit, before?, from?}`` → ``{entities, next}`` (paging in ``_owned``).
- ``GET /v1/integration/<id>/resync-request`` → ``{request: {id, updatedAt, createdAt}}``, or
  ``{request: null}`` when none was made.
- ``PATCH /v1/integration/<id>/resync-state``: Ocean's body (``status``, ``lastResyncStart``,
  ``lastResyncEnd``, ``nextResync``, ``intervalInMinuets`` — Ocean's spelling; any other field
  is a 422, so a misspelt client fails in tests). Stored as ``integration.resyncState`` with an
  ``updatedAt`` (the integration's ``updatedAt`` too), and appended to ``resync_states``.
- Control: ``POST /_emulator/resync-requests`` ``{"integration": id}`` makes a new request (what
  Port does when a user asks for a resync); ``GET /_emulator/resync-states`` lists the states.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Protocol

import attrs
from quart_trio import QuartTrio

from ._owned import OwnedQuery, OwnedScans, parse_time
from ._routes import Reply, add_rules, read_json
from ._wire import ApiError, Key, Obj, as_object, now

RESYNC_STATE_FIELDS = frozenset(
    {"status", "lastResyncStart", "lastResyncEnd", "nextResync", "intervalInMinuets"}
)
RESYNC_STATUSES = frozenset({"running", "completed", "failed", "aborted"})


class EmulatedResync(Protocol):
    """What these routes read and change of the emulator (``PortEmulator``)."""

    entities: dict[Key, Obj]
    integrations: dict[str, Obj]
    resync_requests: dict[str, Obj]
    resync_states: list[Obj]
    owned_scans: OwnedScans


def new_resync_request(emulator: EmulatedResync, ident: str) -> Obj:
    """A new resync request for integration ``ident`` (replacing the previous one)."""
    if ident not in emulator.integrations:
        raise ApiError(404, "not_found", f'Integration "{ident}" was not found')
    stamp = now()
    previous = emulator.resync_requests.get(ident)
    if previous is not None and stamp <= previous["updatedAt"]:
        # Strictly newer than the last one, so a watermark never mistakes it for the same.
        later = parse_time(previous["updatedAt"], "updatedAt") + timedelta(milliseconds=1)
        stamp = later.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    request = {"id": secrets.token_hex(8), "createdAt": stamp, "updatedAt": stamp}
    emulator.resync_requests[ident] = request
    return request


@attrs.frozen
class ResyncRoutes:
    """The resync handlers over an emulator's state (the bearer-token check is ``PortRoutes``')."""

    emulator: EmulatedResync

    def register(self, app: QuartTrio) -> None:
        add_rules(
            app,
            [
                ("/v1/blueprints/entities/datasource-entities", self._owned_entities, "POST"),
                ("/v1/integration/<ident>/resync-request", self._get_resync_request, "GET"),
                ("/v1/integration/<ident>/resync-state", self._patch_resync_state, "PATCH"),
                ("/_emulator/resync-requests", self._control_resync_request, "POST"),
                ("/_emulator/resync-states", self._control_resync_states, "GET"),
            ],
        )

    async def _owned_entities(self) -> Reply:
        query, cursor = OwnedQuery.from_body(await read_json())
        page, following = self.emulator.owned_scans.page(self.emulator.entities, query, cursor)
        return {"ok": True, "entities": page, "next": following}, 200

    async def _get_resync_request(self, ident: str) -> Reply:
        self._integration(ident)
        return {"ok": True, "request": self.emulator.resync_requests.get(ident)}, 200

    async def _patch_resync_state(self, ident: str) -> Reply:
        integration = self._integration(ident)
        state = as_object(await read_json(), "the request body")
        unknown = sorted(set(state) - RESYNC_STATE_FIELDS)
        if unknown:
            message = (
                f"Unknown resync state fields {unknown}; allowed: {sorted(RESYNC_STATE_FIELDS)}"
            )
            raise ApiError(422, "invalid_request", message)
        if state.get("status") not in RESYNC_STATUSES:
            message = f"status must be one of {sorted(RESYNC_STATUSES)}"
            raise ApiError(422, "invalid_request", message)
        stamp = now()
        integration["resyncState"] = {**integration.get("resyncState", {}), **state}
        integration["resyncState"]["updatedAt"] = stamp
        integration["updatedAt"] = stamp
        self.emulator.resync_states.append({"integration": ident, **state, "updatedAt": stamp})
        return {"ok": True, "integration": integration}, 200

    async def _control_resync_request(self) -> Reply:
        ident = as_object(await read_json(), "the request body").get("integration")
        if not isinstance(ident, str):
            raise ApiError(422, "invalid_request", "'integration' must be an identifier")
        return {"ok": True, "request": new_resync_request(self.emulator, ident)}, 200

    async def _control_resync_states(self) -> Reply:
        return {"ok": True, "states": list(self.emulator.resync_states)}, 200

    def _integration(self, ident: str) -> Obj:
        integration = self.emulator.integrations.get(ident)
        if integration is None:
            raise ApiError(404, "not_found", f'Integration "{ident}" was not found')
        return integration
