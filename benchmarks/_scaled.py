"""The live-events benchmark over several processes (``live_events --topology split`` and
``live_events --journal redis``), next to the same run's bare hypercorn-trio ceiling.

- **split**: ``ocean-trio sail benchmarks/bench_integration --ingress-processes N``: a
  supervisor binding the port, N ingress processes journaling webhooks into the shared SQLite
  journal, one processing process (mapping, catalog writes).
- **redis**: K instances ``ocean-trio sail benchmarks/bench_integration --port P_k``, each
  with its own state folder, all on one redis-server of the benchmark's own (free loopback
  port) and one catalog file; each serves HTTP and processes its share of the 16 shards.
  The load generator sends event i to instance i mod K.

Besides the single-process mode's figures, each run reports CPU time by role (from
``/proc``), peak RSS summed over every process, and, once the events are applied, the CPU
the deployment uses idle over ``--idle-seconds``; with Redis, its commands per event.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from ._common import free_port, progress
from ._live import (
    BENCH_FOLDER,
    Deployment,
    catalog_writes,
    cpu_used,
    loadgen,
    measure_idle,
    median,
    ocean_env,
    ocean_figures,
    run_ceiling,
    start_server,
    wait_applied,
)
from ._procs import command_line, peak_rss_mb
from ._redis_server import RedisConnection, connect, open_redis_server

READY_SECONDS = 60.0
STOP_SECONDS = 30.0
SHARDS = 16
REDIS_PREFIX = "bench"
# Commands the redis journal runs only inside its Lua scripts (ocean_trio/live_events/
# _redis_scripts.py). Redis counts them in total_commands_processed and commandstats too;
# every other command is one a client sent: a round trip.
SCRIPT_ONLY_COMMANDS = frozenset(
    {"decr", "del", "get", "incr", "pexpire", "set", "time", "xack", "xadd", "xdel", "xlen"}
    | {"zadd", "zcard", "zrem", "zremrangebyscore"}
)


class _Output:
    """A process's stdout, read to its end, its lines kept so one can be waited for."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()
        self._ended = False

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        async for chunk in stream:
            *lines, pending = (pending + chunk).split(b"\n")
            self.lines += [line.decode(errors="replace") for line in lines]
            self._changed.set()
            self._changed = trio.Event()
        self._ended = True
        self._changed.set()

    async def wait_for(self, text: str, count: int = 1) -> None:
        """Wait until ``count`` lines contain ``text``."""
        while sum(text in line for line in self.lines) < count:
            if self._ended:
                raise RuntimeError(f"exited before printing {text!r}: {self.lines[-5:]}")
            await self._changed.wait()


async def _start(
    argv: list[str], env: dict[str, str], nursery: trio.Nursery
) -> tuple[trio.Process, _Output]:
    """A server process whose stdout (banners: not the benchmark's JSON) is read apart."""
    process = await start_server(argv, env, nursery, stdout=subprocess.PIPE)
    output = _Output()
    assert process.stdout is not None
    nursery.start_soon(output.read, process.stdout)
    return process, output


async def _stop(processes: list[trio.Process]) -> None:
    """SIGTERM to each (each drains), then wait for them, at most ``STOP_SECONDS``."""
    for process in processes:
        process.terminate()
    with trio.move_on_after(STOP_SECONDS):
        for process in processes:
            await process.wait()


def _redis_figures(before: dict[str, int], after: dict[str, int], events: int) -> dict[str, Any]:
    calls = {
        name.removeprefix("calls:"): after[name] - before.get(name, 0)
        for name in after
        if name.startswith("calls:") and name != "calls:info"
    }
    requests = sum(n for name, n in calls.items() if name not in SCRIPT_ONLY_COMMANDS)
    commands = after["total_commands_processed"] - before["total_commands_processed"]
    commands -= after["calls:info"] - before.get("calls:info", 0)  # ours
    return {
        "redis_commands_per_event": commands / events,
        "redis_round_trips_per_event": requests / events,
        "redis_calls_per_event": {
            name: n / events for name, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n
        },
    }


