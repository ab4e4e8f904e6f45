"""Webhook signature verifiers: good requests pass, every other request is a SignatureError."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocean_trio._exceptions import ConfigError, OceanError, SignatureError
from ocean_trio.live_events._signatures import (
    GitHubSignature,
    GitLabToken,
    HmacSignature,
    PortSignature,
    SignatureVerifier,
    StandardWebhooksSignature,
    verifier_from_config,
)

NOW = 1_700_000_000.0
BODY = b'{"action": "opened", "number": 7}'
OTHER_BODY = b'{"action": "closed", "number": 7}'
SECRET = "gh-Secret-0123"
TOKEN = "gl-Token-4567"
STANDARD_KEY = b"standard-webhooks-key-0123456789"
STANDARD_SECRET = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
ROTATED_KEY = b"rotated-standard-webhooks-key-99"
ROTATED_SECRET = "whsec_" + base64.b64encode(ROTATED_KEY).decode()
MESSAGE_ID = "msg_2b8fJ0ad"


def github_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}"}


def standard_signature(
    key: bytes, body: bytes, message_id: str = MESSAGE_ID, timestamp: int = int(NOW)
) -> str:
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(key, content, "sha256")).decode()


def standard_headers(
    signature: str, message_id: str = MESSAGE_ID, timestamp: int | str = int(NOW)
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def port_headers(
    body: bytes, secret: str = SECRET, timestamp: int | str = int(NOW)
) -> dict[str, str]:
    """What Port sends: base64 HMAC-SHA256 of ``"{timestamp}.{body}"`` keyed by the client
    secret, versioned ``v1,`` (Port's "Validating webhook signatures" guide)."""
    content = f"{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.digest(secret.encode(), content, "sha256")).decode()
    return {"x-port-timestamp": str(timestamp), "x-port-signature": f"v1,{digest}"}


def rejection(
    verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str], now: float = NOW
) -> str:
    with pytest.raises(SignatureError) as caught:
        verifier.verify(body, headers, now)
    return str(caught.value)


# -- GitHub -------------------------------------------------------------------------------------


def test_github_published_test_vector_passes() -> None:
    # docs.github.com "Validating webhook deliveries", "Testing the webhook payload validation".
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verifier = GitHubSignature("It's a Secret to Everybody")
    verifier.verify(b"Hello, World!", {"x-hub-signature-256": signature}, NOW)


def test_github_good_signature_passes() -> None:
    GitHubSignature(SECRET).verify(BODY, github_headers(BODY), NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Hub-Signature-256 header"),
        ({"x-hub-signature-256": ""}, "missing X-Hub-Signature-256 header"),
        ({"x-hub-signature": github_headers(BODY)["x-hub-signature-256"]}, "missing"),
        (github_headers(OTHER_BODY), "X-Hub-Signature-256 does not match the body"),
        (github_headers(BODY, secret="another"), "X-Hub-Signature-256 does not match the body"),
        (
            {"x-hub-signature-256": github_headers(BODY)["x-hub-signature-256"][7:]},
            "malformed X-Hub-Signature-256 header (expected sha256=<hex digest>)",
        ),
        (
            {"x-hub-signature-256": "sha1=" + hmac.new(SECRET.encode(), BODY, "sha1").hexdigest()},
            "malformed X-Hub-Signature-256 header",
        ),
        ({"x-hub-signature-256": "sha256=" + "g" * 64}, "malformed X-Hub-Signature-256 header"),
        ({"x-hub-signature-256": "sha256=" + "ab" * 31}, "malformed X-Hub-Signature-256 header"),
        ({"x-hub-signature-256": "sha256=é"}, "malformed X-Hub-Signature-256 header"),
    ],
    ids=[
        "missing",
        "empty",
        "legacy-header-only",
        "other-body",
        "other-secret",
        "no-prefix",
        "sha1-prefix",
        "not-hex",
        "short",
        "non-ascii",
    ],
)
def test_github_bad_requests_fail(headers: dict[str, str], message: str) -> None:
    assert message in rejection(GitHubSignature(SECRET), BODY, headers)


# -- GitLab -------------------------------------------------------------------------------------


