"""The exception tree of ocean-trio: everything the framework raises on purpose is an ``OceanError``.

::

    OceanError
    ├── ConfigError                  settings, port app config, blueprints: the file/variable is named
    │   └── MappingError             a mapping expression is invalid (resource, field, jq error)
    ├── JqError                      a jq program failed on an item (internal: becomes a null
    │                                field or an item error, as in Ocean)
    ├── StartupError                 start-up could not finish (port busy, Port unreachable, on_start)
    ├── RetryableError               raised by processors: retry per the processor's policy
    ├── WebhookProcessingError       a live event could not be processed
    │   └── WebhookEventNotSupportedError
    ├── InvalidBodyError             a webhook body was refused (400/413), the message says why
    ├── SignatureError               a webhook signature is missing, malformed or wrong (401)
    ├── JournalError                 the journal did not take an event (the sender retries)
    │   ├── JournalFullError             too many events pending (503)
    │   ├── JournalUnavailableError      the write failed (503)
    │   └── DuplicateDeliveryError       the delivery id was seen already (200 duplicate)
    └── SinkError                    the catalog sink did not take a write
        ├── SinkRefusedError             refused these changes: retrying would not help
        ├── PartialApplyError            wrote a batch except some change sets
        ├── WriteCancelledError          the write was cancelled (shutdown)
        └── PortApiError                 Port answered an error status (after retries)
            └── PortUnreachableError     Port could not be reached at all (after retries)

Third-party errors (httpx, sqlite3, jq) are translated into this tree where they cross a
component's boundary; ``trio.Cancelled`` is never caught or translated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class OceanError(Exception):
    """Base class of every error ocean-trio raises on purpose."""


class ConfigError(OceanError):
    """A settings file, the port app config or an environment variable is invalid.

    The message names the file or variable and the offending field.
    """


class MappingError(ConfigError):
    """A mapping expression is invalid (raised at start-up, naming resource, field and jq error)."""


class JqError(OceanError, ValueError):
    """A jq program failed to compile or to run; the message is jq's, without our wrappers."""


class StartupError(OceanError):
    """Start-up could not finish; the message is the one line the operator sees.

    Raise it from an ``on_start`` hook (before it reports ready) to stop the integration
    with that message instead of running without what the hook provides.
    """


class RetryableError(OceanError):
    """Raise from ``handle_event`` to have the processor's retry policy try again (Ocean parity)."""


class WebhookProcessingError(OceanError):
    """A live event could not be processed."""


class WebhookEventNotSupportedError(WebhookProcessingError):
    """No registered processor accepted the live event."""


class InvalidBodyError(OceanError):
    """A webhook body was refused; ``status`` is the HTTP answer (400 or 413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class SignatureError(OceanError):
    """The request's signature is missing, malformed, expired or wrong; ``str(error)`` says which.

    The message names the header and the problem, never a secret, so it can be the 401 body.
    """


class JournalError(OceanError):
    """The journal did not take an event; the sender should retry (or it was a duplicate)."""


class JournalFullError(JournalError):
    """The journal holds as many pending events as it may; the sender should retry later."""


class JournalUnavailableError(JournalError):
    """The journal could not record the event (disk full, I/O error); the sender should retry."""


class DuplicateDeliveryError(JournalError):
    """The event's delivery id was already accepted on its path within the dedup window.

    ``str(error)`` is the trace id of the first delivery.
    """


class SinkError(OceanError):
    """The catalog sink did not take a write."""


class SinkRefusedError(SinkError):
    """The sink refused these changes (an invalid entity, say): retrying would not help."""


class WriteCancelledError(SinkError):
    """The write carrying these changes was cancelled (shutdown) before it completed."""


class PartialApplyError(SinkError):
    """A sink wrote a batch except some change sets; ``failures`` maps their index to why."""

    def __init__(self, failures: dict[int, str]) -> None:
        super().__init__(f"{len(failures)} change set(s) refused: {next(iter(failures.values()))}")
        self.failures = failures


class PortApiError(SinkError):
    """Port answered with an error (after any retries); ``code`` is Port's ``error`` field."""

    def __init__(self, status: int, code: str, message: str, *, method: str, path: str) -> None:
        super().__init__(f"{method} {path} → {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def transient(self) -> bool:
        """An outage or rate limit rather than a problem with the request."""
        return self.status in (408, 429, 500, 502, 503, 504)


class PortUnreachableError(PortApiError):
    """Port's API could not be reached (connection refused, timed out) after every retry."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        OceanError.__init__(self, message)
        self.status = 0
        self.code = "unreachable"
        self.message = message
        self.method = method
        self.path = path

    @property
    def transient(self) -> bool:
        return True


def single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside ``group`` (however nested), or None when it holds several.

    Where a nursery wraps the one error of a component or of its body, the caller raises
    that error as it was: a ``StartupError`` stays a ``StartupError``.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending and len(leaves) < 2:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    return leaves[0] if len(leaves) == 1 and not pending else None


@contextlib.contextmanager
def one_error_as_raised() -> Iterator[None]:
    """Inside: a nursery's group holding one error is raised as that error (``single_leaf``);
    a group of several stays the group."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None