async def _measure(
    deployment: Deployment,
    ports: list[int],
    catalog: Path,
    events: int,
    concurrency: int,
    rate: float | None,
    idle_seconds: float,
) -> dict[str, Any]:
    """Load the deployment and wait until every event is applied; then, idle, its CPU."""
    cpu, counters = deployment.cpu(), await deployment.counters()
    load = await loadgen(ports, events, concurrency, rate)
    applied = await wait_applied(catalog, load["accepted"])
    by_process = cpu_used(cpu, deployment.cpu())
    used = deployment.by_role(by_process)
    rss = deployment.by_role({pid: peak_rss_mb(pid) for pid in deployment.pids()})
    server_rss = sum(mb for role, mb in rss.items() if role != "redis")
    figures = ocean_figures(catalog, events, load, applied, server_rss)
    figures["peak_rss_mb_by_role"] = rss
    figures["cpu_ms_per_event_by_role"] = {r: 1000 * s / applied for r, s in used.items()}
    figures["cpu_s_by_process"] = {
        f"{deployment.role_of(pid)} {pid}": s for pid, s in by_process.items()
    }
    figures["cpu_ms_per_event"] = 1000 * sum(s for r, s in used.items() if r != "redis") / applied
    figures["loadgen_cpu_ms_per_event"] = 1000 * load["cpu_s"] / events
    if deployment.redis is not None:
        figures.update(_redis_figures(counters, await deployment.counters(), events))
        figures.update(await catalog_writes(ports))  # every instance serves HTTP
    if idle_seconds:
        figures["idle"] = await measure_idle(deployment, idle_seconds)
    return figures


# --- the split topology -------------------------------------------------------------------


def _split_role(supervisor: int) -> Callable[[int], str]:
    def role_of(pid: int) -> str:
        if pid == supervisor:
            return "supervisor"
        line = command_line(pid)
        for role in ("processing", "ingress"):
            if f"--role {role}" in line:
                return role
        return "other"

    return role_of


async def _wait_ingress(port: int, count: int) -> None:
    """Wait until ``count`` different processes have answered on ``port`` (each request on a
    new connection, which the kernel gives to one of the processes listening)."""
    seen: set[int] = set()
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=5, limits=limits) as client:
        with trio.fail_after(READY_SECONDS):
            while len(seen) < count:
                try:
                    answer = await client.get(f"http://127.0.0.1:{port}/health/ready")
                    seen.add(answer.json()["pid"])
                except httpx.TransportError:
                    pass
                await trio.sleep(0.02)  # whichever process accepts: nothing to wait on


async def run_split(
    events: int,
    concurrency: int,
    workers: int,
    *,
    ingress: int,
    rate: float | None = None,
    idle_seconds: float = 0.0,
) -> dict[str, Any]:
    """One run of ``sail --ingress-processes``: every process up, the load, every event
    applied (read from the catalog file), then idle CPU."""
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        env = ocean_env(state, workers, "sqlite", max(events, 10_000))
        argv = [sys.executable, "-m", "ocean_trio", "sail", BENCH_FOLDER]
        argv += ["--ingress-processes", str(ingress), "--port", str(port)]
        async with trio.open_nursery() as nursery:
            supervisor, output = await _start(argv, env, nursery)
            with trio.fail_after(READY_SECONDS):
                await output.wait_for("processing events")
                await _wait_ingress(port, ingress)
            deployment = Deployment([supervisor], _split_role(supervisor.pid))
            figures = await _measure(
                deployment,
                [port],
                Path(state) / "catalog.sqlite3",
                events,
                concurrency,
                rate,
                idle_seconds,
            )
            await _stop([supervisor])
            nursery.cancel_scope.cancel()
    return figures


# --- instances on one Redis ---------------------------------------------------------------


async def _wait_spread(redis: RedisConnection, instances: int) -> dict[str, int]:
    """Wait until every shard's lease is held and spread over ``instances`` instances (at
    most ceil(16 / K) each, as the leases settle); the shards each instance holds."""
    keys = [f"{REDIS_PREFIX}:lease:{shard}" for shard in range(SHARDS)]
    quota = math.ceil(SHARDS / instances)
    with trio.fail_after(READY_SECONDS):
        while True:
            holders: list[str | None] = await redis.command("MGET", *keys)
            counts: dict[str, int] = {}
            for holder in holders:
                if holder is not None:
                    counts[holder] = counts.get(holder, 0) + 1
            if None not in holders and len(counts) == instances and max(counts.values()) <= quota:
                return counts
            await trio.sleep(0.2)  # the instances move their leases every few seconds


