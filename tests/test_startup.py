"""Start-up and stopping of ``ocean-trio sail`` as an operator sees them: signals at any
moment, and one clear line (never a traceback) when start-up cannot finish."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from ocean_trio import Integration, PortUnreachableError, open_app
from ocean_trio._retry import RetryPolicy
from ocean_trio.catalog._port_client import PortClient
from ocean_trio.testing import make_settings

from .test_servers import _env, _free_port, read_all

pytestmark = pytest.mark.slow

FAKE_ROOT = Path(__file__).resolve().parent.parent / "integrations" / "fake"


@contextmanager
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something already listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


@asynccontextmanager
async def silent_port() -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[trio.socket.SocketType] = []

    async def accept() -> None:
        while True:
            connection, _ = await listener.accept()
            held.append(connection)  # kept open, never read, never answered

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            nursery.cancel_scope.cancel()
            for connection in held:
                connection.close()
            listener.close()


def port_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return {
        **_env(tmp_path),
        "OCEAN__CATALOG__TYPE": "port",
        "OCEAN__PORT__BASE_URL": url,
        "OCEAN__PORT__CLIENT_ID": "id",
        "OCEAN__PORT__CLIENT_SECRET": "secret",
        "OCEAN__INTEGRATION__IDENTIFIER": "startup-test",
        **extra,
    }


async def sail(folder: Path, env: dict[str, str], *args: str) -> trio.Process:
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(folder), *args]
    return await trio.lowlevel.open_process(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


async def sail_to_the_end(folder: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``sail`` until it exits by itself: its exit code and what it wrote on stderr."""
    process = await sail(folder, env, *args)
    with trio.fail_after(20):
        await process.wait()
    assert process.returncode is not None
    return process.returncode, await read_all(process.stderr)


async def wait_for_text(stream: trio.abc.ReceiveStream | None, text: str) -> str:
    assert stream is not None
    seen = b""
    while text.encode() not in seen:
        chunk = await stream.receive_some()
        assert chunk, f"the process ended before printing {text!r}: {seen.decode()}"
        seen += chunk
    return seen.decode()


async def test_sigint_while_port_never_answers_stops_at_once_with_a_failure_code(
    package: Path, tmp_path: Path
) -> None:
    async with silent_port() as url:
        process = await sail(package, port_env(tmp_path, url), "--port", "0")
        try:
            await trio.sleep(2)  # start-up is now waiting on Port (by the test's design)
            assert process.returncode is None
            process.send_signal(signal.SIGINT)
            start = time.monotonic()
            with trio.fail_after(10):
                await process.wait()
            stopped_in = time.monotonic() - start
        finally:
            if process.returncode is None:
                process.kill()
        errors = await read_all(process.stderr)
    assert process.returncode == 128 + signal.SIGINT, errors
    assert stopped_in < 5
    assert "SIGINT received during start-up: stopping" in errors
    assert "Traceback" not in errors
    assert "replacing Port's connection pool" not in errors or "interrupted" in errors


async def test_a_port_that_never_answers_fails_start_up_in_one_line(
    package: Path, tmp_path: Path
) -> None:
    async with silent_port() as url:
        env = port_env(tmp_path, url, OCEAN__STARTUP_TIMEOUT_SECONDS="1.5")
        code, errors = await sail_to_the_end(package, env, "--port", "0")
    assert code == 2
    assert errors.strip().splitlines() == [
        "ocean-trio: start-up took longer than 1.5s while reading the mapping from Port's API"
        f" at {url} (no answer); see startupTimeoutSeconds / OCEAN__STARTUP_TIMEOUT_SECONDS"
    ]


