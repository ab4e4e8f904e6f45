"""``ocean-trio events tail``: the live feed in a terminal, against a real server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import trio

from ocean_trio import Integration
from ocean_trio._tail import feed_url, format_event, tail
from ocean_trio.testing import make_settings, serve_integration

from .test_dead_letters import FlakyProcessor
from .test_servers import _free_port


class Lines(io.StringIO):
    """A text stream whose complete lines can be awaited."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written

    async def wait_for(self, count: int) -> list[str]:
        with trio.fail_after(10):
            while len(lines := self.getvalue().splitlines()) < count:
                self.changed = trio.Event()
                await self.changed.wait()
        return lines


def test_the_feed_url_carries_the_filters() -> None:
    url = feed_url("https://ocean.example/base/", ["/webhook"], ["dead", "done"])
    assert url == "wss://ocean.example/base/live/feed?path=%2Fwebhook&status=dead&status=done"
    assert feed_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/live/feed"


def test_an_event_line_names_what_an_operator_looks_for() -> None:
    line = format_event(
        {
            "at": 0.0,
            "seq": 42,
            "path": "/webhook",
            "status": "dead",
            "processors": ["IssueProcessor"],
            "duration_ms": 12.34,
            "upserts": 0,
            "deletes": 0,
            "trace_id": "t-1",
            "delivery_id": "d-1",
            "error": "apply failed",
        }
    )
    for part in ("42", "/webhook", "dead", "IssueProcessor", "12.3ms", "trace t-1", "delivery d-1"):
        assert part in line
    assert line.endswith("error: apply failed")


async def test_tail_prints_events_and_follows_a_restart(
    integration_root: Path, tmp_path: Path
) -> None:
    FlakyProcessor.broken = False
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", FlakyProcessor)
    port = _free_port()
    settings = make_settings(tmp_path, http={"port": port})
    out, err = Lines(), Lines()
    url = feed_url(f"http://127.0.0.1:{port}", statuses=["done"])
    async with trio.open_nursery() as nursery:
        async with serve_integration(integration, settings) as server:
            nursery.start_soon(lambda: tail(url, as_json=True, out=out, err=err))
            await err.wait_for(1)  # "(connected: pid …)"
            await server.post_event("/webhook", {"item": {"id": "A", "status": "open"}})
            [first] = await out.wait_for(1)
        # the integration stops and starts again on the same port: tail reconnects
        async with serve_integration(integration, settings) as server:
            await err.wait_for(4)  # lost, reconnected, connected
            await server.post_event("/webhook", {"item": {"id": "B", "status": "open"}})
            second = (await out.wait_for(2))[1]
        nursery.cancel_scope.cancel()
    assert json.loads(first)["status"] == "done"
    assert json.loads(second)["seq"] == 2
    assert "lost; reconnecting" in err.getvalue()
    assert "(reconnected to" in err.getvalue()


def test_a_feed_that_cannot_be_opened_is_one_line_and_exit_2() -> None:
    port = _free_port()
    done = subprocess.run(
        [sys.executable, "-m", "ocean_trio", "events", "tail", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"ocean-trio: cannot open the live feed at ws://127.0.0.1:{port}/live/feed"
    )