@asynccontextmanager
async def _redis_instances(
    folder: Path, instances: int, workers: int, max_pending: int, nursery: trio.Nursery
) -> AsyncIterator[tuple[Deployment, list[int]]]:
    """A redis-server and ``instances`` instances on it, leases spread; stopped at the end."""
    async with open_redis_server() as (server, redis_port), connect(redis_port) as redis:
        ports = [free_port() for _ in range(instances)]
        started = [
            await _start(
                [sys.executable, "-m", "ocean_trio", "sail", BENCH_FOLDER, "--port", str(port)],
                {
                    **ocean_env(str(folder / f"state-{n}"), workers, "redis", max_pending),
                    "OCEAN__CATALOG__PATH": str(folder / "catalog.sqlite3"),  # one for all
                    "OCEAN__INTEGRATION__IDENTIFIER": "bench",
                    "OCEAN__LIVE_EVENTS__REDIS__URL": f"redis://127.0.0.1:{redis_port}",
                    "OCEAN__LIVE_EVENTS__REDIS__PREFIX": REDIS_PREFIX,
                },
                nursery,
            )
            for n, port in enumerate(ports)
        ]
        processes = [process for process, _ in started]
        with trio.fail_after(READY_SECONDS):
            for _, output in started:
                await output.wait_for("is sailing on")
        spread = await _wait_spread(redis, instances)
        progress(f"  shards per instance: {sorted(spread.values())}")
        roots = {process.pid for process in processes}

        def role_of(pid: int) -> str:
            return "redis" if pid == server.pid else "instances" if pid in roots else "other"

        try:
            yield Deployment([*processes, server], role_of, redis), ports
        finally:
            with trio.CancelScope(shield=True):
                await _stop(processes)


