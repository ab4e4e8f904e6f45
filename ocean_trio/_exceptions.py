"""The exception tree of ocean-trio: everything the framework raises on purpose is an ``OceanError``."""

from __future__ import annotations


class OceanError(Exception):
    """Base class of every error ocean-trio raises on purpose."""


class ConfigError(OceanError):
    """A settings file, the port app config or an environment variable is invalid.

    The message names the file or variable and the offending field.
    """


class MappingError(OceanError):
    """A mapping expression is invalid (raised at start-up, naming resource, field and jq error)."""


class RetryableError(OceanError):
    """Raise from ``handle_event`` to have the processor's retry policy try again (Ocean parity)."""


class WebhookProcessingError(OceanError):
    """A live event could not be processed."""


class WebhookEventNotSupportedError(WebhookProcessingError):
    """No registered processor accepted the live event."""


class JournalFullError(OceanError):
    """The journal holds as many pending events as it may; the sender should retry later."""


class JournalUnavailableError(OceanError):
    """The journal could not record the event (disk full, I/O error); the sender should retry."""


class DuplicateDeliveryError(OceanError):
    """The event's delivery id was already accepted on its path within the dedup window."""
