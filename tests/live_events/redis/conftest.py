"""A real redis-server for the ``redis`` journal's tests: one per test, on a free loopback port.

Started with no persistence (``--save '' --appendonly no``), so a restart on the same port
comes back empty, as a Redis that lost its data. Never port 6379: a Redis installed as a
service may be there.
"""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocean_trio.live_events._redis_settings import RedisJournalSettings

_READY = b"Ready to accept connections"
_TRIES = 5  # free ports to try: another process may take one between the probe and the bind


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port if port != 6379 else _free_port()


class RedisServer:
    """A redis-server process on ``port``: ``stop`` kills it, ``start`` brings it back there."""

    def __init__(self, binary: str, *, aof_dir: Path | None = None) -> None:
        self._binary = binary
        self._aof_dir = aof_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log: list[bytes] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def settings(self, **overrides: object) -> RedisJournalSettings:
        """Journal settings for this server, with timings short enough for tests."""
        options: dict[str, object] = {
            "url": self.url,
            "prefix": "test",
            "lease_seconds": 0.6,
            "block_ms": 50,
            "stream_maintenance_scan_interval_seconds": 0.2,
        }
        options.update(overrides)
        return RedisJournalSettings(**options)  # type: ignore[arg-type]

    def start(self) -> None:
        """Start on ``port`` (a free one the first time); return once it accepts connections."""
        for _ in range(_TRIES if self.port == 0 else 1):
            port = self.port or _free_port()
            if self._launch(port):
                self.port = port
                return
        raise RuntimeError("redis-server did not start:\n" + b"".join(self._log).decode())

    def _launch(self, port: int) -> bool:
        command = [self._binary, "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--daemonize", "no"]
        if self._aof_dir is None:
            command += ["--appendonly", "no"]
        else:  # every write on disk before Redis answers: what a durable journal needs
            command += ["--appendonly", "yes", "--appendfsync", "always"]
            command += ["--dir", str(self._aof_dir)]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        # Its log says when it listens; the pipe sees EOF if it exits (the port was taken).
        # After that it logs a line or two per test: the pipe never fills.
        for line in process.stdout:
            self._log.append(line)
            if _READY in line:
                self._process = process
                return True
        process.wait()
        return False

    def stop(self) -> None:
        """Kill the server (SIGKILL: nothing saved, connections cut) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test, killed at teardown."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it with apt-get)")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def durable_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server writing every command to its append-only file (appendfsync always),
    so a kill -9 and a start on the same port keep what it acknowledged."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it with apt-get)")
    (tmp_path / "redis").mkdir()
    server = RedisServer(binary, aof_dir=tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _cut_connections_ignored() -> Iterator[None]:
    """Ignores what coredis leaves of the connections a stopped Redis cut.

    coredis does not close the anyio memory streams of such a connection; they warn
    (ResourceWarning, an error here) when they die, at the end of the test's ``trio.run``
    or whenever the garbage collector gets to them. That one warning is ignored in these
    tests, and the garbage collected before the test ends; any other warning still fails.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
        yield
        gc.collect()