def test_gitlab_matching_token_passes() -> None:
    GitLabToken(TOKEN).verify(BODY, {"x-gitlab-token": TOKEN}, NOW)


def test_gitlab_non_ascii_token_passes_as_the_ingress_decodes_it() -> None:
    # GitLab sends the token's UTF-8 bytes; the ingress decodes header bytes as latin-1.
    token = "jeton-sécret"
    GitLabToken(token).verify(BODY, {"x-gitlab-token": token.encode().decode("latin-1")}, NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Gitlab-Token header"),
        ({"x-gitlab-token": " "}, "missing X-Gitlab-Token header"),
        ({"x-gitlab-token": TOKEN + "x"}, "X-Gitlab-Token does not match the configured token"),
        ({"x-gitlab-token": TOKEN[:-1]}, "X-Gitlab-Token does not match the configured token"),
        ({"x-gitlab-token": TOKEN.upper()}, "X-Gitlab-Token does not match the configured token"),
        ({"x-gitlab-token": "\udc80"}, "X-Gitlab-Token does not match the configured token"),
    ],
    ids=["missing", "blank", "longer", "shorter", "other-case", "lone-surrogate"],
)
def test_gitlab_bad_tokens_fail(headers: dict[str, str], message: str) -> None:
    assert message in rejection(GitLabToken(TOKEN), BODY, headers)


# -- generic HMAC -------------------------------------------------------------------------------


def encode_digest(digest: bytes, encoding: str) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("prefix", ["", "sha256="])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_good_signature_passes(algorithm: str, prefix: str, encoding: str) -> None:
    verifier = HmacSignature(SECRET, "X-Signature", algorithm, prefix, encoding)
    value = prefix + encode_digest(hmac.digest(SECRET.encode(), BODY, algorithm), encoding)
    verifier.verify(BODY, {"x-signature": value}, NOW)


def test_hmac_accepts_upper_case_hex() -> None:
    value = hmac.digest(SECRET.encode(), BODY, "sha256").hex().upper()
    HmacSignature(SECRET, "X-Signature").verify(BODY, {"x-signature": value}, NOW)


def sha256_value(body: bytes, encoding: str = "hex", secret: str = SECRET) -> str:
    return encode_digest(hmac.digest(secret.encode(), body, "sha256"), encoding)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Signature header"),
        (
            {"x-signature": "sha256=" + sha256_value(OTHER_BODY)},
            "X-Signature does not match the body",
        ),
        (
            {"x-signature": "sha256=" + sha256_value(BODY, secret="other")},
            "X-Signature does not match the body",
        ),
        (
            {"x-signature": sha256_value(BODY)},
            "malformed X-Signature header (expected sha256=<hex digest>)",
        ),
        ({"x-signature": "SHA256=" + sha256_value(BODY)}, "malformed X-Signature header"),
        ({"x-signature": "sha256=" + sha256_value(BODY, "base64")}, "malformed X-Signature header"),
        (
            {"x-signature": "sha256=" + hmac.new(SECRET.encode(), BODY, "sha1").hexdigest()},
            "malformed X-Signature header",
        ),
    ],
    ids=["missing", "other-body", "other-secret", "no-prefix", "other-prefix", "base64", "sha1"],
)
def test_hmac_bad_requests_fail(headers: dict[str, str], message: str) -> None:
    verifier = HmacSignature(SECRET, "X-Signature", prefix="sha256=")
    assert message in rejection(verifier, BODY, headers)


def test_hmac_base64_verifier_rejects_hex_and_invalid_base64() -> None:
    verifier = HmacSignature(SECRET, "X-Signature", encoding="base64")
    for value in (sha256_value(BODY), "!!" + sha256_value(BODY, "base64")[2:]):
        assert "malformed X-Signature header (expected <base64 digest>)" in rejection(
            verifier, BODY, {"x-signature": value}
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"algorithm": "sha999"}, "algorithm 'sha999' is not a hashlib algorithm"),
        ({"algorithm": "shake_128"}, "algorithm 'shake_128' is not a hashlib algorithm"),
        ({"encoding": "base32"}, "encoding must be 'hex' or 'base64', not 'base32'"),
        ({"header": ""}, "header must not be empty"),
        ({"secret": ""}, "secret must not be empty"),
    ],
)
def test_hmac_rejects_bad_settings_at_construction(arguments: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        HmacSignature(**{"secret": SECRET, "header": "X-Signature", **arguments})


# -- Standard Webhooks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
)
def test_standard_published_test_vector_passes(secret: str) -> None:
    # The vector of the Standard Webhooks / Svix reference libraries (their sign() tests); a bare
    # base64 key (no whsec_) is accepted like they accept it.
    headers = standard_headers(
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
    )
    StandardWebhooksSignature(secret).verify(b'{"test": 2432232314}', headers, 1614265330.0)


