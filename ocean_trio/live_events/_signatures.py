"""Webhook signature checks on the raw body bytes, run before an event is journaled.

Each scheme is a frozen verifier whose ``verify`` raises ``SignatureError`` (answer 401) when a
request is not authentic. Digests are compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import string
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from .._exceptions import ConfigError, SignatureError

_GITHUB_HEADER = "X-Hub-Signature-256"
_GITLAB_HEADER = "X-Gitlab-Token"
_WEBHOOK_ID = "webhook-id"
_WEBHOOK_TIMESTAMP = "webhook-timestamp"
_WEBHOOK_SIGNATURE = "webhook-signature"
_WHSEC = "whsec_"
_PORT_TIMESTAMP = "x-port-timestamp"
_PORT_SIGNATURE = "x-port-signature"
_ENCODINGS = ("hex", "base64")
_SHA256_SIZE = hashlib.sha256().digest_size
# 15 digits is Unix time for the next ~30 million years; the cap keeps int() (refuses > 4300
# digits) and the float subtraction (overflows past ~309 digits) away from hostile input.
_MAX_TIMESTAMP_DIGITS = 15


class SignatureVerifier(Protocol):
    """Checks that a webhook request is authentic, on its raw body, before it is journaled."""

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` when the request is not authentic.

        ``headers`` keys are lower-case; ``now`` is Unix time in seconds.
        """
        ...


