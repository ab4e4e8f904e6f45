"""ocean-trio: keep a software catalog in sync with third-party services, on trio.

Integrations written for Port's Ocean port by changing imports: the processor API, the
``ocean`` object and the mapping models keep Ocean's names.
"""

from __future__ import annotations

import logging

from ._app import App, open_app
from ._asgi import OceanASGI
from ._entity import UNSET, Entity
from ._exceptions import (
    ConfigError,
    DuplicateDeliveryError,
    JournalFullError,
    MappingError,
    OceanError,
    RetryableError,
    WebhookEventNotSupportedError,
    WebhookProcessingError,
)
from ._ocean import Integration, load_integration, ocean
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
    SignatureError,
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

logger = logging.getLogger("ocean_trio.integration")
"""A logger for integration code (where Ocean code uses loguru's ``logger``)."""

__all__ = [
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
    "JournalFullError",
    "MappingError",
    "MappingsConfig",
    "OceanASGI",
    "OceanError",
    "PortAppConfig",
    "PortResourceConfig",
    "ResourceConfig",
    "RetryableError",
    "Rule",
    "Selector",
    "Settings",
    "SignatureError",
    "SignatureVerifier",
    "StandardWebhooksSignature",
    "WebhookEvent",
    "WebhookEventNotSupportedError",
    "WebhookEventRawResults",
    "WebhookProcessingError",
    "WebhookProcessorType",
    "WriteOptions",
    "__version__",
    "load_integration",
    "load_settings",
    "logger",
    "ocean",
    "open_app",
    "verifier_from_config",
]
