"""Secrets never show in ``repr()`` or ``str()``: objects end up in logs, tracebacks and error text."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import pytest

from ocean_trio import Settings
from ocean_trio.catalog._port_client import PortClient
from ocean_trio.live_events._signatures import (
    GitHubSignature,
    GitLabToken,
    HmacSignature,
    StandardWebhooksSignature,
    verifier_from_config,
)
from ocean_trio.testing import make_settings

PORT_SECRET = "port-client-secret-0xC0FFEE"
ADMIN_TOKEN = "admin-token-0xDEADBEEF"
GITHUB_SECRET = "github-secret-0xBADC0DE"
GITLAB_TOKEN = "gitlab-token-0xFACADE"
HMAC_SECRET = "hmac-secret-0xFEEDFACE"
STANDARD_KEY = b"standard-webhooks-key-0xABAD1DEA"
STANDARD_SECRET = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
ROTATED_KEY = b"rotated-webhooks-key-0x0DDBA11"
ROTATED_SECRET = "whsec_" + base64.b64encode(ROTATED_KEY).decode()
INTEGRATION_TOKEN = "integration-api-token-0xCAFEBABE"

# Each secret as configured, plus the forms a repr could reveal it in.
SECRETS = (
    PORT_SECRET,
    ADMIN_TOKEN,
    GITHUB_SECRET,
    GITLAB_TOKEN,
    HMAC_SECRET,
    STANDARD_SECRET,
    STANDARD_SECRET.removeprefix("whsec_"),
    repr(STANDARD_KEY)[2:-1],
    ROTATED_SECRET,
    ROTATED_SECRET.removeprefix("whsec_"),
    repr(ROTATED_KEY)[2:-1],
    INTEGRATION_TOKEN,
)

WEBHOOK_CONFIGS: dict[str, dict[str, object]] = {
    "/github": {"type": "github", "secret": GITHUB_SECRET},
    "/gitlab": {"type": "gitlab", "token": GITLAB_TOKEN},
    "/hmac": {"type": "hmac", "secret": HMAC_SECRET, "header": "X-Signature"},
    "/standard": {"type": "standard-webhooks", "secrets": [STANDARD_SECRET, ROTATED_SECRET]},
}


def assert_hidden(objects: Iterable[object]) -> None:
    for obj in objects:
        for text in (repr(obj), str(obj)):
            leaked = [secret for secret in SECRETS if secret in text]
            assert not leaked, f"{type(obj).__name__} shows {leaked} in {text!r}"


def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        port={"clientId": "client-id", "clientSecret": PORT_SECRET},
        admin={"token": ADMIN_TOKEN},
        integration={"identifier": "jira", "config": {"atlassian_user_token": INTEGRATION_TOKEN}},
        liveEvents={
            "webhooks": {path: {"verifier": config} for path, config in WEBHOOK_CONFIGS.items()}
        },
    )


def test_the_settings_hold_the_secrets(tmp_path: Path) -> None:
    # Guards the tests below: a secret that never reached the settings cannot leak from them.
    loaded = settings(tmp_path)
    assert loaded.port.client_secret == PORT_SECRET
    assert loaded.admin.token == ADMIN_TOKEN
    assert loaded.integration.config["atlassian_user_token"] == INTEGRATION_TOKEN
    webhooks = loaded.live_events.webhooks
    assert {path: hook.verifier for path, hook in webhooks.items()} == WEBHOOK_CONFIGS


def test_settings_hide_every_secret(tmp_path: Path) -> None:
    loaded = settings(tmp_path)
    assert_hidden(
        [
            loaded,
            loaded.port,
            loaded.admin,
            loaded.integration,
            loaded.live_events,
            *loaded.live_events.webhooks.values(),
        ]
    )


@pytest.mark.parametrize(
    "verifier",
    [
        GitHubSignature(GITHUB_SECRET),
        GitLabToken(GITLAB_TOKEN),
        HmacSignature(HMAC_SECRET, "X-Signature", "sha512", "sha512=", "base64"),
        StandardWebhooksSignature((STANDARD_SECRET, ROTATED_SECRET)),
        *(verifier_from_config(config) for config in WEBHOOK_CONFIGS.values()),
    ],
    ids=lambda verifier: type(verifier).__name__,
)
def test_signature_verifiers_hide_their_secrets(verifier: object) -> None:
    assert_hidden([verifier])


async def test_port_client_hides_its_secret() -> None:
    options = {
        "base_url": "http://127.0.0.1:1",
        "client_id": "client-id",
        "client_secret": PORT_SECRET,
        "user_agent": "ocean-trio-test",
    }
    async with PortClient.open(**options) as client:
        assert_hidden([client])
