"""ocean-trio: keep a software catalog in sync with third-party services, on trio.

Integrations written for Port's Ocean port by changing imports: the processor API, the
``ocean`` object and the mapping models keep Ocean's names.
"""

from __future__ import annotations

import logging

from ._app import App
from ._entity import UNSET, Entity
from ._entry import IntegrationASGI
from ._exceptions import (
    ConfigError,
    DuplicateDeliveryError,
    InvalidBodyError,
    JournalError,
    JournalFullError,
    JournalUnavailableError,
    MappingError,
    OceanError,
    PortApiError,
    PortUnreachableError,
    RetryableError,
    SignatureError,
    SinkError,
    StartupError,
    WebhookEventNotSupportedError,
    WebhookProcessingError,
)
from ._integration import ASYNC_GENERATOR_RESYNC_TYPE, Integration, RunningApp, load_integration
from ._ocean import ocean
from ._retry import RetryPolicy
from ._root import open_app
from ._settings import Settings, load_settings
from ._version import __version__
from .catalog._changes import EntityChanges, WriteOptions
from .live_events._event import EventHeaders, EventPayload, WebhookEvent, WebhookEventRawResults
from .live_events._journal import EventStatus
from .live_events._outcome import EventOutcome
from .live_events._processor import AbstractWebhookProcessor, WebhookProcessorType
from .live_events._signatures import (
    GitHubSignature,
    GitLabToken,
    HmacSignature,
    PortSignature,
    SignatureVerifier,
    StandardWebhooksSignature,
    verifier_from_config,
)
from .mapping._models import (
    EntityMapping,
    IngestSearchQuery,
    MappingsConfig,
    PortAppConfig,
    PortResourceConfig,
    ResourceConfig,
    Rule,
    Selector,
)
from .resync._context import event

logger = logging.getLogger("ocean_trio.integration")
"""A logger for integration code (where Ocean code uses loguru's ``logger``)."""

__all__ = [
    "ASYNC_GENERATOR_RESYNC_TYPE",
    "UNSET",
    "AbstractWebhookProcessor",
    "App",
    "ConfigError",
    "DuplicateDeliveryError",
    "Entity",
    "EntityChanges",
    "EntityMapping",
    "EventHeaders",
    "EventOutcome",
    "EventPayload",
    "EventStatus",
    "GitHubSignature",
    "GitLabToken",
    "HmacSignature",
    "IngestSearchQuery",
    "Integration",
    "IntegrationASGI",
    "InvalidBodyError",
    "JournalError",
    "JournalFullError",
    "JournalUnavailableError",
    "MappingError",
    "MappingsConfig",
    "OceanError",
    "PortApiError",
    "PortAppConfig",
    "PortResourceConfig",
    "PortSignature",
    "PortUnreachableError",
    "ResourceConfig",
    "RetryPolicy",
    "RetryableError",
    "Rule",
    "RunningApp",
    "Selector",
    "Settings",
    "SignatureError",
    "SignatureVerifier",
    "SinkError",
    "StandardWebhooksSignature",
    "StartupError",
    "WebhookEvent",
    "WebhookEventNotSupportedError",
    "WebhookEventRawResults",
    "WebhookProcessingError",
    "WebhookProcessorType",
    "WriteOptions",
    "__version__",
    "event",
    "load_integration",
    "load_settings",
    "logger",
    "ocean",
    "open_app",
    "verifier_from_config",
]
