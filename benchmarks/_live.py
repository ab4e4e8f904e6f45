"""What the live-events modes share: the load generator's process, server processes, the
bare hypercorn-trio ceiling, the figures read from the catalog file, and the CPU a
deployment's processes use (under load, and idle)."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from ._common import ROOT, free_port, wait_http
from ._procs import cpu_by_pid, cpu_seconds, peak_rss_mb, tree
from ._redis_server import RedisConnection, info_counters

BENCH_APP = "benchmarks.bench_integration.main:app"
BENCH_FOLDER = "benchmarks/bench_integration"
SETTLE_SECONDS = 2.0  # after the last event is applied, before idle CPU is measured


async def loadgen(
    ports: list[int], events: int, concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    """Run the load generator (its own process) against ``ports`` (round robin); its JSON."""
    argv = [sys.executable, "-m", "benchmarks._loadgen", "--port", *map(str, ports)]
    argv += ["-n", str(events), "-c", str(concurrency)]
    if rate:
        argv += ["--rate", str(rate)]
    result = await trio.run_process(argv, cwd=ROOT, capture_stdout=True)
    return dict(json.loads(result.stdout))


async def start_server(
    argv: list[str], env: dict[str, str], nursery: trio.Nursery, **options: Any
) -> trio.Process:
    """``argv`` as a process of ``nursery`` (killed when the nursery is cancelled)."""
    run = functools.partial(trio.run_process, argv, cwd=ROOT, env=env, check=False, **options)
    process: trio.Process = await nursery.start(run)
    return process


def hypercorn(port: int, app: str) -> list[str]:
    """hypercorn's trio worker in the server process itself (``-w 0``), bound on loopback."""
    return [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "0",
            "-b", f"127.0.0.1:{port}", app]  # fmt: skip


def ocean_env(state: str, workers: int, journal: str, max_pending: int) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": state,
        "OCEAN__EVENT_WORKERS_COUNT": str(workers),
        "OCEAN__LIVE_EVENTS__MAX_PENDING_EVENTS": str(max_pending),
        "OCEAN__LIVE_EVENTS__JOURNAL__TYPE": journal,
        "OCEAN__LOG_LEVEL": "WARNING",
    }


async def run_ceiling(events: int, concurrency: int) -> dict[str, Any]:
    """The bare ASGI app (``benchmarks.ceiling``) on hypercorn's trio worker, one process."""
    port = free_port()
    argv = hypercorn(port, "benchmarks.ceiling:app")
    async with trio.open_nursery() as nursery:
        process = await start_server(argv, dict(os.environ), nursery)
        await wait_http(f"http://127.0.0.1:{port}/", process)
        cpu = cpu_seconds(process.pid)
        load = await loadgen([port], events, concurrency)
        cpu = cpu_seconds(process.pid) - cpu
        rss = peak_rss_mb(process.pid)
        process.terminate()
    return {
        "accept_rate": load["accept_rate"],
        "peak_rss_mb": rss,
        "server_cpu_ms_per_request": 1000 * cpu / load["accepted"],
        "load": load,
    }


async def catalog_writes(ports: list[int]) -> dict[str, float]:
    """Catalog writes (the applier's batches) and changes written, summed over the servers
    on ``ports`` (``/health/ready``; a process that serves no HTTP is not counted)."""
    batches = changes = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for port in ports:
            applier = (await client.get(f"http://127.0.0.1:{port}/health/ready")).json()["applier"]
            batches += applier["batches"]
            changes += applier["changes_applied"]
    return {"catalog_writes": batches, "changes_per_catalog_write": changes / max(1, batches)}