def test_standard_good_signature_passes() -> None:
    headers = standard_headers(standard_signature(STANDARD_KEY, BODY))
    StandardWebhooksSignature(STANDARD_SECRET).verify(BODY, headers, NOW)


def test_standard_passes_when_one_of_several_signatures_matches() -> None:
    good = standard_signature(STANDARD_KEY, BODY)
    wrong = standard_signature(ROTATED_KEY, BODY)
    # Other versions (v1a is the spec's ed25519) are ignored, even when not base64.
    signature = f"v1a,bm9wZQ== {wrong} v2,not-base64 {good}"
    StandardWebhooksSignature(STANDARD_SECRET).verify(BODY, standard_headers(signature), NOW)


@pytest.mark.parametrize("key", [STANDARD_KEY, ROTATED_KEY], ids=["old-key", "new-key"])
def test_standard_rotation_accepts_either_secret(key: bytes) -> None:
    verifier = StandardWebhooksSignature((STANDARD_SECRET, ROTATED_SECRET))
    verifier.verify(BODY, standard_headers(standard_signature(key, BODY)), NOW)


def test_standard_single_secret_becomes_a_tuple() -> None:
    assert StandardWebhooksSignature(STANDARD_SECRET).secrets == (STANDARD_SECRET,)
    assert StandardWebhooksSignature([STANDARD_SECRET]) == StandardWebhooksSignature(
        STANDARD_SECRET
    )


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (NOW + 400, "webhook-timestamp is 400 s old (tolerance 300 s)"),
        (NOW - 400, "webhook-timestamp is 400 s in the future (tolerance 300 s)"),
        (NOW + 300.5, "webhook-timestamp is 301 s old (tolerance 300 s)"),
    ],
    ids=["expired", "future", "just-expired"],
)
def test_standard_timestamp_out_of_tolerance_fails(now: float, message: str) -> None:
    headers = standard_headers(standard_signature(STANDARD_KEY, BODY))
    assert rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers, now) == message


@pytest.mark.parametrize("now", [NOW + 300, NOW - 300], ids=["old-edge", "future-edge"])
def test_standard_timestamp_at_the_tolerance_edge_passes(now: float) -> None:
    headers = standard_headers(standard_signature(STANDARD_KEY, BODY))
    StandardWebhooksSignature(STANDARD_SECRET).verify(BODY, headers, now)


def test_standard_tolerance_is_configurable() -> None:
    headers = standard_headers(standard_signature(STANDARD_KEY, BODY))
    verifier = StandardWebhooksSignature(STANDARD_SECRET, tolerance_seconds=30)
    assert rejection(verifier, BODY, headers, NOW + 31) == (
        "webhook-timestamp is 31 s old (tolerance 30 s)"
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        "soon",
        "1700000000.0",
        "-1700000000",
        "+1700000000",
        "1e9",
        "\uff11\uff17\uff10\uff10",
        "9" * 16,
    ],
)
def test_standard_non_integer_timestamp_fails(timestamp: str) -> None:
    signature = standard_signature(STANDARD_KEY, BODY)
    headers = standard_headers(signature, timestamp=timestamp)
    assert rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers) == (
        "malformed webhook-timestamp header (expected integer Unix seconds)"
    )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header_fails(missing: str) -> None:
    headers = standard_headers(standard_signature(STANDARD_KEY, BODY))
    del headers[missing]
    message = rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers)
    assert message == f"missing {missing} header"


