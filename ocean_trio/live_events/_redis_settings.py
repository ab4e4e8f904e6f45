"""``RedisJournalSettings``: where the ``redis`` journal connects and how it shares the work.

Ocean's names and defaults (``LiveEventsRedisSettings``, §1.7 of the reference) where Ocean
has the setting; ``prefix``, ``shards`` and ``lease_seconds`` are ours (sharded streams with
leases keep per-group order across instances, which Ocean's one shared stream does not).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

import attrs

from .._exceptions import ConfigError

_SCHEMES = ("redis", "rediss")


def public_url(url: str) -> str:
    """``url`` without its login, for repr, messages and logs."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url


@attrs.frozen(kw_only=True)
class RedisJournalSettings:
    """How to reach Redis (URL, login, TLS) and the journal's stream, lease and scan timings.

    ``ca``, ``cert`` and ``private_key`` are base64-encoded PEM, as in Ocean. Invalid
    combinations raise ``ConfigError`` naming the setting.
    """

    url: str = attrs.field(default="redis://localhost:6379", repr=public_url)
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    enable_tls: bool = False
    ca: str | None = None
    cert: str | None = None
    private_key: str | None = attrs.field(default=None, repr=False)
    block_ms: int = 1000
    read_count: int = 10
    pel_stuck_timeout_seconds: float = 600.0
    pel_max_requeue_count: int = 3
    stream_maintenance_scan_interval_seconds: float = 30.0
    prefix: str | None = None
    """The keys' namespace; default ``ocean-trio:<integration identifier>``."""
    instance_id: str | None = None
    """This instance's consumer name, stable across its restarts (so it gets its shards
    back at once); default ``<host name>:<state folder>``."""
    shards: int = 16
    lease_seconds: float = 10.0

    def __attrs_post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"redis.url must start with redis:// or rediss://, not {self.url.split(':')[0]!r}"
            )
        if self.enable_tls != (scheme == "rediss"):
            raise ConfigError(
                f"redis.enable_tls is {str(self.enable_tls).lower()} but redis.url uses"
                f" {scheme}://: TLS needs both enable_tls true and a rediss:// URL"
            )
        if (self.cert is None) != (self.private_key is None):
            raise ConfigError(
                "redis.cert and redis.private_key go together: set both (client certificate)"
                " or neither"
            )
        if (self.ca or self.cert) and not self.enable_tls:
            raise ConfigError("redis.ca and redis.cert need redis.enable_tls (and rediss://)")
        for name in ("ca", "cert", "private_key"):
            _check_pem(name, getattr(self, name))
        _check_positive("redis.shards", self.shards)
        _check_positive("redis.read_count", self.read_count)
        _check_positive("redis.lease_seconds", self.lease_seconds)
        _check_positive("redis.pel_stuck_timeout_seconds", self.pel_stuck_timeout_seconds)
        _check_positive(
            "redis.stream_maintenance_scan_interval_seconds",
            self.stream_maintenance_scan_interval_seconds,
        )
        if self.block_ms < 1:
            raise ConfigError(f"redis.block_ms must be at least 1, not {self.block_ms!r}")
        if self.pel_max_requeue_count < 0:
            raise ConfigError(
                f"redis.pel_max_requeue_count must be 0 or more, not {self.pel_max_requeue_count!r}"
            )
        if self.prefix == "":
            raise ConfigError("redis.prefix must not be empty: it namespaces the journal's keys")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, not {value!r}")


def _check_pem(name: str, value: str | None) -> None:
    if value is None:
        return
    try:
        text = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"redis.{name} is not base64 (a base64-encoded PEM is expected)"
        ) from None
    if b"-----BEGIN" not in text:
        raise ConfigError(f"redis.{name} is base64 but not a PEM (no -----BEGIN line)")
