"""``make run``'s job: the demo integration, as ``ocean-trio sail integrations/fake`` runs it,
prints the live page's address, and the page's feed shows the demo's events as they happen."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from ocean_trio._websocket import connect

from .test_servers import _env, _free_port

DEMO = Path(__file__).resolve().parent.parent / "integrations" / "fake"


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_the_demo_prints_the_live_page_and_its_feed_shows_the_demos_events(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {
        **_env(tmp_path),
        "OCEAN__HTTP__PORT": str(port),
        "OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT": "0",
        "OCEAN__INTEGRATION__CONFIG__SENDER_INTERVAL": "0.2",  # the demo's random changes
    }
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(DEMO)]
    process = await trio.lowlevel.open_process(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(30):
            assert process.stdout is not None
            banner = b""
            while b"  health" not in banner:
                chunk = await process.stdout.receive_some()
                assert chunk, "sail exited before printing its banner"
                banner += chunk
            [page] = [
                line.split(": ", 1)[1].split()[0]
                for line in banner.decode().splitlines()
                if line.strip().startswith("live page")
            ]
            assert page == f"http://127.0.0.1:{port}/live/"
            async with httpx.AsyncClient() as client:
                answer = await client.get(page)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/html")
            feed = page.replace("http://", "ws://") + "feed?status=done"
            async with connect(feed) as socket:
                while True:
                    message = json.loads(await socket.get_message())
                    if message["type"] == "events":
                        break
    finally:
        process.send_signal(signal.SIGINT)
        with trio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
    [event, *_] = message["events"]
    assert event["status"] == "done"
    assert event["path"] == "/webhook"
    assert event["processors"]
    assert process.returncode == 0
