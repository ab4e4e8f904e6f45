"""``RedisJournalSettings``: Ocean's defaults, its TLS and certificate rules, secrets kept out of repr."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ocean_trio import ConfigError
from ocean_trio._settings import load_settings
from ocean_trio.live_events._redis_settings import RedisJournalSettings, public_url

PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KEY = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nsecret-key-0xC0DE\n-----END").decode()


def test_defaults_are_oceans() -> None:
    settings = RedisJournalSettings()
    assert (settings.url, settings.block_ms, settings.read_count) == (
        "redis://localhost:6379",
        1000,
        10,
    )
    assert (settings.pel_stuck_timeout_seconds, settings.pel_max_requeue_count) == (600.0, 3)
    assert settings.stream_maintenance_scan_interval_seconds == 30.0
    assert (settings.shards, settings.lease_seconds) == (16, 10.0)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"url": "rediss://h:6380"}, "redis.enable_tls"),
        ({"url": "redis://h", "enable_tls": True}, "redis.enable_tls"),
        ({"url": "http://h"}, "redis.url"),
        (
            {"url": "rediss://h", "enable_tls": True, "cert": PEM},
            "redis.cert and redis.private_key",
        ),
        ({"url": "rediss://h", "enable_tls": True, "private_key": KEY}, "redis.cert"),
        ({"ca": PEM}, "redis.ca"),
        ({"url": "rediss://h", "enable_tls": True, "ca": "not base64!"}, "redis.ca is not base64"),
        ({"url": "rediss://h", "enable_tls": True, "ca": "aGVsbG8="}, "redis.ca is base64 but"),
        ({"shards": 0}, "redis.shards"),
        ({"lease_seconds": 0}, "redis.lease_seconds"),
        ({"prefix": ""}, "redis.prefix"),
    ],
)
def test_invalid_settings_name_the_setting(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RedisJournalSettings(**options)  # type: ignore[arg-type]


def test_tls_with_a_client_certificate_is_accepted() -> None:
    settings = RedisJournalSettings(
        url="rediss://redis.example:6380", enable_tls=True, ca=PEM, cert=PEM, private_key=KEY
    )
    assert settings.enable_tls


def test_secrets_stay_out_of_repr_and_messages() -> None:
    settings = RedisJournalSettings(
        url="rediss://user:pw-0xBEEF@h:6380",
        enable_tls=True,
        password="password-0xFEED",
        cert=PEM,
        private_key=KEY,
    )
    assert "password-0xFEED" not in repr(settings)
    assert KEY not in repr(settings)
    assert "pw-0xBEEF" not in repr(settings)
    assert public_url(settings.url) == "rediss://h:6380"


def test_oceans_environment_variables_select_and_set_the_redis_journal(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        environ={
            "OCEAN__LIVE_EVENTS__TYPE": "REDIS",  # Ocean's switch
            "OCEAN__LIVE_EVENTS__REDIS__URL": "rediss://redis.example:6380",
            "OCEAN__LIVE_EVENTS__REDIS__ENABLE_TLS": "true",
            "OCEAN__LIVE_EVENTS__REDIS__CA": PEM,
            "OCEAN__LIVE_EVENTS__REDIS__PEL_MAX_REQUEUE_COUNT": "5",
            "OCEAN__LIVE_EVENTS__REDIS__BLOCK_MS": "200",
            "OCEAN__LIVE_EVENTS__REDIS__LEASE_SECONDS": "4",
        },
    )
    assert settings.live_events.journal_type == "redis"
    redis = settings.live_events.redis
    assert (redis.url, redis.enable_tls, redis.ca) == ("rediss://redis.example:6380", True, PEM)
    assert (redis.pel_max_requeue_count, redis.block_ms, redis.lease_seconds) == (5, 200, 4.0)


def test_a_bad_redis_setting_in_the_environment_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ={"OCEAN__LIVE_EVENTS__REDIS__URL": "rediss://r:1"})
    message = str(error.value)
    assert "redis.enableTls is false but redis.url uses rediss://" in message
    assert "$.liveEvents.redis" in message
    assert "unknown error" not in message
