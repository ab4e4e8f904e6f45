"""``RelaySettings``: the relay's ``relay.yaml`` plus ``OCEAN_RELAY__…`` environment variables.

The integration's conventions (``_settings``): camelCase keys (snake_case accepted),
``"{{ from env NAME }}"`` strings read from the environment, ``OCEAN_RELAY__A__B`` setting
``a.b`` (``OCEAN_RELAY__TOKEN``, ``OCEAN_RELAY__HTTP__PORT``; ``OCEAN_RELAY__WEBHOOKS`` holds
a JSON object). Precedence: command-line flags > environment > ``relay.yaml`` > defaults.
Webhook paths (the keys of ``webhooks``) are kept as written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .._converter import camel, merge_trees, structure
from .._exceptions import ConfigError
from .._settings import WebhookSettings, normalise_tree, read_config_file

CONFIG_FILE = "relay.yaml"
ENV_PREFIX = "OCEAN_RELAY__"
MIB = 1024 * 1024
MIN_TOKEN_LENGTH = 16  # the relay faces the internet: a short token is guessable


@attrs.frozen(kw_only=True)
class RelayHttpSettings:
    """Where the relay serves webhooks and the integration's WebSocket."""

    host: str = "127.0.0.1"
    port: int = 9000


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{camel(attribute.name)} must be a positive number, not {value!r}")


@attrs.frozen(kw_only=True)
class RelaySettings:
    """Everything the relay takes; the limits mirror the integration's ``liveEvents``."""

    http: RelayHttpSettings = RelayHttpSettings()
    token: str | None = attrs.field(default=None, repr=False)
    """What the integration presents (``Authorization: Bearer``) to consume; required."""
    state_path: str = ".ocean-trio"
    webhooks: Mapping[str, WebhookSettings | None] = attrs.field(factory=dict)
    max_body_bytes: int = attrs.field(default=25 * MIB, validator=_positive)
    max_json_depth: int = attrs.field(default=64, validator=_positive)
    max_pending_events: int = attrs.field(default=10_000, validator=_positive)
    retention_seconds: float = attrs.field(default=24 * 3600.0, validator=_positive)
    dedup_window_seconds: float = attrs.field(default=72 * 3600.0, validator=_positive)
    max_in_flight: int = attrs.field(default=32, validator=_positive)
    """Events sent to the integration and not acknowledged yet, at most."""
    max_in_flight_bytes: int = attrs.field(default=16 * MIB, validator=_positive)
    """The same in body bytes (one event goes whatever its size)."""
    heartbeat_seconds: float = attrs.field(default=10.0, validator=_positive)
    """A ping this often; a peer silent for three of them is presumed dead."""
    max_wait_seconds_before_shutdown: float = 5.0
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    def paths(self) -> dict[str, WebhookSettings]:
        """The webhook paths served (``/webhook``: ``POST /integration/webhook``)."""
        paths: dict[str, WebhookSettings] = {}
        for raw, webhook in self.webhooks.items():
            path = raw.rstrip("/") or "/"
            if not path.startswith("/"):
                raise ConfigError(f"webhooks: a path must start with '/', not {raw!r}")
            paths[path] = webhook or WebhookSettings()
        return paths

    def secrets(self) -> list[str]:
        """The token and the verifiers' secrets, for masking in logs."""
        found = [self.token] if self.token else []
        for webhook in self.webhooks.values():
            verifier = (webhook.verifier if webhook else None) or {}
            for key in ("secret", "secrets", "token"):
                value = verifier.get(key)
                values = value if isinstance(value, list | tuple) else [value]
                found += [v for v in values if isinstance(v, str)]
        return found

    def state_folder(self, root: Path) -> Path:
        """``statePath`` under the relay's folder (absolute paths are kept)."""
        path = Path(self.state_path).expanduser()
        return path if path.is_absolute() else root / path

    def check(self) -> None:
        """Refuse what the relay cannot start with (``ConfigError``, one line)."""
        if not self.token:
            raise ConfigError(
                f"the relay needs a token: set token in {CONFIG_FILE} (or {ENV_PREFIX}TOKEN);"
                " the integration presents it (liveEvents.relay.token) to consume events"
            )
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the relay's token is too short ({len(self.token)} characters, at least"
                f" {MIN_TOKEN_LENGTH}): anyone guessing it could take the events"
            )
        if not self.paths():
            raise ConfigError(
                f"{CONFIG_FILE} lists no webhook paths: add e.g. 'webhooks: {{/webhook: {{}}}}'"
            )


# Keys under ``webhooks`` are webhook paths: kept as written.
_VERBATIM = (("webhooks",),)


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        parts = [camel(p.lower()) for p in name[len(ENV_PREFIX) :].split("__") if p]
        if parts == ["webhooks"]:
            try:
                webhooks = json.loads(value)
            except ValueError as error:
                raise ConfigError(f"{name} is not a JSON object: {error}") from None
            if not isinstance(webhooks, dict):
                raise ConfigError(f'{name} must hold a JSON object, like {{"/webhook": {{}}}}')
            tree = merge_trees(
                tree, normalise_tree({"webhooks": webhooks}, environ, verbatim=_VERBATIM)
            )
            continue
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} conflicts with another {ENV_PREFIX} variable")
            node = child
        node[parts[-1]] = value
    return tree


def load_relay_settings(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RelaySettings:
    """Read ``root/relay.yaml`` (if any) and ``OCEAN_RELAY__`` variables into ``RelaySettings``."""
    env = os.environ if environ is None else environ
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder (the relay's folder holds {CONFIG_FILE})")
    config_file = root / CONFIG_FILE
    from_file = normalise_tree(read_config_file(config_file), env, verbatim=_VERBATIM)
    merged = merge_trees(from_file, _from_environ(env))
    if overrides:
        merged = merge_trees(merged, normalise_tree(overrides, env, verbatim=_VERBATIM))
    return structure(
        merged, RelaySettings, source=f"relay settings ({config_file} and {ENV_PREFIX}* variables)"
    )
