"""An integration's resources: its mapping and blueprints, from ``.port/resources`` or Port."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from ._exceptions import ConfigError
from ._integration import Integration
from ._settings import Settings
from ._version import __version__
from .catalog._port_client import PortClient
from .mapping._compiled import CompiledPortAppConfig
from .mapping._models import PortAppConfig, load_port_app_config, parse_port_app_config

logger = logging.getLogger("ocean_trio")


def mapping_file(settings: Settings, root: Path) -> Path | None:
    """``<resources>/port-app-config.{yml,yaml,json}``, the first that exists."""
    resources = settings.resolve(root, settings.resources_path)
    for name in ("port-app-config.yml", "port-app-config.yaml", "port-app-config.json"):
        if (resources / name).is_file():
            return resources / name
    return None


def load_mapping(integration: Integration, settings: Settings, root: Path) -> CompiledPortAppConfig:
    """The port app config from ``<resources>/port-app-config.{yml,yaml,json}``, compiled."""
    path = mapping_file(settings, root)
    if path is not None:
        config = load_port_app_config(path, resource_classes=integration.resource_config_classes)
    else:
        logger.warning("no port-app-config file under %s: nothing will be mapped", root)
        config = PortAppConfig()
    return CompiledPortAppConfig.compile(
        config, allow_env=settings.allow_environment_variables_jq_access
    )


def changelog_destination(settings: Settings) -> dict[str, Any] | None:
    """How Port should tell the integration about changes (Ocean's ``changelogDestination``)."""
    listener = settings.event_listener
    if listener.type == "WEBHOOK" and listener.app_host:
        return {"type": "WEBHOOK", "url": listener.app_host.rstrip("/") + "/resync"}
    if listener.type == "KAFKA":
        return {"type": "KAFKA"}
    return None


async def port_mapping(
    client: PortClient,
    integration: Integration,
    settings: Settings,
    root: Path,
    local: CompiledPortAppConfig,
    *,
    starting: bool = False,
) -> CompiledPortAppConfig:
    """The mapping Port holds for this integration; the local file where Port has none.

    As Ocean does: a missing integration is created, and an empty mapping is filled, with
    the integration's ``.port/resources/port-app-config.yml``; at start-up (``starting``) the
    integration's ``changelogDestination`` is set from the event listener when it differs.
    """
    identifier = str(settings.integration.identifier)
    path = mapping_file(settings, root)
    local_data = _read_config_data(path) if path is not None else {}
    destination = changelog_destination(settings)
    found = await client.get_integration(identifier)
    if found is None:
        logger.info("creating integration %s in Port with the local mapping", identifier)
        body: dict[str, Any] = {
            "installationId": identifier,
            "installationAppType": settings.integration.type,
            "version": __version__,
            "config": local_data,
        }
        if destination is not None:
            body["changelogDestination"] = destination
        await client.create_integration(body)
        return local
    if starting and destination is not None and found.get("changelogDestination") != destination:
        logger.info("telling Port to notify integration %s by %s", identifier, destination["type"])
        await client.patch_integration(identifier, {"changelogDestination": destination})
    config = found.get("config")
    if not config:
        logger.info("integration %s has no mapping in Port: sending the local one", identifier)
        await client.patch_integration(identifier, {"config": local_data})
        return local
    parsed = parse_port_app_config(
        config,
        resource_classes=integration.resource_config_classes,
        source=f"the mapping of integration {identifier} in Port",
    )
    return CompiledPortAppConfig.compile(
        parsed, allow_env=settings.allow_environment_variables_jq_access
    )


def _read_config_data(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return dict(data) if isinstance(data, dict) else {}


def load_blueprints(settings: Settings, root: Path) -> list[dict[str, Any]]:
    """``<resources>/blueprints.json`` if present (created in Port, titles the catalog page)."""
    path = settings.resolve(root, settings.resources_path) / "blueprints.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, list) or not all(isinstance(b, dict) for b in data):
        raise ConfigError(f"{path} must hold a JSON array of blueprint objects")
    return data
