"""The ``redis`` journal's client: coredis from the settings (login, TLS), and its errors.

coredis is trio-native (anyio); a blocking read takes a pooled connection of its own, so
one client serves the appends, the blocking reader and the lease task together.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import coredis
import coredis.exceptions

from ._redis_settings import RedisJournalSettings

CONNECT_TIMEOUT_SECONDS = 5.0

REDIS_ERRORS: tuple[type[Exception], ...] = (
    coredis.exceptions.RedisError,
    OSError,
    TimeoutError,
)
"""What a Redis command raises when Redis is unreachable or refuses it (translated once,
where the journal meets coredis: ``JournalUnavailableError`` or a logged retry)."""


@asynccontextmanager
async def open_redis(settings: RedisJournalSettings) -> AsyncIterator[coredis.Redis[bytes]]:
    """A client for ``settings.url``; it connects on first use, so Redis may be down now."""
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password
    if settings.enable_tls:
        options["ssl_context"] = tls_context(settings)
    client = coredis.Redis.from_url(settings.url, decode_responses=False, **options)
    async with client:
        yield client


def tls_context(settings: RedisJournalSettings) -> ssl.SSLContext:
    """The TLS context of ``rediss://``: the server checked against ``ca`` (else the system's
    authorities), and the client certificate when ``cert`` and ``private_key`` are set."""
    ca = None if settings.ca is None else base64.b64decode(settings.ca).decode()
    context = ssl.create_default_context(cadata=ca)
    if settings.cert is not None and settings.private_key is not None:
        # ssl loads a certificate chain from files only: written to a private folder,
        # loaded, and deleted at once (the context keeps them in memory).
        with tempfile.TemporaryDirectory(prefix="ocean-trio-redis-") as folder:
            cert = os.path.join(folder, "cert.pem")
            key = os.path.join(folder, "key.pem")
            for path, value in ((cert, settings.cert), (key, settings.private_key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(base64.b64decode(value))
            context.load_cert_chain(cert, key)
    return context
