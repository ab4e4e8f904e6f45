"""Live-events benchmark: ocean-trio end to end vs. the bare hypercorn-trio ceiling, same run.

For each of ``--runs`` runs: start a server process (hypercorn ``--worker-class trio``),
drive it with the load generator (another process) posting N signed ~1 KB events, and for
ocean-trio wait until every event's entity is in the catalog. Reports medians as JSON:
accept rate, end-to-end rate (first POST → last entity applied), POST→applied latency
p50/p99, server peak RSS, lost events, and the ratio of end-to-end rate to the ceiling.

Run: ``make bench`` (or ``python -m benchmarks.live_events --events 20000 --runs 3``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from ._common import ROOT, free_port, progress, run_and_save, wait_http

BENCH_APP = "benchmarks.bench_integration.main:app"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _loadgen(
    port: int, events: int, concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks._loadgen", "--port", str(port)]
    argv += ["-n", str(events), "-c", str(concurrency)]
    if rate:
        argv += ["--rate", str(rate)]
    result = await trio.run_process(
        argv,
        cwd=ROOT,
        capture_stdout=True,
    )
    return dict(json.loads(result.stdout))


async def _server(argv: list[str], env: dict[str, str], nursery: trio.Nursery) -> trio.Process:
    run = functools.partial(trio.run_process, argv, cwd=ROOT, env=env, check=False)
    process: trio.Process = await nursery.start(run)
    return process


def _hypercorn(port: int, app: str) -> list[str]:
    """hypercorn's trio worker in the server process itself (``-w 0``), bound on loopback."""
    return [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "0",
            "-b", f"127.0.0.1:{port}", app]  # fmt: skip


def _ocean_env(state: str, workers: int, journal: str, max_pending: int) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": state,
        "OCEAN__EVENT_WORKERS_COUNT": str(workers),
        "OCEAN__LIVE_EVENTS__MAX_PENDING_EVENTS": str(max_pending),
        "OCEAN__LIVE_EVENTS__JOURNAL__TYPE": journal,
        "OCEAN__LOG_LEVEL": "WARNING",
    }


