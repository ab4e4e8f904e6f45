"""The ``/_emulator/...`` routes: drive an emulator that runs in another process.

No auth, never recorded, never faulted: a test must be able to reset or inspect the emulator
whatever faults it has set up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs
from quart_trio import QuartTrio

from ._faults import Faults
from ._recording import RecordedRequest
from ._routes import Reply, add_rules, read_json
from ._wire import ApiError, Key, Obj, as_object


class ControlledPort(Protocol):
    """What the control routes inspect and reset of the emulator (``PortEmulator``)."""

    entities: dict[Key, Obj]
    requests: list[RecordedRequest]
    faults: Faults

    def reset(self) -> None: ...


@attrs.frozen
class ControlRoutes:
    """Inspect the stored entities and recorded requests; reset; add and clear faults."""

    emulator: ControlledPort

    def register(self, app: QuartTrio) -> None:
        """Add the ``/_emulator/...`` routes to ``app``."""
        add_rules(
            app,
            [
                ("/_emulator/entities", self._control_entities, "GET"),
                ("/_emulator/requests", self._control_requests, "GET"),
                ("/_emulator/reset", self._control_reset, "POST"),
                ("/_emulator/faults", self._control_add_fault, "POST"),
                ("/_emulator/faults", self._control_clear_faults, "DELETE"),
            ],
        )

    async def _control_entities(self) -> Reply:
        return {"entities": list(self.emulator.entities.values())}, 200

    async def _control_requests(self) -> Reply:
        return {"requests": [r.to_json() for r in self.emulator.requests]}, 200

    async def _control_reset(self) -> Reply:
        self.emulator.reset()
        return {"ok": True}, 200

    async def _control_add_fault(self) -> Reply:
        spec = dict(as_object(await read_json(), "the fault"))
        faults = self.emulator.faults
        kinds: dict[str, Callable[..., None]] = {
            "fail": faults.fail,
            "delay": faults.delay,
            "drop": faults.drop,
        }
        kind = spec.pop("kind", None)
        add = kinds.get(kind) if isinstance(kind, str) else None
        if add is None:
            raise ApiError(422, "invalid_request", f"'kind' must be one of {sorted(kinds)}")
        try:
            add(**spec)
        except (TypeError, ValueError) as error:
            raise ApiError(422, "invalid_request", f"Bad fault: {error}") from None
        return {"ok": True}, 200

    async def _control_clear_faults(self) -> Reply:
        self.emulator.faults.clear()
        return {"ok": True}, 200
