"""Live-events benchmark: ocean-trio end to end vs. the bare hypercorn-trio ceiling, same run.

For each of ``--runs`` runs: start a server process (hypercorn ``--worker-class trio``),
drive it with the load generator (another process) posting N signed ~1 KB events, and for
ocean-trio wait until every event's entity is in the catalog. Reports medians as JSON:
accept rate, end-to-end rate (first POST → last entity applied), POST→applied latency
p50/p99, server peak RSS, lost events, and the ratio of end-to-end rate to the ceiling.

``--topology split --ingress-processes N`` runs ocean-trio as ``sail --ingress-processes N``
and ``--journal redis --instances K`` as K instances on one Redis (``_scaled``); both also
report CPU by role and idle CPU.

Run: ``make bench`` (or ``python -m benchmarks.live_events --events 20000 --runs 3``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from ocean_trio._websocket import connect

from ._common import free_port, progress, run_and_save, wait_http
from ._live import (
    BENCH_APP,
    Deployment,
    catalog_writes,
    cpu_used,
    hypercorn,
    loadgen,
    measure_idle,
    ocean_env,
    ocean_figures,
    run_ceiling,
    start_server,
)
from ._live import median as _median
from ._procs import peak_rss_mb, rss_mb
from ._scaled import redis, split


async def run_ocean(
    events: int,
    concurrency: int,
    workers: int,
    journal: str,
    *,
    rate: float | None = None,
    rss_after: int | None = None,
    max_pending: int | None = None,
    idle_seconds: float = 0.0,
    observed: bool = False,
) -> dict[str, Any]:
    """One ocean-trio run; ``rss_after`` also samples the server's RSS once that many events
    have completed, to compare with the RSS at the end (memory growth under sustained load);
    ``idle_seconds``: then the CPU the server uses idle that long; ``observed``: with
    ``/metrics`` scraped every second and two live-page clients reading the feed."""
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        env = ocean_env(state, workers, journal, max_pending or max(events, 10_000))
        argv = hypercorn(port, BENCH_APP)
        rss_samples: dict[str, float] = {}
        async with trio.open_nursery() as nursery:
            process = await start_server(argv, env, nursery)
            await wait_http(f"http://127.0.0.1:{port}/health/live", process)
            if rss_after:
                nursery.start_soon(_sample_rss, port, process, rss_after, rss_samples)
            watching: dict[str, Any] = {"scrapes": 0, "feed_events": [0, 0], "feed_dropped": 0}
            if observed:
                await nursery.start(_scrape_metrics, port, watching)
                for client in range(PAGE_CLIENTS):
                    await nursery.start(_read_feed, port, client, watching)
            deployment = Deployment([process], lambda pid: "server")
            cpu = deployment.cpu()
            load = await loadgen([port], events, concurrency, rate)
            completed = await _wait_completed(port, load["accepted"], process)
            used = sum(cpu_used(cpu, deployment.cpu()).values())
            writes = await catalog_writes([port])
            rss_samples["end"] = rss_mb(process.pid)
            rss = peak_rss_mb(process.pid)
            idle = await measure_idle(deployment, idle_seconds) if idle_seconds else None
            process.terminate()
            nursery.cancel_scope.cancel()
        figures = ocean_figures(Path(state) / "catalog.sqlite3", events, load, completed, rss)
        figures["rss_samples_mb"] = rss_samples
        figures["cpu_ms_per_event"] = 1000 * used / completed
        figures.update(writes)
        figures["loadgen_cpu_ms_per_event"] = 1000 * load["cpu_s"] / events
        if idle is not None:
            figures["idle"] = idle
        if observed:
            figures["observers"] = watching
        return figures


PAGE_CLIENTS = 2


async def _scrape_metrics(
    port: int, watching: dict[str, Any], *, task_status: trio.TaskStatus[None]
) -> None:
    """Prometheus' part: GET /metrics every second."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        task_status.started()
        while True:
            answer = await client.get("/metrics")
            answer.raise_for_status()
            watching["scrapes"] += 1
            await trio.sleep(1.0)


