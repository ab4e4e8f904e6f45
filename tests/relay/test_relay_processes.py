"""The relay and an integration as real processes on 127.0.0.1, ``kill -9`` at the worst
moments: every webhook the relay acknowledged to its sender is applied, and never twice by
a redelivery, whichever side died.

A sender posts each item's versions one after another (items in parallel) to the relay; half
the items carry the sender's delivery id, the other half none (their dedup across the relay's
redeliveries is the fallback id ``relay:<relay id>:<seq>``). The integration logs every
application (``LOGGED_MAIN``: trace id, pid, item, title).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import trio

from ocean_trio.catalog._local import LocalCatalog

from ..test_servers import _free_port, read_all
from .conftest import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ITEMS = 20
VERSIONS = 10
IN_FLIGHT_AT_KILL = 4
INTEGRATION_KILLS = 5

requests_cut_by_a_kill = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream"
    ":pytest.PytestUnraisableExceptionWarning"
)
"""A request cut by a kill -9 leaves httpx's body iterator unfinished (a ResourceWarning)."""


class Sender:
    """Posts every version of every item to the relay, each item's versions in order.

    A refused connection (the relay is down) or a ``503`` is retried. A request cut after it
    was sent is retried only when it carries a delivery id (the relay may have journaled it:
    without an id a retry would be a second event, the sender's doing); without one, that
    version is recorded as ``maybe`` and the item goes on.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.acked: set[tuple[str, str]] = set()
        self.maybe: set[tuple[str, str]] = set()
        self.acks = 0
        self.progress = trio.Event()

    async def send_all(self, client: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as nursery:
            for n in range(ITEMS):
                nursery.start_soon(self._item, client, n)

    async def _item(self, client: httpx.AsyncClient, n: int) -> None:
        for version in range(VERSIONS):
            event = (f"I-{n}", f"v{version}")
            body = {"id": event[0], "title": event[1], "status": "open"}
            headers = {"X-GitHub-Delivery": f"I-{n}-{version}"} if n % 2 else {}
            with trio.fail_after(60):
                while True:
                    try:
                        answer = await client.post(
                            f"{self.base}/integration/webhook", json=body, headers=headers
                        )
                    except httpx.ConnectError:
                        await trio.sleep(0.05)  # the relay is restarting: another process
                        continue
                    except httpx.TransportError:
                        if headers:
                            continue  # a duplicate if it was journaled: safe to retry
                        self.maybe.add(event)
                        break
                    if answer.status_code in (200, 202):
                        self.acked.add(event)
                        break
                    assert answer.status_code == 503, answer.text
                    await trio.sleep(0.05)  # as a sender would, after Retry-After
            self.acks += 1
            if self.acks % 20 == 0:
                self.progress.set()
                self.progress = trio.Event()


def _env(tmp_path: Path, relay_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": str(tmp_path / "state"),
        "OCEAN__EVENT_WORKERS_COUNT": "4",
        "OCEAN__EVENT_LISTENER__TYPE": "WEBHOOKS_ONLY",
        "OCEAN__LOG_LEVEL": "INFO",
        "OCEAN__LIVE_EVENTS__RELAY__URL": f"ws://127.0.0.1:{relay_port}/relay/connect",
        "OCEAN__LIVE_EVENTS__RELAY__TOKEN": TOKEN,
        "OCEAN_RELAY__TOKEN": TOKEN,
        "APPLIED_LOG": str(tmp_path / "applied.log"),
        "STARTS_LOG": str(tmp_path / "starts.log"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }


class Processes:
    """The relay and the integration, each restartable; their stderr collected at the end."""

    def __init__(self, tmp_path: Path, package: Path) -> None:
        self.tmp_path = tmp_path
        self.package = package
        self.relay_port = _free_port()
        self.integration_port = _free_port()
        self.env = _env(tmp_path, self.relay_port)
        self.folder = tmp_path / "relay"
        self.folder.mkdir()
        (self.folder / "relay.yaml").write_text("webhooks:\n  /webhook: {}\nmaxInFlight: 32\n")
        self.logs: list[Path] = []
        self.relay: trio.Process | None = None
        self.integration: trio.Process | None = None

    async def _open(self, argv: list[str], name: str) -> trio.Process:
        log = self.tmp_path / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:  # noqa: ASYNC230 - creating an empty file
            return await trio.lowlevel.open_process(
                [sys.executable, "-m", "ocean_trio", *argv],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    async def start_relay(self) -> None:
        argv = ["relay", str(self.folder), "--port", str(self.relay_port)]
        self.relay = await self._open(argv, "relay")

    async def start_integration(self) -> None:
        argv = ["sail", str(self.package), "--port", str(self.integration_port)]
        self.integration = await self._open(argv, "integration")

    async def connected(self, client: httpx.AsyncClient) -> None:
        """Wait until the relay serves and the integration is connected to it."""
        with trio.fail_after(30):
            while True:
                assert self.relay is not None
                assert self.relay.returncode is None, self.output()
                try:
                    health = await client.get(f"http://127.0.0.1:{self.relay_port}/health/ready")
                    if health.status_code == 200 and health.json()["integration"]["connected"]:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)  # polling other processes: nothing to wait on

    async def behind(self, client: httpx.AsyncClient) -> None:
        """Wait until the relay has events in flight: the worst moment for a kill (sent, some
        journaled by the integration, their acknowledgements not recorded yet); or until
        fewer than that are left (a machine fast enough never falls behind)."""
        with trio.fail_after(30):
            while True:
                health = await client.get(f"http://127.0.0.1:{self.relay_port}/health/ready")
                ready = health.json()
                if (
                    ready["integration"]["in_flight"] >= IN_FLIGHT_AT_KILL
                    or ready["pending"] < IN_FLIGHT_AT_KILL
                ):
                    return
                await trio.sleep(0.005)  # polling another process: nothing to wait on

    async def stop(self) -> None:
        for process in (self.integration, self.relay):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            for process in (self.integration, self.relay):
                if process is not None:
                    await process.wait()

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for log in self.logs)


def applied_lines(tmp_path: Path) -> list[tuple[str, int, str, str]]:
    """Each application: ``(trace id, pid, item, title)``, in the order applied."""
    log = tmp_path / "applied.log"
    if not log.exists():
        return []
    lines = []
    for line in log.read_text().splitlines():
        trace_id, pid, item, title = line.split()
        lines.append((trace_id, int(pid), item, title))
    return lines


async def settled(processes: Processes, client: httpx.AsyncClient) -> None:
    """Wait until nothing is pending at the relay nor in the integration's journal: every
    application that will ever happen has happened."""
    with trio.fail_after(60):
        while True:
            try:
                relay = await client.get(f"http://127.0.0.1:{processes.relay_port}/health/ready")
                port = processes.integration_port
                integration = await client.get(f"http://127.0.0.1:{port}/health/ready")
                if (
                    relay.json()["pending"] == 0
                    and relay.json()["integration"]["connected"]
                    and integration.json()["journal"]["pending"] == 0
                ):
                    return
            except httpx.TransportError:
                pass  # one is restarting
            await trio.sleep(0.05)  # polling other processes: nothing to wait on


def check_applications(
    lines: list[tuple[str, int, str, str]],
    sender: Sender,
    *,
    killed_integrations: Sequence[int] = (),
) -> None:
    """Nothing acknowledged lost, nothing applied twice by a redelivery, order per item."""
    events = {(item, title) for _, _, item, title in lines}
    assert sender.acked <= events  # every acknowledged webhook applied
    assert events <= sender.acked | sender.maybe  # nothing invented
    # One event, one journal entry: a redelivery is a duplicate, never a second entry.
    trace_ids = collections.defaultdict(set)
    for trace_id, _, item, title in lines:
        trace_ids[item, title].add(trace_id)
    journaled_twice = {event: ids for event, ids in trace_ids.items() if len(ids) > 1}
    assert journaled_twice == {}
    # An entry runs again only when the integration died while applying it (at-least-once).
    runs = collections.defaultdict(list)
    for trace_id, pid, _, _ in lines:
        runs[trace_id].append(pid)
    again = {trace_id: pids for trace_id, pids in runs.items() if len(pids) > 1}
    for pids in again.values():
        assert set(pids[:-1]) <= set(killed_integrations), pids
    # Each item's versions applied in the order they were sent.
    for n in range(ITEMS):
        versions = [int(title[1:]) for _, _, item, title in lines if item == f"I-{n}"]
        assert versions == sorted(versions), (n, versions)


async def final_titles(tmp_path: Path) -> dict[str, str]:
    async with LocalCatalog.open(tmp_path / "state" / "catalog.sqlite3") as catalog:
        entities = await catalog.list_entities("item", limit=1000)
    return {e["identifier"]: e["title"] for e in entities}


def last_versions(lines: list[tuple[str, int, str, str]]) -> dict[str, str]:
    last: dict[str, str] = {}
    for _, _, item, title in lines:
        last[item] = title
    return last


@requests_cut_by_a_kill
async def test_kill_9_of_the_relay_mid_stream_loses_nothing_and_applies_nothing_twice(
    logged_package: Path, tmp_path: Path
) -> None:
    processes = Processes(tmp_path, logged_package)
    try:
        await processes.start_relay()
        await processes.start_integration()
        sender = Sender(f"http://127.0.0.1:{processes.relay_port}")
        async with httpx.AsyncClient(timeout=10) as client:
            await processes.connected(client)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender.send_all, client)
                with trio.fail_after(30):
                    while sender.acks < ITEMS * VERSIONS // 3:
                        await sender.progress.wait()
                await processes.behind(client)
                assert processes.relay is not None
                processes.relay.kill()  # SIGKILL, mid-stream
                await processes.relay.wait()
                await processes.start_relay()
            assert sender.acks == ITEMS * VERSIONS
            await settled(processes, client)
        lines = applied_lines(tmp_path)
        check_applications(lines, sender)
        assert await final_titles(tmp_path) == last_versions(lines)
    finally:
        await processes.stop()
    output = processes.output()
    assert "Traceback" not in output, output
    assert processes.relay is not None
    assert processes.relay.returncode == 0, output
    assert "closed the connection" in output or "lost the relay" in output, output


@requests_cut_by_a_kill
async def test_kill_9_of_the_integration_mid_stream_loses_nothing_and_applies_nothing_twice(
    logged_package: Path, tmp_path: Path
) -> None:
    # Killed five times, each time with events in flight: an integration acknowledging an
    # event before journaling it has one event at risk per kill (it journals one at a time).
    processes = Processes(tmp_path, logged_package)
    killed: list[int] = []
    try:
        await processes.start_relay()
        await processes.start_integration()
        sender = Sender(f"http://127.0.0.1:{processes.relay_port}")
        async with httpx.AsyncClient(timeout=10) as client:
            await processes.connected(client)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender.send_all, client)
                for kill in range(1, INTEGRATION_KILLS + 1):
                    enough = ITEMS * VERSIONS * kill // (INTEGRATION_KILLS + 1)
                    with trio.fail_after(30):
                        while len(applied_lines(tmp_path)) < enough:  # noqa: ASYNC110
                            await trio.sleep(0.01)  # another process writes it
                    await processes.connected(client)
                    await processes.behind(client)
                    assert processes.integration is not None
                    killed.append(processes.integration.pid)
                    processes.integration.kill()  # SIGKILL, mid-stream
                    await processes.integration.wait()
                    await processes.start_integration()
            assert sender.acks == ITEMS * VERSIONS
            assert sender.maybe == set()  # the relay never died: every webhook answered
            await settled(processes, client)
        lines = applied_lines(tmp_path)
        check_applications(lines, sender, killed_integrations=killed)
        assert await final_titles(tmp_path) == last_versions(lines)
    finally:
        await processes.stop()
    output = processes.output()
    assert "Traceback" not in output, output
    assert processes.integration is not None
    assert processes.integration.returncode == 0, output


async def test_the_relay_drains_on_sigterm_and_says_why_it_cannot_start(tmp_path: Path) -> None:
    folder = tmp_path / "relay"
    folder.mkdir()
    (folder / "relay.yaml").write_text("webhooks:\n  /webhook: {}\n")
    port = _free_port()
    env = {**os.environ, "OCEAN_RELAY__TOKEN": TOKEN}
    argv = [sys.executable, "-m", "ocean_trio", "relay", str(folder), "--port", str(port)]
    relay = await trio.lowlevel.open_process(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            with trio.fail_after(20):
                while True:
                    try:
                        answer = await client.post(
                            f"http://127.0.0.1:{port}/integration/webhook", json={"id": 1}
                        )
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.05)  # another process starting
            assert answer.status_code == 202
        # A second relay on the same state folder, then on the same port: one line each.
        other = tmp_path / "other"
        other.mkdir()
        (other / "relay.yaml").write_text("webhooks:\n  /webhook: {}\n")
        same_folder = [*argv[:-1], str(_free_port())]
        same_port = [*argv[:4], str(other), *argv[5:]]
        for second, expected in (
            (same_folder, f"another relay (pid {relay.pid}) is running on the state folder"),
            (same_port, f"cannot listen on 127.0.0.1:{port}: address already in use"),
        ):
            refused = await trio.run_process(
                second, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
            assert refused.returncode == 2
            lines = refused.stderr.decode().strip().splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith("ocean-trio: " + expected), lines
    finally:
        relay.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            await relay.wait()
    errors = await read_all(relay.stderr)
    assert relay.returncode == 0, errors
    assert "SIGTERM received: draining" in errors
    assert errors.rstrip().endswith("stopped")