async def test_a_refusing_port_fails_start_up_naming_the_last_failure(
    package: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connections are refused
    env = port_env(tmp_path, url, OCEAN__STARTUP_TIMEOUT_SECONDS="1.5")
    code, errors = await sail_to_the_end(package, env, "--port", "0")
    assert code == 2
    *retries, line = errors.strip().splitlines()
    assert all("retrying in" in retry for retry in retries)  # logged as they happen
    assert line.startswith(
        "ocean-trio: start-up took longer than 1.5s while reading the mapping from Port's API"
        f" at {url} (last failure: POST /v1/auth/access_token: ConnectError: "
    )


async def test_a_second_sigint_stops_a_drain_at_once(package: Path, tmp_path: Path) -> None:
    # An event that never finishes, and a long drain: only a second signal ends it quickly.
    blocking = package.parent / "blocking"
    blocking.mkdir()
    (blocking / ".port").symlink_to(package / ".port")
    (blocking / "main.py").write_text(
        (package / "main.py")
        .read_text()
        .replace(
            "async def handle_event(self, payload, resource_config):",
            "async def handle_event(self, payload, resource_config):\n"
            "        import trio\n"
            "        await trio.sleep_forever()",
        )
    )
    env = {**_env(tmp_path), "OCEAN__MAX_WAIT_SECONDS_BEFORE_SHUTDOWN": "60"}
    process = await sail(blocking, env, "--port", "0")
    try:
        banner = await wait_for_text(process.stdout, "catalog API")
        base = banner.split("is sailing on ")[1].split()[0]
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base}/integration/webhook", json={"id": "X"})
            assert response.status_code == 202
        process.send_signal(signal.SIGINT)
        await wait_for_text(process.stderr, "draining")
        with trio.move_on_after(1):
            await process.wait()
        assert process.returncode is None  # draining: the event is still running
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        with trio.fail_after(10):
            await process.wait()
        assert time.monotonic() - start < 5
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGINT
    errors = await read_all(process.stderr)
    assert "Traceback" not in errors
    assert "received again: stopping now" in errors


async def test_a_busy_port_is_one_line_naming_the_address(package: Path, tmp_path: Path) -> None:
    with busy_port() as port:
        code, errors = await sail_to_the_end(package, _env(tmp_path), "--port", str(port))
    assert code == 2
    assert errors.strip().splitlines() == [
        f"ocean-trio: cannot listen on 127.0.0.1:{port}: address already in use"
        " (choose another port with --port, http.port or OCEAN__HTTP__PORT)"
    ]


async def test_the_demo_stops_start_up_when_its_tracker_port_is_busy(tmp_path: Path) -> None:
    with busy_port() as tracker_port:
        env = {
            **_env(tmp_path),
            "OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT": str(tracker_port),
            "OCEAN__LOG_LEVEL": "WARNING",
        }
        code, errors = await sail_to_the_end(FAKE_ROOT, env, "--port", "0")
    assert code == 2
    assert errors.strip().splitlines() == [
        f"ocean-trio: FakeTracker cannot listen on 127.0.0.1:{tracker_port}: address already"
        " in use (set integration.config.fakeApiPort or OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT;"
        " 0 picks a free port)"
    ]


async def test_an_unreachable_port_names_the_url_and_the_tries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    caplog.set_level(logging.INFO, logger="ocean_trio.port")
    async with PortClient.open(
        base_url=closed,
        client_id="id",
        client_secret="secret",
        user_agent="test",
        retry=RetryPolicy(max_attempts=3, initial_delay=0.01),
    ) as client:
        with pytest.raises(PortUnreachableError) as error:
            await client.get_blueprint("service")
    message = str(error.value)
    assert message.startswith(f"cannot reach Port's API at {closed}: POST /v1/auth/access_token")
    assert "failed 3 times (ConnectError" in message
    # a refused connection is an ordinary failure, not a poisoned pool
    assert "replacing Port's connection pool" not in caplog.text


async def test_an_app_without_http_stops_without_waiting_for_a_server(
    integration_root: Path, tmp_path: Path
) -> None:
    # The hypercorn entry opens the app without serving HTTP itself: its stop must not wait
    # out the HTTP server's grace period (5 s) for a server that does not exist.
    settings = make_settings(tmp_path, eventListener={"type": "WEBHOOKS_ONLY"})
    async with open_app(Integration(integration_root), settings):
        pass
    with trio.fail_after(2):
        async with open_app(Integration(integration_root), settings):
            pass