@pytest.mark.parametrize(
    "signature",
    [
        "v1",
        base64.b64encode(b"x" * 32).decode(),
        ",abc",
        "v1,not base64!",
        "v1," + "ab" * 32,
        "v1," + base64.b64encode(b"x" * 20).decode(),
        "v1=" + base64.b64encode(b"x" * 32).decode(),
    ],
    ids=["no-comma", "no-version", "no-version-comma", "not-base64", "hex", "short", "equals"],
)
def test_standard_malformed_signature_header_fails(signature: str) -> None:
    headers = standard_headers(signature)
    assert rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers) == (
        "malformed webhook-signature header (expected space-separated 'v1,<base64>' entries)"
    )


def test_standard_signature_header_without_v1_entry_fails() -> None:
    headers = standard_headers("v1a,bm9wZQ== v2,abc")
    assert rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers) == (
        "webhook-signature has no v1 signature"
    )


@pytest.mark.parametrize(
    "headers",
    [
        standard_headers(standard_signature(STANDARD_KEY, OTHER_BODY)),
        standard_headers(standard_signature(STANDARD_KEY, BODY), message_id="msg_other"),
        standard_headers(
            standard_signature(STANDARD_KEY, BODY, timestamp=int(NOW) - 10), timestamp=int(NOW)
        ),
        standard_headers(standard_signature(b"an-unrelated-key", BODY)),
    ],
    ids=["other-body", "other-id", "other-timestamp", "other-key"],
)
def test_standard_signature_of_other_content_fails(headers: dict[str, str]) -> None:
    assert rejection(StandardWebhooksSignature(STANDARD_SECRET), BODY, headers) == (
        "webhook-signature does not match the request"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"secrets": ()}, "at least one Standard Webhooks secret is required"),
        ({"secrets": "whsec_not base64!"}, "a Standard Webhooks secret must be base64"),
        ({"secrets": "whsec_"}, "a Standard Webhooks secret must not be empty"),
        ({"secrets": STANDARD_SECRET, "tolerance_seconds": -1}, "tolerance_seconds must be"),
        ({"secrets": STANDARD_SECRET, "tolerance_seconds": float("nan")}, "tolerance_seconds"),
    ],
    ids=["no-secret", "not-base64", "empty-key", "negative-tolerance", "nan-tolerance"],
)
def test_standard_rejects_bad_settings_at_construction(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        StandardWebhooksSignature(**arguments)


# -- a signature replayed on another body ---------------------------------------------------------


def signed_request(verifier: SignatureVerifier, body: bytes) -> dict[str, str]:
    """Headers a genuine sender would send with ``body`` for ``verifier``'s scheme."""
    if isinstance(verifier, GitHubSignature):
        return github_headers(body)
    if isinstance(verifier, HmacSignature):
        return {"x-signature": "sha256=" + sha256_value(body, "base64")}
    if isinstance(verifier, StandardWebhooksSignature):
        return standard_headers(standard_signature(STANDARD_KEY, body))
    if isinstance(verifier, PortSignature):
        return port_headers(body)
    raise AssertionError(verifier)


SIGNING_VERIFIERS: list[SignatureVerifier] = [
    GitHubSignature(SECRET),
    HmacSignature(SECRET, "X-Signature", prefix="sha256=", encoding="base64"),
    StandardWebhooksSignature(STANDARD_SECRET),
    PortSignature(SECRET),
]


@pytest.mark.parametrize(
    "verifier", SIGNING_VERIFIERS, ids=lambda verifier: type(verifier).__name__
)
def test_signature_replayed_on_another_body_fails(verifier: SignatureVerifier) -> None:
    headers = signed_request(verifier, BODY)
    verifier.verify(BODY, headers, NOW)
    assert "does not match" in rejection(verifier, OTHER_BODY, headers)
    assert "does not match" in rejection(verifier, BODY + b" ", headers)


@settings(max_examples=50)
@given(body=st.binary(max_size=256), other=st.binary(max_size=256))
def test_signed_body_passes_and_any_other_body_fails(body: bytes, other: bytes) -> None:
    for verifier in SIGNING_VERIFIERS:
        headers = signed_request(verifier, body)
        verifier.verify(body, headers, NOW)
        if other != body:
            with pytest.raises(SignatureError):
                verifier.verify(other, headers, NOW)


# -- Port ---------------------------------------------------------------------------------------


def test_port_good_signature_passes() -> None:
    PortSignature(SECRET).verify(BODY, port_headers(BODY), NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing x-port-timestamp header"),
        ({"x-port-timestamp": str(int(NOW))}, "missing x-port-signature header"),
        (port_headers(BODY, secret="another"), "x-port-signature does not match the request"),
        (port_headers(BODY, timestamp=int(NOW) - 301), "x-port-timestamp is 301 s old"),
        (port_headers(BODY, timestamp="soon"), "malformed x-port-timestamp header"),
        (
            {**port_headers(BODY), "x-port-signature": "sha256=abc"},
            "malformed x-port-signature header",
        ),
        (
            {**port_headers(BODY), "x-port-timestamp": str(int(NOW) + 1)},
            "x-port-signature does not match the request",
        ),
    ],
    ids=["nothing", "no-signature", "other-secret", "stale", "not-a-time", "malformed", "re-timed"],
)
def test_port_bad_requests_fail(headers: dict[str, str], message: str) -> None:
    assert message in rejection(PortSignature(SECRET), BODY, headers)


