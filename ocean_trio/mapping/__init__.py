"""The port app config and the jq mapping of raw items to entities, with Ocean's semantics."""

from ._compiled import CompiledPortAppConfig
from ._live_changes import (
    live_event_changes,
    register_raw_changes,
    resync_changes,
    unregister_raw_changes,
)
from ._mapper import CalculationResult, MappingIssue, ResourceMapper
from ._models import load_port_app_config, parse_port_app_config

__all__ = [
    "CalculationResult",
    "CompiledPortAppConfig",
    "MappingIssue",
    "ResourceMapper",
    "live_event_changes",
    "load_port_app_config",
    "parse_port_app_config",
    "register_raw_changes",
    "resync_changes",
    "unregister_raw_changes",
]
