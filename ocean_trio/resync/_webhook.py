"""Who may ask for a resync through the WEBHOOK listener's ``POST /resync``.

Ocean's route is open to anyone. Here a request passes with the configured bearer token
(``eventListener.token``: for people, cron jobs, scripts), or, with the Port sink, with Port's
signature of the request (``x-port-signature``, keyed by the client secret): Port calls the
changelog destination's URL and cannot send a token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import attrs

from .._exceptions import SignatureError
from .._settings import Settings
from ..live_events._signatures import PortSignature, SignatureVerifier

_AUTHORIZATION = "authorization"
RESYNC_BODY_BYTES = 1 << 20  # Port's change-log message is a few KiB: anything bigger is refused


@attrs.frozen
class BearerToken:
    """``Authorization: Bearer <token>``, compared in constant time."""

    token: str = attrs.field(repr=False)

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` unless the header carries the token."""
        given = headers.get(_AUTHORIZATION, "").encode()
        if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            raise SignatureError("missing or wrong token (Authorization: Bearer <token>)")


@attrs.frozen
class ResyncAuthority:
    """The checks of ``POST /resync``: any one passing lets a request through."""

    checks: tuple[SignatureVerifier, ...]

    @classmethod
    def of(cls, token: str | None, port_client_secret: str | None) -> ResyncAuthority:
        """The token's check and Port's signature check, for those configured."""
        checks: list[SignatureVerifier] = []
        if token:
            checks.append(BearerToken(token))
        if port_client_secret:
            checks.append(PortSignature(port_client_secret))
        return cls(tuple(checks))

    def verify(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise ``SignatureError`` naming what each check found wrong, unless one passes."""
        problems = []
        for check in self.checks:
            try:
                check.verify(body, headers, now)
            except SignatureError as error:
                problems.append(str(error))
            else:
                return
        if _AUTHORIZATION in headers or not problems:
            # A caller who sent a token wants to hear about the token, not Port's signature.
            raise SignatureError(problems[0] if problems else "no way to authenticate is set")
        raise SignatureError("; ".join(problems))


def resync_authority(settings: Settings) -> ResyncAuthority:
    """The checks ``settings`` configure: the listener's token, Port's signature with the Port
    sink. ``open_app`` refuses a WEBHOOK listener with neither."""
    secret = settings.port.client_secret if settings.catalog.type == "port" else None
    return ResyncAuthority.of(settings.event_listener.token, secret)
