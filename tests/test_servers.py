"""The two documented ways to run an integration, as real subprocesses on 127.0.0.1.

- ``hypercorn --worker-class trio <module>:app``: the ASGI lifespan opens the app;
- ``ocean-trio sail <folder>``: ``trio.run`` at the root, hypercorn inside; SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_until_up(client: httpx.AsyncClient, url: str, process: trio.Process) -> None:
    with trio.fail_after(20):
        while True:
            assert process.returncode is None, "server exited during start-up"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.05)  # polling another process's socket: nothing to wait on


async def _post_and_find(client: httpx.AsyncClient, base: str) -> None:
    response = await client.post(
        f"{base}/integration/webhook", json={"id": "S-1", "title": "smoke", "status": "open"}
    )
    assert response.status_code == 202
    with trio.fail_after(10):
        while True:
            entities = (await client.get(f"{base}/catalog/entities?blueprint=item")).json()
            if entities["entities"]:
                break
            await trio.sleep(0.05)
    assert entities["entities"][0]["identifier"] == "S-1"


async def read_all(stream: trio.abc.ReceiveStream | None) -> str:
    """Everything a finished process wrote on ``stream``."""
    assert stream is not None
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data.decode()


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": str(tmp_path / "state"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }


async def test_hypercorn_trio_worker_serves_the_integration(package: Path, tmp_path: Path) -> None:
    port = _free_port()
    argv = [
        sys.executable, "-m", "hypercorn", "--worker-class", "trio",
        "--bind", f"127.0.0.1:{port}", "smoke_integration.main:app",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
        run = functools.partial(
            trio.run_process, argv, cwd=tmp_path, env=_env(tmp_path), check=False
        )
        process: trio.Process = await nursery.start(run)
        try:
            await _wait_until_up(client, f"{base}/health/ready", process)
            await _post_and_find(client, base)
        finally:
            process.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            await process.wait()
    assert process.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_sail_serves_and_stops_cleanly_on_signals(
    package: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(package), "--port", "0"]
    async with httpx.AsyncClient() as client:
        process = await trio.lowlevel.open_process(
            argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            banner = b""
            with trio.fail_after(20):
                while b"catalog API" not in banner:
                    chunk = await process.stdout.receive_some()
                    assert chunk, "sail exited before printing its banner"
                    banner += chunk
            base = banner.decode().split("is sailing on ")[1].split()[0]
            assert base.startswith("http://127.0.0.1:")
            await _post_and_find(client, base)
        finally:
            process.send_signal(signum)
        with trio.fail_after(20):
            await process.wait()
        errors = await read_all(process.stderr)
        assert process.returncode == 0, errors
        assert "Traceback" not in errors
        assert "draining" in errors


async def test_the_demo_under_hypercorn_sends_to_the_address_bound(tmp_path: Path) -> None:
    # hypercorn binds after the app's start-up: the app learns the address from hypercorn's
    # "Running on" line, at once, and the demo's tracker posts its webhooks there.
    root = REPOSITORY
    port = _free_port()
    env = {
        **_env(tmp_path),
        "OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT": "0",
        "OCEAN__INTEGRATION__CONFIG__SENDER_INTERVAL": "0",
        "OCEAN__INTEGRATION__CONFIG__INITIAL_FILL": "true",
    }
    argv = [
        sys.executable, "-m", "hypercorn", "--worker-class", "trio",
        "--bind", f"127.0.0.1:{port}", "integrations.fake.main:app",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    process = await trio.lowlevel.open_process(argv, cwd=root, env=env, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient() as client:
            await _wait_until_up(client, f"{base}/health/ready", process)
            with trio.fail_after(20):
                while True:  # the tracker's initial fill, delivered over HTTP
                    found = (await client.get(f"{base}/catalog/entities")).json()["entities"]
                    if len(found) >= 15:
                        break
                    await trio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            await process.wait()
    log = await read_all(process.stderr)
    assert f"serving on {base}" in log  # the app's own INFO log shows under hypercorn
    assert f"sending webhooks to {base}/integration/webhook" in log
    assert "did not report its address" not in log