async def _read_feed(
    port: int, client: int, watching: dict[str, Any], *, task_status: trio.TaskStatus[None]
) -> None:
    """A live page's part: read every message of /live/feed and parse it, as the page does."""
    async with connect(f"ws://127.0.0.1:{port}/live/feed") as socket:
        task_status.started()
        while True:
            message = json.loads(await socket.get_message())
            if message["type"] == "events":
                watching["feed_events"][client] += len(message["events"])
            elif message["type"] == "dropped":
                watching["feed_dropped"] += message["events"]


async def _sample_rss(
    port: int, process: trio.Process, after: int, samples: dict[str, float]
) -> None:
    url = f"http://127.0.0.1:{port}/health/ready"
    async with httpx.AsyncClient() as client:
        while process.returncode is None:
            completed = (await client.get(url)).json()["journal"]["completed"]
            if completed >= after:
                samples[f"after_{after}"] = rss_mb(process.pid)
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
            **ocean_env(state, workers, journal, max(events, 10_000)),
            "OCEAN__CATALOG__TYPE": "port",
            "OCEAN__PORT__BASE_URL": emulator_url,
            "OCEAN__PORT__CLIENT_ID": "client-id",
            "OCEAN__PORT__CLIENT_SECRET": "client-secret",
            "OCEAN__INTEGRATION__IDENTIFIER": "bench",
            "OCEAN__INTEGRATION__TYPE": "bench",
        }
        emulator_argv = [sys.executable, "-m", "ocean_trio", "port-emulator"]
        emulator_argv += ["--port", str(emulator_port)]
        argv = hypercorn(port, BENCH_APP)
        async with trio.open_nursery() as nursery:
            emulator = await start_server(emulator_argv, env, nursery)
            await wait_http(f"{emulator_url}/_emulator/requests", emulator)
            process = await start_server(argv, env, nursery)
            await wait_http(f"http://127.0.0.1:{port}/health/live", process)
            async with httpx.AsyncClient(timeout=60) as client:
                before = len(
                    (await client.get(f"{emulator_url}/_emulator/requests")).json()["requests"]
                )
                load = await loadgen([port], events, concurrency)
                completed = await _wait_completed(port, load["accepted"], process)
                finished = time.time()
                requests = (await client.get(f"{emulator_url}/_emulator/requests")).json()[
                    "requests"
                ]
                stored = (await client.get(f"{emulator_url}/_emulator/entities")).json()["entities"]
            rss = peak_rss_mb(process.pid)
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


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.soak:
        return await soak(args)
    if args.observed:
        return await observed(args)
    if args.sink == "port":
        return await port_sink(args)
    if args.topology == "split":
        return await split(args)
    if args.journal == "redis":
        return await redis(args)
    ceilings, oceans = [], []
    for run in range(1, args.runs + 1):
        progress(f"run {run}/{args.runs}: bare hypercorn-trio ceiling, {args.events} events")
        ceilings.append(await run_ceiling(args.events, args.concurrency))
        progress(
            f"  ceiling {ceilings[-1]['accept_rate']:,.0f} req/s; now ocean-trio ({args.journal})"
        )
        oceans.append(
            await run_ocean(
                args.events,
                args.concurrency,
                args.workers,
                args.journal,
                idle_seconds=args.idle_seconds,
            )
        )
        line = f"  end to end {oceans[-1]['end_to_end_rate']:,.0f} events/s"
        if args.idle_seconds:
            line += f", idle {oceans[-1]['idle']['cpu_percent_of_one_core']:.1f}% of a core"
        progress(line)
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
    summary: dict[str, Any] = {
        "benchmark": "live_events",
        "topology": "single",
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
        "cpu_ms_per_event": _median(oceans, "cpu_ms_per_event"),
        "changes_per_catalog_write": _median(oceans, "changes_per_catalog_write"),
        "ceiling_cpu_ms_per_request": _median(ceilings, "server_cpu_ms_per_request"),
        "loadgen_cpu_ms_per_event": _median(oceans, "loadgen_cpu_ms_per_event"),
        "lost_events": max(r["lost_events"] for r in oceans + paced),
    }
    if args.idle_seconds:
        summary["idle_seconds"] = args.idle_seconds
        summary["idle_cpu_percent_of_one_core"] = _median(
            [o["idle"] for o in oceans], "cpu_percent_of_one_core"
        )
    summary["per_run"] = {"ceiling": ceilings, "ocean_trio": oceans, "half_rate": paced}
    return summary


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