async def run_redis(
    events: int,
    concurrency: int,
    workers: int,
    *,
    instances: int,
    rate: float | None = None,
    idle_seconds: float = 0.0,
) -> dict[str, Any]:
    """One run of ``instances`` instances on a fresh redis-server: the load spread over
    them, every event applied (read from the shared catalog file), then idle CPU."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        async with trio.open_nursery() as nursery:
            max_pending = max(events, 10_000)
            async with _redis_instances(folder, instances, workers, max_pending, nursery) as (
                deployment,
                ports,
            ):
                figures = await _measure(
                    deployment,
                    ports,
                    folder / "catalog.sqlite3",
                    events,
                    concurrency,
                    rate,
                    idle_seconds,
                )
            nursery.cancel_scope.cancel()
    return figures


# --- the modes ------------------------------------------------------------------------------


def _roles_median(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    roles = sorted({role for run in runs for role in run[key]})
    return {
        role: float(statistics.median(run[key].get(role, 0.0) for run in runs)) for role in roles
    }


async def _scaled(
    args: argparse.Namespace,
    label: str,
    run: Callable[..., Awaitable[dict[str, Any]]],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """Each run: the ceiling, then ``run`` saturated (and idle); then ``run`` paced at half
    the median end-to-end rate, as many times; medians and per-run figures."""
    ceilings: list[dict[str, Any]] = []
    oceans: list[dict[str, Any]] = []
    for n in range(1, args.runs + 1):
        progress(f"run {n}/{args.runs}: bare hypercorn-trio ceiling, {args.events} events")
        ceilings.append(await run_ceiling(args.events, args.concurrency))
        progress(f"  ceiling {ceilings[-1]['accept_rate']:,.0f} req/s; now ocean-trio, {label}")
        oceans.append(
            await run(args.events, args.concurrency, args.workers, idle_seconds=args.idle_seconds)
        )
        last = oceans[-1]
        line = (
            f"  end to end {last['end_to_end_rate']:,.0f} events/s (accepted"
            f" {last['accept_rate']:,.0f}/s, lost {last['lost_events']})"
        )
        if "redis_round_trips_per_event" in last:
            line += f", {last['redis_round_trips_per_event']:.2f} Redis round trips per event"
        if args.idle_seconds:
            line += f", idle {last['idle']['cpu_percent_of_one_core']:.1f}% of a core"
        progress(line)
    ratios = [
        o["end_to_end_rate"] / c["accept_rate"] for c, o in zip(ceilings, oceans, strict=True)
    ]
    end_to_end = median(oceans, "end_to_end_rate")
    half_rate = 0.5 * end_to_end
    progress(f"latency at half the saturated rate ({half_rate:,.0f} events/s), {args.runs} runs")
    paced = [
        await run(
            int(half_rate * args.paced_seconds), args.concurrency, args.workers, rate=half_rate
        )
        for _ in range(args.runs)
    ]
    summary: dict[str, Any] = {
        **fields,
        "events": args.events,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "event_workers_count": args.workers,
        "ceiling_rate": median(ceilings, "accept_rate"),
        "ceiling_cpu_ms_per_request": median(ceilings, "server_cpu_ms_per_request"),
        "accept_rate": median(oceans, "accept_rate"),
        "end_to_end_rate": end_to_end,
        "ratio_end_to_end_to_ceiling": float(statistics.median(ratios)),
        "saturated_latency_p50_ms": median(oceans, "latency_p50_ms"),
        "saturated_latency_p99_ms": median(oceans, "latency_p99_ms"),
        "half_rate_events_per_s": half_rate,
        "half_rate_latency_p50_ms": median(paced, "latency_p50_ms"),
        "half_rate_latency_p99_ms": median(paced, "latency_p99_ms"),
        "peak_rss_mb": median(oceans, "peak_rss_mb"),
        "peak_rss_mb_by_role": _roles_median(oceans, "peak_rss_mb_by_role"),
        "cpu_ms_per_event": median(oceans, "cpu_ms_per_event"),
        "cpu_ms_per_event_by_role": _roles_median(oceans, "cpu_ms_per_event_by_role"),
        "loadgen_cpu_ms_per_event": median(oceans, "loadgen_cpu_ms_per_event"),
        "lost_events": max(r["lost_events"] for r in oceans + paced),
    }
    if args.idle_seconds:
        idles = [o["idle"] for o in oceans]
        summary["idle_seconds"] = args.idle_seconds
        summary["idle_cpu_percent_of_one_core"] = median(idles, "cpu_percent_of_one_core")
        summary["idle_cpu_percent_by_role"] = _roles_median(idles, "cpu_percent_by_role")
    if "redis_round_trips_per_event" in oceans[0]:
        summary["redis_round_trips_per_event"] = median(oceans, "redis_round_trips_per_event")
        summary["redis_commands_per_event"] = median(oceans, "redis_commands_per_event")
        summary["half_rate_redis_round_trips_per_event"] = median(
            paced, "redis_round_trips_per_event"
        )
        summary["changes_per_catalog_write"] = median(oceans, "changes_per_catalog_write")
        if args.idle_seconds:
            summary["idle_redis_commands_per_s"] = median(idles, "redis_commands_per_s")
    summary["per_run"] = {"ceiling": ceilings, "ocean_trio": oceans, "half_rate": paced}
    return summary


async def split(args: argparse.Namespace) -> dict[str, Any]:
    """``--topology split``: the supervisor, N ingress processes and one processing process."""
    n = args.ingress_processes
    run = functools.partial(run_split, ingress=n)
    label = f"split: {n} ingress process(es) + 1 processing"
    fields = {"benchmark": "live_events_split", "topology": "split", "ingress_processes": n}
    return await _scaled(args, label, run, {**fields, "journal": "sqlite"})


async def redis(args: argparse.Namespace) -> dict[str, Any]:
    """``--journal redis``: K instances on one redis-server, one catalog."""
    k = args.instances
    run = functools.partial(run_redis, instances=k)
    fields = {"benchmark": "live_events_redis", "journal": "redis", "instances": k}
    return await _scaled(args, f"{k} instance(s) on one Redis", run, fields)