def _non_empty(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _hmac_algorithm(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    try:
        hmac.new(b"key", b"", value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"algorithm {value!r} is not a hashlib algorithm usable with HMAC "
            "(e.g. sha1, sha256, sha512)"
        ) from error


def _encoding(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _ENCODINGS:
        raise ValueError(f"encoding must be 'hex' or 'base64', not {value!r}")


def _tolerance(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < math.inf:  # also rejects NaN
        raise ValueError(f"tolerance_seconds must be a finite number >= 0, not {value!r}")


def _whole_seconds(seconds: float) -> str:
    # Rounded up, so an age just past the tolerance never reads as equal to it.
    return str(math.ceil(seconds)) if math.isfinite(seconds) else str(seconds)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _header_bytes(value: str) -> bytes:
    # The ingress decodes header bytes as latin-1, so encoding back yields what the sender
    # signed; a str built elsewhere with wider characters falls back to UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _decode_digest(value: str, encoding: str, size: int) -> bytes | None:
    """The digest ``value`` encodes, or None when it is not ``size`` bytes in ``encoding``."""
    if encoding == "hex":
        if len(value) != 2 * size or not all(char in string.hexdigits for char in value):
            return None
        return bytes.fromhex(value)
    try:
        digest = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        return None
    return digest if len(digest) == size else None


def _verify_hmac(
    *,
    key: bytes,
    body: bytes,
    headers: Mapping[str, str],
    header: str,
    algorithm: str,
    prefix: str,
    encoding: str,
) -> None:
    received = _header(headers, header)
    expected = hmac.digest(key, body, algorithm)
    digest = None
    if received.startswith(prefix):
        digest = _decode_digest(received[len(prefix) :], encoding, len(expected))
    if digest is None:
        raise SignatureError(f"malformed {header} header (expected {prefix}<{encoding} digest>)")
    if not hmac.compare_digest(digest, expected):
        raise SignatureError(f"{header} does not match the body")


@attrs.frozen
class GitHubSignature:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""

    secret: str = attrs.field(repr=False, validator=_non_empty)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless ``X-Hub-Signature-256`` signs ``body``."""
        _verify_hmac(
            key=self.secret.encode(),
            body=body,
            headers=headers,
            header=_GITHUB_HEADER,
            algorithm="sha256",
            prefix="sha256=",
            encoding="hex",
        )


@attrs.frozen
class GitLabToken:
    """GitLab's shared secret, sent verbatim in ``X-Gitlab-Token`` (no HMAC)."""

    token: str = attrs.field(repr=False, validator=_non_empty)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless ``X-Gitlab-Token`` equals the token (constant time)."""
        received = _header(headers, _GITLAB_HEADER)
        if not hmac.compare_digest(_header_bytes(received), self.token.encode()):
            raise SignatureError(f"{_GITLAB_HEADER} does not match the configured token")


@attrs.frozen
class HmacSignature:
    """An HMAC of the body in one header as ``<prefix><hex or base64 digest>``.

    For senders without a class of their own, e.g. Jira's ``X-Hub-Signature: sha256=<hex>``.
    """

    secret: str = attrs.field(repr=False, validator=_non_empty)
    header: str = attrs.field(validator=_non_empty)
    algorithm: str = attrs.field(default="sha256", validator=_hmac_algorithm)
    prefix: str = ""
    encoding: str = attrs.field(default="hex", validator=_encoding)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless the header holds the HMAC of ``body``."""
        _verify_hmac(
            key=self.secret.encode(),
            body=body,
            headers=headers,
            header=self.header,
            algorithm=self.algorithm,
            prefix=self.prefix,
            encoding=self.encoding,
        )


def _as_secrets(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _standard_key(secret: str) -> bytes:
    # The message must not quote the secret: it ends up in logs and ConfigError.
    try:
        key = base64.b64decode(secret.removeprefix(_WHSEC), validate=True)
    except ValueError as error:
        raise ValueError(
            "a Standard Webhooks secret must be base64, optionally after 'whsec_'"
        ) from error
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def _v1_signatures(value: str, header: str = _WEBHOOK_SIGNATURE) -> list[bytes]:
    """The decoded ``v1`` digests in a signature header (``webhook-signature``); other versions
    are skipped."""
    signatures = []
    for entry in value.split():
        version, comma, encoded = entry.partition(",")
        digest = _decode_digest(encoded, "base64", _SHA256_SIZE) if version == "v1" else b""
        if not version or not comma or digest is None:
            raise SignatureError(
                f"malformed {header} header (expected space-separated 'v1,<base64>' entries)"
            )
        if version == "v1":
            signatures.append(digest)
    if not signatures:
        raise SignatureError(f"{header} has no v1 signature")
    return signatures


def _check_timestamp(timestamp: str, now: float, tolerance: float, header: str) -> None:
    """Raise ``SignatureError`` unless ``timestamp`` (Unix seconds) is within ``tolerance``."""
    digits = timestamp.isascii() and timestamp.isdigit()
    if not digits or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"malformed {header} header (expected integer Unix seconds)")
    age = now - int(timestamp)
    if -tolerance <= age <= tolerance:
        return
    if age > tolerance:
        raise SignatureError(f"{header} is {_whole_seconds(age)} s old (tolerance {tolerance:g} s)")
    raise SignatureError(
        f"{header} is {_whole_seconds(-age)} s in the future (tolerance {tolerance:g} s)"
    )


@attrs.frozen
class StandardWebhooksSignature:
    """The Standard Webhooks (and Svix) scheme: base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``.

    Several secrets may be configured, and any ``v1`` entry matching any of them passes (rotation).
    """

    secrets: tuple[str, ...] = attrs.field(converter=_as_secrets, repr=False)
    tolerance_seconds: float = attrs.field(default=300.0, validator=_tolerance)
    _keys: tuple[bytes, ...] = attrs.field(init=False, repr=False, eq=False)

    @_keys.default
    def _decode_keys(self) -> tuple[bytes, ...]:
        if not self.secrets:
            raise ValueError("at least one Standard Webhooks secret is required")
        return tuple(_standard_key(secret) for secret in self.secrets)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless the timestamp is within tolerance and a v1 entry matches."""
        message_id = _header(headers, _WEBHOOK_ID)
        timestamp = _header(headers, _WEBHOOK_TIMESTAMP)
        received = _v1_signatures(_header(headers, _WEBHOOK_SIGNATURE))
        _check_timestamp(timestamp, now, self.tolerance_seconds, _WEBHOOK_TIMESTAMP)
        signed_prefix = b"%s.%s." % (_header_bytes(message_id), timestamp.encode())
        expected = []
        for key in self._keys:
            # Feeding the body separately avoids copying a body of up to 25 MB per key.
            mac = hmac.new(key, signed_prefix, "sha256")
            mac.update(body)
            expected.append(mac.digest())
        if not any(hmac.compare_digest(r, e) for r in received for e in expected):
            raise SignatureError(f"{_WEBHOOK_SIGNATURE} does not match the request")


@attrs.frozen
class PortSignature:
    """How Port signs the webhooks it sends: ``x-port-signature: v1,<base64 HMAC-SHA256 of
    "{x-port-timestamp}.{body}">``, keyed by the organization's client secret."""

    secret: str = attrs.field(repr=False, validator=_non_empty)
    tolerance_seconds: float = attrs.field(default=300.0, validator=_tolerance)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless the timestamp is within tolerance and the signature
        matches."""
        timestamp = _header(headers, _PORT_TIMESTAMP)
        received = _v1_signatures(_header(headers, _PORT_SIGNATURE), _PORT_SIGNATURE)
        _check_timestamp(timestamp, now, self.tolerance_seconds, _PORT_TIMESTAMP)
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b".", "sha256")
        mac.update(body)
        expected = mac.digest()
        if not any(hmac.compare_digest(r, expected) for r in received):
            raise SignatureError(f"{_PORT_SIGNATURE} does not match the request")


_CONFIG_KEYS: dict[str, frozenset[str]] = {
    "github": frozenset({"type", "secret"}),
    "gitlab": frozenset({"type", "token"}),
    "hmac": frozenset({"type", "secret", "header", "algorithm", "prefix", "encoding"}),
    "standard-webhooks": frozenset({"type", "secret", "secrets", "toleranceSeconds"}),
    "port": frozenset({"type", "secret", "toleranceSeconds"}),
}


def _config_str(config: Mapping[str, Any], kind: str, key: str, default: str | None = None) -> str:
    value = config.get(key, default)
    if value is None:
        raise ConfigError(f"signature config ({kind}): {key!r} is missing")
    if not isinstance(value, str):
        raise ConfigError(f"signature config ({kind}): {key!r} must be a string")
    if not value and default is None:
        raise ConfigError(f"signature config ({kind}): {key!r} must not be empty")
    return value


def _config_secrets(config: Mapping[str, Any]) -> tuple[str, ...]:
    if "secret" in config and "secrets" in config:
        raise ConfigError(
            "signature config (standard-webhooks): give 'secret' or 'secrets', not both"
        )
    if "secret" not in config and "secrets" in config:
        secrets = config["secrets"]
        if (
            not isinstance(secrets, list | tuple)
            or not secrets
            or not all(isinstance(secret, str) and secret for secret in secrets)
        ):
            raise ConfigError(
                "signature config (standard-webhooks): 'secrets' must be a non-empty list of "
                "non-empty strings"
            )
        return tuple(secrets)
    return (_config_str(config, "standard-webhooks", "secret"),)


def _config_tolerance(config: Mapping[str, Any], kind: str) -> float:
    value = config.get("toleranceSeconds", 300.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"signature config ({kind}): 'toleranceSeconds' must be a number")
    return value


def verifier_from_config(config: Mapping[str, Any]) -> SignatureVerifier:
    """Build the verifier a signature config describes, e.g. ``{"type": "github", "secret": ...}``.

    Raises ``ConfigError`` naming the problem (never the secret) for a bad type, key or value.
    """
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in _CONFIG_KEYS:
        raise ConfigError(
            f"signature config: unknown type {kind!r} (expected one of {', '.join(_CONFIG_KEYS)})"
        )
    unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS[kind])
    if unknown:
        raise ConfigError(f"signature config ({kind}): unknown key(s) {', '.join(unknown)}")
    try:
        if kind == "github":
            return GitHubSignature(_config_str(config, kind, "secret"))
        if kind == "gitlab":
            return GitLabToken(_config_str(config, kind, "token"))
        if kind == "hmac":
            return HmacSignature(
                secret=_config_str(config, kind, "secret"),
                header=_config_str(config, kind, "header"),
                algorithm=_config_str(config, kind, "algorithm", "sha256"),
                prefix=_config_str(config, kind, "prefix", ""),
                encoding=_config_str(config, kind, "encoding", "hex"),
            )
        if kind == "port":
            return PortSignature(
                _config_str(config, kind, "secret"),
                tolerance_seconds=_config_tolerance(config, kind),
            )
        return StandardWebhooksSignature(
            _config_secrets(config), tolerance_seconds=_config_tolerance(config, kind)
        )
    except ValueError as error:
        raise ConfigError(f"signature config ({kind}): {error}") from error
