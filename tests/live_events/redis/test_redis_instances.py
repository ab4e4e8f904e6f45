"""Three integration instances on one Redis, as real processes (as on three machines): every
acknowledged event applied, each item in its last state and in order, duplicates dropped,
and after kill -9 of one instance its shards are taken over; an event applied twice is
only one the killed instance applied without acknowledging it."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from ocean_trio.catalog._local import LocalCatalog

from ...test_servers import _free_port, read_all
from ...test_supervisor import requests_cut_by_a_kill
from .conftest import RedisServer

pytestmark = pytest.mark.slow

INSTANCES = 3
ITEMS = 24
VERSIONS = 8


def _env(tmp_path: Path, redis: RedisServer, n: int) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": str(tmp_path / f"state-{n}"),
        "OCEAN__CATALOG__PATH": str(tmp_path / "catalog.sqlite3"),  # one catalog for all
        "OCEAN__EVENT_WORKERS_COUNT": "4",
        "OCEAN__EVENT_LISTENER__TYPE": "WEBHOOKS_ONLY",
        "OCEAN__INTEGRATION__IDENTIFIER": "redis-test",
        "OCEAN__LIVE_EVENTS__JOURNAL__TYPE": "redis",
        "OCEAN__LIVE_EVENTS__REDIS__URL": redis.url,
        "OCEAN__LIVE_EVENTS__REDIS__LEASE_SECONDS": "2",
        "OCEAN__LOG_LEVEL": "INFO",
        "APPLIED_LOG": str(tmp_path / "applied.log"),
        "STARTS_LOG": str(tmp_path / "starts.log"),
    }


class Sender:
    """Posts each item's versions one after another (each delivered twice, as a sender's
    retry would), spread over the instances, retrying elsewhere when one is gone."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = bases
        self.acked: set[str] = set()
        self.duplicates = 0
        self.sent = 0
        self.progress = trio.Event()

    async def send_all(self, client: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as nursery:
            for n in range(ITEMS):
                nursery.start_soon(self._item, client, n)

    async def _item(self, client: httpx.AsyncClient, n: int) -> None:
        turn = n
        for version in range(VERSIONS):
            body = {"id": f"I-{n}", "title": f"v{version}", "status": "open"}
            headers = {"X-GitHub-Delivery": f"I-{n}-{version}"}
            for _ in range(2):
                with trio.fail_after(60):
                    while True:
                        turn += 1
                        base = self.bases[turn % len(self.bases)]
                        try:
                            answer = await client.post(
                                f"{base}/integration/webhook", json=body, headers=headers
                            )
                        except httpx.TransportError:
                            continue  # that instance is gone: another one
                        if answer.status_code in (200, 202):
                            break
                        await trio.sleep(0.05)  # 503: retry as a sender would
                if answer.status_code == 202:
                    self.acked.add(answer.json()["trace_id"])
                else:
                    self.duplicates += 1
            self.sent += 1
            if self.sent % 20 == 0:
                self.progress.set()
                self.progress = trio.Event()


def _applications(tmp_path: Path) -> list[tuple[str, int, str, str]]:
    log = tmp_path / "applied.log"
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(trace, int(pid), item, title) for trace, pid, item, title in lines]


@requests_cut_by_a_kill
async def test_three_instances_on_redis_lose_nothing_when_one_is_killed(
    logged_package: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    ports = [_free_port() for _ in range(INSTANCES)]
    processes = [
        await trio.lowlevel.open_process(
            [sys.executable, "-m", "ocean_trio", "sail", str(logged_package), "--port", str(port)],
            env=_env(tmp_path, redis_server, n),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for n, port in enumerate(ports)
    ]
    victim = processes[0]
    try:
        sender = Sender([f"http://127.0.0.1:{port}" for port in ports])
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
            nursery.start_soon(sender.send_all, client)
            with trio.fail_after(30):
                while sender.sent < ITEMS * VERSIONS // 3:
                    await sender.progress.wait()
            victim.send_signal(signal.SIGKILL)
        assert sender.sent == ITEMS * VERSIONS
        assert sender.duplicates >= ITEMS * VERSIONS  # every second delivery was one
        with trio.fail_after(60):
            while not sender.acked <= {a[0] for a in _applications(tmp_path)}:  # noqa: ASYNC110
                await trio.sleep(0.1)  # other processes write it: nothing to wait on
        applied = _applications(tmp_path)
        # Applied twice: only events the killed instance applied and never acknowledged.
        counts = collections.Counter(a[0] for a in applied)
        first_by: dict[str, int] = {}
        for trace, pid, _, _ in applied:
            first_by.setdefault(trace, pid)
        twice = [trace for trace, count in counts.items() if count > 1]
        assert all(first_by[trace] == victim.pid for trace in twice), twice
        assert len(twice) <= 3 * 4  # at most what was in flight there
        # In order per item: first applications of its versions in version order.
        for n in range(ITEMS):
            seen: list[int] = []
            for _, _, item, title in applied:
                if item == f"I-{n}" and int(title[1:]) not in seen:
                    seen.append(int(title[1:]))
            assert seen == sorted(seen), (n, seen)
        async with LocalCatalog.open(tmp_path / "catalog.sqlite3") as catalog:
            entities = await catalog.list_entities("item", limit=1000)
        assert {e["identifier"]: e["title"] for e in entities} == {
            f"I-{n}": f"v{VERSIONS - 1}" for n in range(ITEMS)
        }
        # The survivors did all the work after the kill.
        assert {pid for _, pid, _, _ in applied} <= {p.pid for p in processes}
    finally:
        for process in processes[1:]:
            process.send_signal(signal.SIGTERM)
        errors = []
        for process in processes:
            with trio.fail_after(30):
                errors.append(await read_all(process.stderr))
                await process.wait()
    for process, log in zip(processes[1:], errors[1:], strict=True):
        assert process.returncode == 0, log
        assert "Traceback" not in log
