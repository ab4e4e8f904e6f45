"""Port's client-credentials flow: access tokens granted for a client id and secret.

Expiry is on trio's clock, so tests on virtual time can let a token lapse without sleeping.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import trio

from ._wire import ApiError, Obj, as_object


class AccessTokens:
    """The tokens granted so far, each with its expiry (``trio.current_time()`` based)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def grant(self, body: Any, *, client_id: str, client_secret: str, ttl: float) -> Obj:
        """Port's token answer for a ``{"clientId", "clientSecret"}`` request body."""
        body = as_object(body, "the request body")
        sent_id, sent_secret = body.get("clientId"), body.get("clientSecret")
        if not isinstance(sent_id, str) or not isinstance(sent_secret, str):
            raise ApiError(422, "invalid_request", "clientId and clientSecret are required strings")
        if (sent_id, sent_secret) != (client_id, client_secret):
            raise ApiError(401, "invalid_credentials", "The client id or client secret is wrong")
        token = secrets.token_urlsafe(24)
        self._expiry[token] = trio.current_time() + ttl
        # Rounded down, so a client never trusts a token past its real expiry.
        expires_in = int(ttl)
        return {
            "ok": True,
            "accessToken": token,
            "expiresIn": expires_in,
            "tokenType": "Bearer",
        }

    def check(self, authorization: str) -> None:
        """Refuse (401) an ``Authorization`` header without a granted, unexpired bearer token."""
        scheme, _, token = authorization.partition(" ")
        expiry = self._expiry.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            raise ApiError(
                401, "unauthorized", "A valid 'Authorization: Bearer <token>' is required"
            )
        if expiry <= trio.current_time():
            raise ApiError(401, "token_expired", "The access token has expired")

    def expire_all(self) -> None:
        """Expire every token granted so far (later ones are valid again)."""
        self._expiry = dict.fromkeys(self._expiry, -math.inf)

    def clear(self) -> None:
        """Forget every token."""
        self._expiry.clear()
