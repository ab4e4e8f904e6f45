"""``event``: what an ``on_resync`` handler may read of the resync running it (Ocean's ``event``).

``event.resource_config`` is the resource being resynced (its selector's custom fields, such
as Jira's ``jql``), ``event.port_app_config`` the whole mapping, ``event.attributes`` a dict
shared by the handlers of one resync. Outside a resync, reading them raises.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from .._exceptions import OceanError
from ..mapping._models import PortAppConfig, ResourceConfig


@attrs.frozen
class EventContext:
    """The resync a handler runs in."""

    port_app_config: PortAppConfig
    resource_config: ResourceConfig | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict)


_current: contextvars.ContextVar[EventContext] = contextvars.ContextVar("ocean_trio_event")


@contextmanager
def event_context(context: EventContext) -> Iterator[EventContext]:
    """Make ``event`` stand for ``context`` here (and in tasks started from here)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class _EventProxy:
    """Forwards to the current ``EventContext``."""

    def _context(self) -> EventContext:
        context = _current.get(None)
        if context is None:
            raise OceanError("event is only available inside a resync (an on_resync handler)")
        return context

    @property
    def resource_config(self) -> ResourceConfig:
        resource = self._context().resource_config
        if resource is None:
            raise OceanError("event.resource_config: no resource is being resynced right now")
        return resource

    @property
    def port_app_config(self) -> PortAppConfig:
        return self._context().port_app_config

    @property
    def attributes(self) -> dict[str, Any]:
        return self._context().attributes


event = _EventProxy()
"""The resync a handler runs in (see the module docstring)."""
