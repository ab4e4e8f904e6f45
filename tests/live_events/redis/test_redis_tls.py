"""The redis journal over TLS (``rediss://``) to a real redis-server with a TLS port: the
server checked against the given CA, mutual TLS with a client certificate, and a server
that the CA did not sign refused."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ocean_trio import JournalUnavailableError
from ocean_trio.live_events._redis_journal import RedisJournal
from ocean_trio.live_events._redis_settings import RedisJournalSettings

from .conftest import _free_port
from .journals import event, never, number, page, running

SECONDS = 10


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class TlsRedis:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server_cert, self.server_key = _certificate(folder, "server")
        self.client_cert, self.client_key = _certificate(folder, "client")
        self.port = _free_port()

    def settings(self, **overrides: object) -> RedisJournalSettings:
        options: dict[str, object] = {
            "url": f"rediss://127.0.0.1:{self.port}",
            "enable_tls": True,
            "ca": _b64(self.server_cert),
            "prefix": "tls",
            "lease_seconds": 0.6,
            "block_ms": 50,
        }
        options.update(overrides)
        return RedisJournalSettings(**options)  # type: ignore[arg-type]


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    """redis-server listening with TLS only, requiring a client certificate signed by the
    client's CA (mutual TLS)."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("openssl") is None:
        pytest.fail("redis-server and openssl are needed (make test installs them)")
    tls = TlsRedis(tmp_path)
    process = subprocess.Popen(
        [binary, "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(tls.port),
         "--tls-cert-file", str(tls.server_cert), "--tls-key-file", str(tls.server_key),
         "--tls-ca-cert-file", str(tls.client_cert), "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if b"Ready to accept connections" in line:
            break
    else:
        pytest.fail("redis-server with TLS did not start")
    try:
        yield tls
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


async def test_mutual_tls_round_trip(tls_redis: TlsRedis) -> None:
    client = {"cert": _b64(tls_redis.client_cert), "private_key": _b64(tls_redis.client_key)}
    async with running(tls_redis, **client) as (journal, reads):  # type: ignore[arg-type]
        await journal.append(event(1), never)
        with trio.fail_after(SECONDS):
            await reads.wait_for(1)
        assert [number(e) for e in await page(journal)] == [1]


async def test_without_a_client_certificate_the_server_refuses(tls_redis: TlsRedis) -> None:
    async with RedisJournal.open(
        tls_redis.settings(), instance_id="x", max_pending=10, dedup_window_seconds=60,
        max_in_memory=10,
    ) as journal:  # fmt: skip
        with pytest.raises(JournalUnavailableError):
            await journal.append(event(1), never)


async def test_a_server_the_ca_did_not_sign_is_refused(tls_redis: TlsRedis) -> None:
    settings = tls_redis.settings(
        ca=_b64(tls_redis.client_cert),  # not the server's
        cert=_b64(tls_redis.client_cert),
        private_key=_b64(tls_redis.client_key),
    )
    async with RedisJournal.open(
        settings, instance_id="x", max_pending=10, dedup_window_seconds=60, max_in_memory=10
    ) as journal:
        with pytest.raises(JournalUnavailableError):
            await journal.append(event(1), never)