def count_applied(db: Path) -> int:
    """How many bench items the catalog at ``db`` holds (0 before it or its table exists)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        (count,) = conn.execute(
            "SELECT count(*) FROM entities WHERE blueprint = 'benchItem'"
        ).fetchone()
    except sqlite3.OperationalError:  # no table yet
        return 0
    finally:
        conn.close()
    return int(count)


async def wait_applied(
    db: Path, accepted: int, *, stall_seconds: float = 30.0, limit: float = 600.0
) -> int:
    """Wait until the catalog at ``db`` holds ``accepted`` bench items; how many it holds.

    Other processes write the catalog: nothing here can wait on their writes, so it looks
    every 0.1 s. It gives up (and the missing ones count as lost) when the count has not
    moved for ``stall_seconds``, and fails after ``limit``.
    """
    count, moved = 0, trio.current_time()
    with trio.fail_after(limit):
        while True:
            now = await trio.to_thread.run_sync(count_applied, db)
            if now >= accepted:
                return now
            if now != count:
                count, moved = now, trio.current_time()
            elif trio.current_time() - moved > stall_seconds:
                return count
            await trio.sleep(0.1)


def ocean_figures(
    db: Path, events: int, load: dict[str, Any], completed: int, rss: float
) -> dict[str, Any]:
    """End-to-end rate and POST → applied latencies from each entity's ``updated_at``."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT json_extract(data, '$.properties.sentAt'), updated_at FROM entities"
            " WHERE blueprint = 'benchItem'"
        ).fetchall()
    conn.close()
    latencies = sorted(applied - sent for sent, applied in rows)
    last_applied = max(applied for _, applied in rows)
    e2e_seconds = last_applied - load["first_post_wall"]
    return {
        "accept_rate": load["accept_rate"],
        "end_to_end_rate": len(rows) / e2e_seconds,
        "latency_p50_ms": 1000 * statistics.median(latencies),
        "latency_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "peak_rss_mb": rss,
        "lost_events": events - len(rows),
        "completed": completed,
        "load": load,
    }


class Deployment:
    """The processes of one run (roots and their descendants) and what to ask about them."""

    def __init__(
        self,
        roots: list[trio.Process],
        role_of: Callable[[int], str],
        redis: RedisConnection | None = None,
    ) -> None:
        self.roots = roots
        self.role_of = role_of
        self.redis = redis

    def pids(self) -> list[int]:
        return [pid for root in self.roots for pid in tree(root.pid)]

    def cpu(self) -> dict[int, float]:
        return cpu_by_pid(self.pids())

    def by_role(self, values: dict[int, float]) -> dict[str, float]:
        roles: dict[str, float] = {}
        for pid, value in values.items():
            role = self.role_of(pid)
            roles[role] = roles.get(role, 0.0) + value
        return roles

    async def counters(self) -> dict[str, int]:
        return {} if self.redis is None else await info_counters(self.redis)


def cpu_used(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    # A process started meanwhile (a restarted child) counts from zero.
    return {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}


async def measure_idle(deployment: Deployment, seconds: float) -> dict[str, Any]:
    """CPU used by the deployment's processes over ``seconds`` with no traffic, as % of one
    core (and Redis's commands per second meanwhile)."""
    await trio.sleep(SETTLE_SECONDS)
    cpu, counters, started = deployment.cpu(), await deployment.counters(), trio.current_time()
    await trio.sleep(seconds)
    used = deployment.by_role(cpu_used(cpu, deployment.cpu()))
    elapsed = trio.current_time() - started
    figures: dict[str, Any] = {
        "seconds": elapsed,
        "cpu_percent_of_one_core": 100 * sum(s for r, s in used.items() if r != "redis") / elapsed,
        "cpu_percent_by_role": {role: 100 * s / elapsed for role, s in used.items()},
    }
    if deployment.redis is not None:
        after = await deployment.counters()
        commands = after["total_commands_processed"] - counters["total_commands_processed"]
        commands -= after["calls:info"] - counters["calls:info"]  # ours
        figures["redis_commands_per_s"] = commands / elapsed
    return figures


def median(runs: list[dict[str, Any]], key: str | Callable[[dict[str, Any]], float]) -> float:
    """The median over ``runs`` of ``run[key]`` (or of ``key(run)``)."""
    if isinstance(key, str):
        return float(statistics.median(r[key] for r in runs))
    return float(statistics.median(key(r) for r in runs))