async def run_ceiling(events: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    argv = _hypercorn(port, "benchmarks.ceiling:app")
    async with trio.open_nursery() as nursery:
        process = await _server(argv, dict(os.environ), nursery)
        await wait_http(f"http://127.0.0.1:{port}/", process)
        load = await _loadgen(port, events, concurrency)
        rss = _peak_rss_mb(process.pid)
        process.terminate()
    return {"accept_rate": load["accept_rate"], "peak_rss_mb": rss, "load": load}


async def run_ocean(
    events: int,
    concurrency: int,
    workers: int,
    journal: str,
    *,
    rate: float | None = None,
    rss_after: int | None = None,
    max_pending: int | None = None,
) -> dict[str, Any]:
    """One ocean-trio run; ``rss_after`` also samples the server's RSS once that many events
    have completed, to compare with the RSS at the end (memory growth under sustained load)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        env = _ocean_env(state, workers, journal, max_pending or max(events, 10_000))
        argv = _hypercorn(port, BENCH_APP)
        rss_samples: dict[str, float] = {}
        async with trio.open_nursery() as nursery:
            process = await _server(argv, env, nursery)
            await wait_http(f"http://127.0.0.1:{port}/health/live", process)
            if rss_after:
                nursery.start_soon(_sample_rss, port, process, rss_after, rss_samples)
            load = await _loadgen(port, events, concurrency, rate)
            completed = await _wait_completed(port, load["accepted"], process)
            rss_samples["end"] = _rss_mb(process.pid)
            rss = _peak_rss_mb(process.pid)
            process.terminate()
            nursery.cancel_scope.cancel()
        figures = _ocean_figures(Path(state) / "catalog.sqlite3", events, load, completed, rss)
        figures["rss_samples_mb"] = rss_samples
        return figures


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _sample_rss(
    port: int, process: trio.Process, after: int, samples: dict[str, float]
) -> None:
    url = f"http://127.0.0.1:{port}/health/ready"
    async with httpx.AsyncClient() as client:
        while process.returncode is None:
            completed = (await client.get(url)).json()["journal"]["completed"]
            if completed >= after:
                samples[f"after_{after}"] = _rss_mb(process.pid)
                return
            await trio.sleep(0.2)


async def run_ocean_port(
    events: int, concurrency: int, workers: int, journal: str
) -> dict[str, Any]:
    """One ocean-trio run with the Port sink against the Port API emulator (its own process)."""
    port, emulator_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    with tempfile.TemporaryDirectory() as state:
        env = {
            **_ocean_env(state, workers, journal, max(events, 10_000)),
            "OCEAN__CATALOG__TYPE": "port",
            "OCEAN__PORT__BASE_URL": emulator_url,
            "OCEAN__PORT__CLIENT_ID": "client-id",
            "OCEAN__PORT__CLIENT_SECRET": "client-secret",
            "OCEAN__INTEGRATION__IDENTIFIER": "bench",
            "OCEAN__INTEGRATION__TYPE": "bench",
        }
        emulator_argv = [sys.executable, "-m", "ocean_trio", "port-emulator"]
        emulator_argv += ["--port", str(emulator_port)]
        argv = _hypercorn(port, BENCH_APP)
        async with trio.open_nursery() as nursery:
            emulator = await _server(emulator_argv, env, nursery)
            await wait_http(f"{emulator_url}/_emulator/requests", emulator)
            process = await _server(argv, env, nursery)
            await wait_http(f"http://127.0.0.1:{port}/health/live", process)
            async with httpx.AsyncClient(timeout=60) as client:
                before = len(
                    (await client.get(f"{emulator_url}/_emulator/requests")).json()["requests"]
                )
                load = await _loadgen(port, events, concurrency)
                completed = await _wait_completed(port, load["accepted"], process)
                finished = time.time()
                requests = (await client.get(f"{emulator_url}/_emulator/requests")).json()[
                    "requests"
                ]
                stored = (await client.get(f"{emulator_url}/_emulator/entities")).json()["entities"]
            rss = _peak_rss_mb(process.pid)
            process.terminate()
            emulator.terminate()
    calls = requests[before:]
    bulk = [r for r in calls if r["path"].endswith("/entities/bulk")]
    return {
        "accept_rate": load["accept_rate"],
        "end_to_end_rate": completed / (finished - load["first_post_wall"]),
        "port_calls": len(calls),
        "port_calls_per_1000_events": 1000 * len(calls) / events,
        "bulk_upserts": len(bulk),
        "entities_per_bulk_upsert": sum(1 for e in stored if e["blueprint"] == "benchItem")
        / max(1, len(bulk)),
        "peak_rss_mb": rss,
        "lost_events": events - sum(1 for e in stored if e["blueprint"] == "benchItem"),
        "load": load,
    }


async def _wait_completed(port: int, accepted: int, process: trio.Process) -> int:
    url = f"http://127.0.0.1:{port}/health/ready"
    async with httpx.AsyncClient() as client:
        with trio.move_on_after(600):
            while process.returncode is None:
                journal = (await client.get(url)).json()["journal"]
                if journal["completed"] >= accepted:
                    return int(journal["completed"])
                await trio.sleep(0.05)
    raise RuntimeError("events were not all processed within 600 s")


def _ocean_figures(
    db: Path, events: int, load: dict[str, Any], completed: int, rss: float
) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT json_extract(data, '$.properties.sentAt'), updated_at FROM entities"
            " WHERE blueprint = 'benchItem'"
        ).fetchall()
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


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.soak:
        return await soak(args)
    if args.sink == "port":
        return await port_sink(args)
    ceilings, oceans = [], []
    for run in range(1, args.runs + 1):
        progress(f"run {run}/{args.runs}: bare hypercorn-trio ceiling, {args.events} events")
        ceilings.append(await run_ceiling(args.events, args.concurrency))
        progress(
            f"  ceiling {ceilings[-1]['accept_rate']:,.0f} req/s; now ocean-trio ({args.journal})"
        )
        oceans.append(await run_ocean(args.events, args.concurrency, args.workers, args.journal))
        progress(f"  end to end {oceans[-1]['end_to_end_rate']:,.0f} events/s")
    ceiling_rate = _median(ceilings, "accept_rate")
    ratios = [
        o["end_to_end_rate"] / c["accept_rate"] for c, o in zip(ceilings, oceans, strict=True)
    ]
    end_to_end = _median(oceans, "end_to_end_rate")
    # Latency where it means something: open loop at half the saturated end-to-end rate.
    half_rate = 0.5 * end_to_end
    progress(f"latency at half the saturated rate ({half_rate:,.0f} events/s), {args.runs} runs")
    paced = [
        await run_ocean(
            int(half_rate * args.paced_seconds),
            args.concurrency,
            args.workers,
            args.journal,
            rate=half_rate,
        )
        for _ in range(args.runs)
    ]
    return {
        "benchmark": "live_events",
        "events": args.events,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "event_workers_count": args.workers,
        "journal": args.journal,
        "ceiling_rate": ceiling_rate,
        "accept_rate": _median(oceans, "accept_rate"),
        "end_to_end_rate": end_to_end,
        "ratio_end_to_end_to_ceiling": float(statistics.median(ratios)),
        "saturated_latency_p50_ms": _median(oceans, "latency_p50_ms"),
        "saturated_latency_p99_ms": _median(oceans, "latency_p99_ms"),
        "half_rate_events_per_s": half_rate,
        "half_rate_latency_p50_ms": _median(paced, "latency_p50_ms"),
        "half_rate_latency_p99_ms": _median(paced, "latency_p99_ms"),
        "peak_rss_mb": _median(oceans, "peak_rss_mb"),
        "lost_events": max(r["lost_events"] for r in oceans + paced),
        "per_run": {"ceiling": ceilings, "ocean_trio": oceans, "half_rate": paced},
    }


async def port_sink(args: argparse.Namespace) -> dict[str, Any]:
    """The same load with the Port sink (emulator), next to the same run's ceiling and the
    same run's local catalog (same workers)."""
    ceilings, locals_, oceans = [], [], []
    for run in range(1, args.runs + 1):
        progress(f"run {run}/{args.runs}: ceiling, local catalog, then the Port sink (emulator)")
        ceilings.append(await run_ceiling(args.events, args.concurrency))
        locals_.append(await run_ocean(args.events, args.concurrency, args.workers, args.journal))
        oceans.append(
            await run_ocean_port(args.events, args.concurrency, args.workers, args.journal)
        )
        progress(
            f"  end to end {oceans[-1]['end_to_end_rate']:,.0f} events/s into Port,"
            f" {locals_[-1]['end_to_end_rate']:,.0f} into the local catalog"
        )
    ratios = [
        o["end_to_end_rate"] / c["accept_rate"] for c, o in zip(ceilings, oceans, strict=True)
    ]
    to_local = [
        o["end_to_end_rate"] / lc["end_to_end_rate"] for lc, o in zip(locals_, oceans, strict=True)
    ]
    return {
        "benchmark": "live_events_port_sink",
        "events": args.events,
        "runs": args.runs,
        "event_workers_count": args.workers,
        "journal": args.journal,
        "ceiling_rate": _median(ceilings, "accept_rate"),
        "local_end_to_end_rate": _median(locals_, "end_to_end_rate"),
        "accept_rate": _median(oceans, "accept_rate"),
        "end_to_end_rate": _median(oceans, "end_to_end_rate"),
        "ratio_end_to_end_to_ceiling": float(statistics.median(ratios)),
        "ratio_end_to_end_to_local": float(statistics.median(to_local)),
        "port_calls_per_1000_events": _median(oceans, "port_calls_per_1000_events"),
        "entities_per_bulk_upsert": _median(oceans, "entities_per_bulk_upsert"),
        "peak_rss_mb": _median(oceans, "peak_rss_mb"),
        "lost_events": max(r["lost_events"] for r in oceans + locals_),
        "per_run": {"ceiling": ceilings, "local": locals_, "ocean_trio": oceans},
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Memory under sustained load: RSS after 10,000 events vs after ``--soak`` events.

    The pending limit is the default (10,000): beyond it the sender gets 503 and retries, as
    a real sender would, so the backlog (and memory) stays bounded.
    """
    progress(
        f"soak: {args.soak:,} events at the default pending limit (RSS after 10,000 and at the end)"
    )
    run = await run_ocean(
        args.soak,
        args.concurrency,
        args.workers,
        args.journal,
        rss_after=10_000,
        max_pending=10_000,
    )
    samples = run["rss_samples_mb"]
    return {
        "benchmark": "live_events_soak",
        "events": args.soak,
        "journal": args.journal,
        "end_to_end_rate": run["end_to_end_rate"],
        "rss_after_10000_mb": samples.get("after_10000"),
        "rss_at_end_mb": samples["end"],
        "rss_growth_mb": samples["end"] - samples.get("after_10000", float("nan")),
        "refused_503": run["load"]["statuses"].get("503", 0),
        "lost_events": run["lost_events"],
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--journal", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--sink", choices=["local", "port"], default="local")
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--soak", type=int, help="one long run of this many events: RSS growth")
    args = parser.parse_args()
    name = (
        "live_events_soak"
        if args.soak
        else "live_events_port_sink"
        if args.sink == "port"
        else f"live_events_{args.journal}"
    )
    run_and_save(name, main, args)


if __name__ == "__main__":
    cli()