async def observed(args: argparse.Namespace) -> dict[str, Any]:
    """The same load with and without /metrics scraped every second and two live-page
    clients on the feed, in each run (their order alternates), beside the run's ceiling."""
    ceilings: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        progress(f"run {run}/{args.runs}: ceiling, then ocean-trio with and without observers")
        ceilings.append(await run_ceiling(args.events, args.concurrency))
        order = (False, True) if run % 2 else (True, False)
        for with_observers in order:
            result = await run_ocean(
                args.events, args.concurrency, args.workers, args.journal, observed=with_observers
            )
            (watched if with_observers else plain).append(result)
        progress(
            f"  end to end {plain[-1]['end_to_end_rate']:,.0f} events/s alone,"
            f" {watched[-1]['end_to_end_rate']:,.0f} observed"
            f" ({watched[-1]['observers']['scrapes']} scrapes,"
            f" feed events {watched[-1]['observers']['feed_events']},"
            f" dropped {watched[-1]['observers']['feed_dropped']})"
        )
    ratios = [
        w["end_to_end_rate"] / p["end_to_end_rate"] for p, w in zip(plain, watched, strict=True)
    ]
    return {
        "benchmark": "live_events_observed",
        "events": args.events,
        "runs": args.runs,
        "event_workers_count": args.workers,
        "journal": args.journal,
        "page_clients": PAGE_CLIENTS,
        "metrics_scrape_seconds": 1.0,
        "ceiling_rate": _median(ceilings, "accept_rate"),
        "end_to_end_rate": _median(plain, "end_to_end_rate"),
        "observed_end_to_end_rate": _median(watched, "end_to_end_rate"),
        "ratio_observed_to_plain": float(statistics.median(ratios)),
        "ratio_end_to_end_to_ceiling": float(
            statistics.median(
                p["end_to_end_rate"] / c["accept_rate"]
                for c, p in zip(ceilings, plain, strict=True)
            )
        ),
        "cpu_ms_per_event": _median(plain, "cpu_ms_per_event"),
        "observed_cpu_ms_per_event": _median(watched, "cpu_ms_per_event"),
        "lost_events": max(r["lost_events"] for r in plain + watched),
        "per_run": {"ceiling": ceilings, "plain": plain, "observed": watched},
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
    parser.add_argument("--journal", choices=["sqlite", "memory", "redis"], default="sqlite")
    parser.add_argument(
        "--topology",
        choices=["single", "split"],
        default="single",
        help="split: sail --ingress-processes N (a supervisor, N ingress processes, one"
        " processing process; SQLite journal)",
    )
    parser.add_argument("--ingress-processes", type=int, default=2, help="with --topology split")
    parser.add_argument(
        "--instances", type=int, default=1, help="with --journal redis: instances on one Redis"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="after each saturated run, CPU used this long with no traffic (0: not measured)",
    )
    parser.add_argument("--sink", choices=["local", "port"], default="local")
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--soak", type=int, help="one long run of this many events: RSS growth")
    parser.add_argument(
        "--observed",
        action="store_true",
        help="each run with and without /metrics scraped every second and two live-page"
        " clients on /live/feed",
    )
    args = parser.parse_args()
    if args.topology == "split" and args.journal != "sqlite":
        parser.error("--topology split shares the SQLite journal: --journal sqlite")
    if args.journal == "redis" and (args.soak or args.sink == "port"):
        parser.error("--journal redis runs the plain live-events load only")
    if args.soak:
        name = "live_events_soak"
    elif args.observed:
        name = "live_events_observed"
    elif args.sink == "port":
        name = "live_events_port_sink"
    elif args.topology == "split":
        name = f"live_events_split_{args.ingress_processes}"
    elif args.journal == "redis":
        name = f"live_events_redis_{args.instances}"
    else:
        name = f"live_events_{args.journal}"
    run_and_save(name, main, args)


if __name__ == "__main__":
    cli()
