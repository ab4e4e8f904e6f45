"""An in-memory emulator of the Port REST API endpoints Ocean calls, for tests and benchmarks.

``PortEmulator`` holds blueprints, entities and integrations in plain dicts and serves them as
a Quart-Trio app; ``serve_port_emulator`` runs it on hypercorn (trio) on loopback, port 0,
and ``port_client_for`` also opens a ``PortClient`` logged in to it.
Every ``/v1`` route except the token one needs ``Authorization: Bearer <token>``. Errors use
Port's body ``{"ok": false, "error": <code>, "message": <text>}``. ``Faults`` injects
failures, delays and dropped connections. The ``/_emulator/...`` routes (no auth, never
recorded, never faulted) let a test drive an emulator running in another process.

Modules: ``_wire`` (Port's error answer, JSON helpers), ``_faults``, ``_recording`` (the ASGI
layer that records and injects), ``_auth`` (tokens), ``_store`` (entity semantics),
``_query`` (search), ``_owned`` (the owned-entities search and its paging), ``_routes``,
``_resync_routes`` (resync requests and state), ``_organization`` (the organization and its
Kafka credentials) and ``_control`` (HTTP), ``_emulator`` (the state and its app), ``_serve``
(hypercorn).
"""

from ._emulator import PortEmulator
from ._faults import Faults
from ._recording import RecordedRequest
from ._serve import port_client_for, run_port_emulator, serve_port_emulator

__all__ = [
    "Faults",
    "PortEmulator",
    "RecordedRequest",
    "port_client_for",
    "run_port_emulator",
    "serve_port_emulator",
]
