"""The split topology on one machine, as real processes: ``sail --ingress-processes 2``
(two ingress processes on one port, one processing process, a supervisor) and
``hypercorn -w 2``. kill -9 at the worst moments: nothing acknowledged is lost."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from ocean_trio._websocket import connect
from ocean_trio.catalog._local import LocalCatalog

from .test_servers import _free_port, read_all

pytestmark = pytest.mark.slow

ITEMS = 30
VERSIONS = 8

requests_cut_by_a_kill = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream"
    ":pytest.PytestUnraisableExceptionWarning"
)
"""A request cut by a kill -9 leaves httpx's body iterator unfinished (a ResourceWarning)."""


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": str(tmp_path / "state"),
        "OCEAN__EVENT_WORKERS_COUNT": "4",
        "OCEAN__LOG_LEVEL": "INFO",
        "APPLIED_LOG": str(tmp_path / "applied.log"),
        "STARTS_LOG": str(tmp_path / "starts.log"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }


def _children(pid: int) -> dict[int, str]:
    """The child processes of ``pid``: their command lines."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            found[int(child)] = cmdline.decode()
    return found


def _pid_of(supervisor: int, role: str, *, not_: int | None = None) -> int | None:
    for pid, cmdline in _children(supervisor).items():
        if f"--role {role}" in cmdline and pid != not_:
            return pid
    return None


class Sender:
    """Posts every version of every item, each item's versions one after another, retrying
    until acknowledged (a delivery id makes a retry of an event journaled already a
    duplicate); records what was acknowledged."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.acked: dict[str, str] = {}  # trace id -> "item:version"
        self.acks = 0
        self.progress = trio.Event()
        self.refused = 0

    async def send_all(self, client: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as nursery:
            for n in range(ITEMS):
                nursery.start_soon(self._item, client, n)

    async def _item(self, client: httpx.AsyncClient, n: int) -> None:
        for version in range(VERSIONS):
            body = {"id": f"I-{n}", "title": f"v{version}", "status": "open"}
            headers = {"X-GitHub-Delivery": f"I-{n}-{version}"}
            with trio.fail_after(60):
                while True:
                    try:
                        answer = await client.post(
                            f"{self.base}/integration/webhook", json=body, headers=headers
                        )
                    except httpx.TransportError:
                        self.refused += 1
                        continue  # the process we reached died: the sender retries
                    if answer.status_code in (200, 202):
                        break
                    self.refused += 1
                    await trio.sleep(0.05)  # 503 while starting: retry as a sender would
            if answer.status_code == 202:
                self.acked[answer.json()["trace_id"]] = f"I-{n}:v{version}"
            self.acks += 1
            if self.acks % 40 == 0:
                self.progress.set()
                self.progress = trio.Event()


async def _applied(tmp_path: Path, wanted: set[str]) -> collections.Counter[str]:
    """Wait until every trace id of ``wanted`` was applied; how often each was."""
    log = tmp_path / "applied.log"
    with trio.fail_after(60):
        while True:
            counts = (
                collections.Counter(line.split()[0] for line in log.read_text().splitlines())
                if log.exists()
                else None
            )
            if counts is not None and wanted <= set(counts):
                return counts
            await trio.sleep(0.1)  # another process writes it: nothing to wait on


async def _final_titles(tmp_path: Path) -> dict[str, str]:
    async with LocalCatalog.open(tmp_path / "state" / "catalog.sqlite3") as catalog:
        entities = await catalog.list_entities("item", limit=1000)
    return {e["identifier"]: e["title"] for e in entities}


async def _start_split(logged_package: Path, tmp_path: Path, port: int) -> trio.Process:
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(logged_package)]
    argv += ["--ingress-processes", "2", "--port", str(port)]
    return await trio.lowlevel.open_process(
        argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


async def _stop(process: trio.Process) -> str:
    process.send_signal(signal.SIGTERM)
    async with trio.open_nursery() as nursery:
        output: list[str] = []

        async def collect() -> None:
            output.append(await read_all(process.stderr))

        nursery.start_soon(collect)
        with trio.fail_after(30):
            await process.wait()
    return output[0]


@requests_cut_by_a_kill
@pytest.mark.parametrize("victim", ["processing", "ingress"])
async def test_kill_9_of_a_split_process_under_load_loses_nothing_acknowledged(
    logged_package: Path, tmp_path: Path, victim: str
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = await _start_split(logged_package, tmp_path, port)
    killed: int | None = None
    try:
        sender = Sender(base)
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
            nursery.start_soon(sender.send_all, client)
            with trio.fail_after(30):
                while sender.acks < 60:  # a third of the way in
                    await sender.progress.wait()
            killed = _pid_of(supervisor.pid, victim)
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
        assert sender.acks == ITEMS * VERSIONS
        counts = await _applied(tmp_path, set(sender.acked))
        titles = await _final_titles(tmp_path)
        # Every item ends in its last acknowledged version, whatever died.
        assert titles == {f"I-{n}": f"v{VERSIONS - 1}" for n in range(ITEMS)}
        if victim == "ingress":
            assert max(counts.values()) == 1  # nothing applied twice
        # A new process of the role took the dead one's place.
        with trio.fail_after(10):
            while _pid_of(supervisor.pid, victim, not_=killed) is None:  # noqa: ASYNC110
                await trio.sleep(0.1)  # another process's children: nothing to wait on
    finally:
        errors = await _stop(supervisor)
    assert supervisor.returncode == 0, errors
    assert f"(pid {killed}) exited with code -9" in errors
    assert "starting it again" in errors
    assert "Traceback" not in errors


async def test_the_supervisor_drains_every_process_on_sigterm(
    logged_package: Path, tmp_path: Path
) -> None:
    port = _free_port()
    supervisor = await _start_split(logged_package, tmp_path, port)
    sender = Sender(f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient(timeout=10) as client:
        await sender.send_all(client)
    children = _children(supervisor.pid)
    assert len(children) == 3
    errors = await _stop(supervisor)
    assert supervisor.returncode == 0, errors
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}")  # noqa: ASYNC240 - /proc, instant
    assert errors.count("draining, then stopping") == 3, errors
    # on_start hooks ran in the processing process only
    assert len((tmp_path / "starts.log").read_text().split()) == 1
    counts = await _applied(tmp_path, set(sender.acked))
    assert max(counts.values()) == 1


async def test_hypercorn_with_two_workers_processes_each_event_once(
    logged_package: Path, tmp_path: Path
) -> None:
    port = _free_port()
    argv = [
        sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "2",
        "--bind", f"127.0.0.1:{port}", "split_integration.main:app",
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(
        argv, cwd=tmp_path, env=_env(tmp_path), stderr=subprocess.PIPE
    )
    try:
        sender = Sender(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=10) as client:
            await sender.send_all(client)
        counts = await _applied(tmp_path, set(sender.acked))
        assert max(counts.values()) == 1
        assert len((tmp_path / "starts.log").read_text().split()) == 1  # one on_start
        titles = await _final_titles(tmp_path)
        assert titles == {f"I-{n}": f"v{VERSIONS - 1}" for n in range(ITEMS)}
    finally:
        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            errors = await read_all(process.stderr)
            await process.wait()
    assert "Traceback" not in errors


async def test_the_processing_process_shows_its_outcomes_on_its_own_port(
    logged_package: Path, tmp_path: Path
) -> None:
    port, processing_port = _free_port(), _free_port()
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(logged_package), "-i", "1"]
    argv += ["--port", str(port), "--processing-port", str(processing_port)]
    supervisor = await trio.lowlevel.open_process(
        argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    processing = f"http://127.0.0.1:{processing_port}"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            with trio.fail_after(30):
                while True:
                    try:
                        ready = await client.get(f"{processing}/health/ready")
                    except httpx.TransportError:
                        await trio.sleep(0.1)  # another process starting: nothing to wait on
                        continue
                    if ready.status_code == 200 and ready.json()["processing"]:
                        break
                    await trio.sleep(0.1)
            feed = f"ws://127.0.0.1:{processing_port}/live/feed?status=done"
            async with connect(feed) as socket:
                assert json.loads(await socket.get_message())["processing"] is True
                sender = Sender(f"http://127.0.0.1:{port}")
                await sender.send_all(client)  # to the ingress process's port
                seen: set[str] = set()
                with trio.fail_after(30):
                    while len(seen) < ITEMS * VERSIONS:
                        message = json.loads(await socket.get_message())
                        if message["type"] == "events":
                            seen.update(event["trace_id"] for event in message["events"])
            metrics = (await client.get(f"{processing}/metrics")).text
            page = await client.get(f"{processing}/live/")
    finally:
        errors = await _stop(supervisor)
    assert seen == set(sender.acked)  # every event finished in the processing process, live
    line = f'ocean_trio_events_finished_total{{path="/webhook",status="done"}} {ITEMS * VERSIONS}.0'
    assert line in metrics
    assert page.status_code == 200
    assert supervisor.returncode == 0, errors


async def _sail_split_fails(package: Path, tmp_path: Path, *args: str) -> str:
    """Run ``sail --ingress-processes 2`` expecting a start-up failure; its stderr."""
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(package), "-i", "2", *args]
    with trio.fail_after(30):
        result = await trio.run_process(
            argv, env=_env(tmp_path), capture_stdout=True, capture_stderr=True, check=False
        )
    errors = result.stderr.decode()
    assert result.returncode == 2, errors
    assert "Traceback" not in errors
    return errors


async def test_a_child_that_cannot_start_stops_the_topology_with_its_message(
    logged_package: Path, tmp_path: Path
) -> None:
    mapping = logged_package / ".port" / "resources" / "port-app-config.yml"
    mapping.write_text(mapping.read_text().replace("identifier: .id", "identifier: .id |"))
    errors = await _sail_split_fails(logged_package, tmp_path, "--port", str(_free_port()))
    assert "identifier" in errors  # the child's own one line, naming the field
    assert "could not start (exit code 2)" in errors


async def test_the_split_topology_refuses_a_busy_port_and_the_memory_journal(
    logged_package: Path, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        errors = await _sail_split_fails(logged_package, tmp_path, "--port", port)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in errors
    (logged_package / "config.yaml").write_text("liveEvents:\n  journal:\n    type: memory\n")
    errors = await _sail_split_fails(logged_package, tmp_path, "--port", str(_free_port()))
    assert "--ingress-processes needs a journal the processes share" in errors


CHILD = """
import sys
from pathlib import Path
runs = Path(sys.argv[1])
n = len(runs.read_text()) if runs.exists() else 0
runs.write_text("x" * (n + 1))
codes = [int(c) for c in sys.argv[2].split(",")]
sys.exit(codes[n] if n < len(codes) else 0)
"""


async def test_a_child_is_started_again_until_the_topology_stops(tmp_path: Path) -> None:
    # Dies with 1, then with 2 (after a restart: an outage, not a bad setting), then exits 0
    # (started again each time); the other child's first start fails with 2: the end.
    from ocean_trio._supervisor import _Child, _run

    runs = tmp_path / "runs"
    flaky = _Child("flaky", [sys.executable, "-c", CHILD, str(runs), "1,2,0,0,0,0"])
    late = _Child("late", [sys.executable, "-c", "import time, sys; time.sleep(3); sys.exit(2)"])
    with socket.socket() as sock, trio.fail_after(20):
        code = await _run([flaky, late], sock.fileno(), base_url=None)
    assert code == 2  # the late child's first start failed
    assert len(runs.read_text()) >= 3  # started again after its exit with 2
