"""A flood at ten times the journal's capacity: the excess gets 503 + Retry-After, memory stays
bounded, and every acknowledged event is applied.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from .conftest import ITEM_MAPPING
from .test_servers import _env, _free_port, _wait_until_up

pytestmark = pytest.mark.slow

CAPACITY = 100
FLOOD = 10 * CAPACITY
BODY_PADDING = 16 * 1024

SLOW_MAIN = textwrap.dedent(
    """
    import trio
    from ocean_trio import AbstractWebhookProcessor, WebhookEventRawResults, ocean


    class Slow(AbstractWebhookProcessor):
        async def should_process_event(self, event):
            return True

        async def get_matching_kinds(self, event):
            return ["item"]

        async def authenticate(self, payload, headers):
            return True

        async def validate_payload(self, payload):
            return True

        async def handle_event(self, payload, resource_config):
            await trio.sleep(0.01)  # a slow upstream API: the journal fills up
            payload.pop("padding", None)
            return WebhookEventRawResults(updated_raw_results=[payload], deleted_raw_results=[])


    ocean.add_webhook_processor("/webhook", Slow)
    """
)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_flood_is_refused_with_503_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    root = tmp_path / "flood_integration"
    (root / ".port" / "resources").mkdir(parents=True)
    (root / ".port" / "resources" / "port-app-config.yml").write_text(ITEM_MAPPING)
    (root / "main.py").write_text(SLOW_MAIN)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **_env(tmp_path),
        "OCEAN__LIVE_EVENTS__MAX_PENDING_EVENTS": str(CAPACITY),
        "OCEAN__LOG_LEVEL": "ERROR",
    }
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(root), "--port", str(port)]
    process = await trio.lowlevel.open_process(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    acked: set[str] = set()
    refused: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await _wait_until_up(client, f"{base}/health/ready", process)
            rss_idle = _peak_rss_mb(process.pid)
            numbers = iter(range(FLOOD))

            async def sender() -> None:
                for n in numbers:
                    item = {"id": f"F-{n}", "status": "open", "padding": "x" * BODY_PADDING}
                    response = await client.post(f"{base}/integration/webhook", json=item)
                    if response.status_code == 202:
                        acked.add(f"F-{n}")
                    else:
                        refused.append(response)

            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    for _ in range(32):
                        nursery.start_soon(sender)
                while True:  # another process: poll until it has drained
                    ready = (await client.get(f"{base}/health/ready")).json()
                    if not ready["journal"]["pending"]:
                        break
                    await trio.sleep(0.1)
            rss_peak = _peak_rss_mb(process.pid)
            found = (
                await client.get(f"{base}/catalog/entities", params={"blueprint": "item"})
            ).json()["entities"]
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            await process.wait()

    assert len(acked) + len(refused) == FLOOD
    assert refused, "a flood at 10x capacity must be refused in part"
    assert {r.status_code for r in refused} == {503}
    assert all(r.headers["retry-after"] == "5" for r in refused)
    assert "too many events are pending" in refused[0].json()["error"]
    assert acked - {e["identifier"] for e in found} == set()
    # at most CAPACITY events (16 KB each) wait at once: memory grows by little
    assert rss_peak - rss_idle < 60, (rss_idle, rss_peak)