# -- verifier_from_config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"type": "github", "secret": SECRET}, GitHubSignature(SECRET)),
        ({"type": "gitlab", "token": TOKEN}, GitLabToken(TOKEN)),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET},
            StandardWebhooksSignature(STANDARD_SECRET),
        ),
        (
            {
                "type": "standard-webhooks",
                "secrets": [STANDARD_SECRET, ROTATED_SECRET],
                "toleranceSeconds": 60,
            },
            StandardWebhooksSignature((STANDARD_SECRET, ROTATED_SECRET), tolerance_seconds=60),
        ),
        (
            {"type": "hmac", "secret": SECRET, "header": "X-Signature"},
            HmacSignature(SECRET, "X-Signature"),
        ),
        (
            {
                "type": "hmac",
                "secret": SECRET,
                "header": "X-Hub-Signature",
                "algorithm": "sha1",
                "prefix": "sha1=",
                "encoding": "base64",
            },
            HmacSignature(SECRET, "X-Hub-Signature", "sha1", "sha1=", "base64"),
        ),
        (
            {"type": "port", "secret": SECRET, "toleranceSeconds": 60},
            PortSignature(SECRET, tolerance_seconds=60),
        ),
    ],
    ids=[
        "github",
        "gitlab",
        "standard",
        "standard-rotation",
        "hmac-defaults",
        "hmac-full",
        "port",
    ],
)
def test_verifier_from_config_builds_each_type(
    config: dict[str, Any], expected: SignatureVerifier
) -> None:
    assert verifier_from_config(config) == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret": SECRET}, "signature config: unknown type None"),
        ({"type": "bitbucket", "secret": SECRET}, "signature config: unknown type 'bitbucket'"),
        ({"type": ["github"], "secret": SECRET}, "signature config: unknown type ['github']"),
        ({"type": "github"}, "signature config (github): 'secret' is missing"),
        ({"type": "github", "secret": ""}, "signature config (github): 'secret' must not be empty"),
        ({"type": "github", "secret": 123}, "signature config (github): 'secret' must be a string"),
        ({"type": "gitlab", "secret": TOKEN}, "signature config (gitlab): unknown key(s) secret"),
        ({"type": "gitlab"}, "signature config (gitlab): 'token' is missing"),
        ({"type": "hmac", "header": "X-Signature"}, "signature config (hmac): 'secret' is missing"),
        ({"type": "hmac", "secret": SECRET}, "signature config (hmac): 'header' is missing"),
        (
            {"type": "hmac", "secret": SECRET, "header": "X-S", "algorithm": "crc32"},
            "signature config (hmac): algorithm 'crc32' is not a hashlib algorithm",
        ),
        (
            {"type": "hmac", "secret": SECRET, "header": "X-S", "encoding": "base32"},
            "signature config (hmac): encoding must be 'hex' or 'base64'",
        ),
        (
            {"type": "standard-webhooks"},
            "signature config (standard-webhooks): 'secret' is missing",
        ),
        (
            {"type": "standard-webhooks", "secrets": []},
            "'secrets' must be a non-empty list of non-empty strings",
        ),
        (
            {"type": "standard-webhooks", "secrets": [STANDARD_SECRET, ""]},
            "'secrets' must be a non-empty list of non-empty strings",
        ),
        (
            {"type": "standard-webhooks", "secrets": STANDARD_SECRET},
            "'secrets' must be a non-empty list of non-empty strings",
        ),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET, "secrets": [ROTATED_SECRET]},
            "give 'secret' or 'secrets', not both",
        ),
        (
            {"type": "standard-webhooks", "secret": "whsec_%%%%-private-%%%%"},
            "signature config (standard-webhooks): a Standard Webhooks secret must be base64",
        ),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET, "toleranceSeconds": "300"},
            "'toleranceSeconds' must be a number",
        ),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET, "toleranceSeconds": True},
            "'toleranceSeconds' must be a number",
        ),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET, "toleranceSeconds": -5},
            "tolerance_seconds must be a finite number >= 0",
        ),
        (
            {"type": "standard-webhooks", "secret": STANDARD_SECRET, "tolerance_seconds": 5},
            "signature config (standard-webhooks): unknown key(s) tolerance_seconds",
        ),
    ],
)
def test_verifier_from_config_rejects_bad_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        verifier_from_config(config)
    assert message in str(caught.value)
    for secret in (SECRET, TOKEN, STANDARD_SECRET, "private"):
        assert secret not in str(caught.value)


# -- secrets stay secret --------------------------------------------------------------------------

ALL_VERIFIERS: list[SignatureVerifier] = [
    GitHubSignature(SECRET),
    GitLabToken(TOKEN),
    HmacSignature(SECRET, "X-Signature", "sha512", "sha512=", "base64"),
    StandardWebhooksSignature((STANDARD_SECRET, ROTATED_SECRET)),
    PortSignature(SECRET),
]
SECRETS = (SECRET, TOKEN, STANDARD_SECRET, ROTATED_SECRET, STANDARD_SECRET[6:], ROTATED_SECRET[6:])


@pytest.mark.parametrize("verifier", ALL_VERIFIERS, ids=lambda verifier: type(verifier).__name__)
def test_repr_does_not_contain_the_secret(verifier: SignatureVerifier) -> None:
    text = repr(verifier)
    assert text.startswith(type(verifier).__name__ + "(")
    for secret in SECRETS:
        assert secret not in text


def test_signature_error_is_an_ocean_error() -> None:
    assert issubclass(SignatureError, OceanError)


# -- hostile input ----------------------------------------------------------------------------------

HEADER_NAMES = [
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]
base64_text = st.binary(max_size=70).map(lambda raw: base64.b64encode(raw).decode())
header_values = st.one_of(
    st.text(max_size=120),
    base64_text,
    st.binary(min_size=32, max_size=32).map(lambda raw: "sha512=" + raw.hex()),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(min_value=int(NOW) - 400, max_value=int(NOW) + 400).map(str),
    st.lists(
        st.tuples(
            st.sampled_from(["v1", "v1a", "v2", "", "V1"]),
            st.sampled_from([",", "", "="]),
            base64_text | st.text(max_size=20),
        ).map("".join),
        max_size=5,
    ).map(" ".join),
    st.just(TOKEN),
)
hostile_headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES) | st.text(max_size=20), header_values, max_size=8
)


@settings(max_examples=300)
@given(
    body=st.binary(max_size=512),
    headers=hostile_headers,
    now=st.floats(allow_nan=False) | st.floats(min_value=NOW - 10**6, max_value=NOW + 10**6),
)
def test_random_requests_only_ever_raise_signature_error(
    body: bytes, headers: dict[str, str], now: float
) -> None:
    for verifier in ALL_VERIFIERS:
        message = None
        try:
            verifier.verify(body, headers, now)
        except SignatureError as error:
            message = str(error)
        if message is not None:
            assert message
            assert not any(secret in message for secret in SECRETS)
