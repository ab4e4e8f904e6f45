"""Big-bodies benchmark: do 5 MiB webhooks stall the event loop for the small ones?

For each of ``--runs`` runs: start the bench integration's server (hypercorn's trio worker,
SQLite journal, as ``benchmarks/live_events.py`` does) and, on that one server, run phases of
``--duration`` seconds each, separated by waiting until the journal has completed every
accepted event:

* ``warmup`` (``--warmup`` seconds, not reported): small events only.
* ``baseline``: small ~1 KB events at ``--small-rate`` per second, open loop.
* ``big_string``: the same small load while another sender process POSTs ``--big-bytes``
  events at ``--big-rate`` per second whose bulk is one long string.
* ``big_structured``: the same, the bulk an array of small objects (far costlier to parse).

Each sender is its own process (``benchmarks/_big_sender.py``). Per small event it records
POST→202 ("ingress", counted from the event's due time, so a stall is not hidden by the
sender waiting for a free connection) and, from the catalog after the run, POST→applied
(``updated_at - sent_at``). Reports medians over runs as JSON, and per run the ratio of each
big phase's small-event p99 to the baseline's.

Run: ``python -m benchmarks.big_bodies`` (defaults: 3 runs of 10 s phases, about 3 minutes
while the server cannot keep up with 2 structured 5 MiB bodies per second; 2 once it can).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import trio

from ._big_sender import percentile
from ._common import ROOT, free_port, run_and_save, wait_http
from ._live import BENCH_APP, hypercorn, ocean_env, start_server
from ._procs import peak_rss_mb

MIB = 1024 * 1024
BIG_KINDS = {"big_string": "big-string", "big_structured": "big-structured"}
LEAD_SECONDS = 1.5  # from launching a phase's senders to its first due event (start-up, set-up)
SENDER_GRACE_SECONDS = 60.0  # a sender's requests must all be answered this long after its last
STOP_SECONDS = 15.0  # SIGTERM → exit, before the server is killed


def _log(message: str) -> None:
    print(f"[big_bodies {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _sender(
    port: int, phase: str, key: str, kind: str, start_at: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Run one sender process for one phase; its JSON result."""
    duration = args.warmup if phase == "warmup" else args.duration
    rate = args.small_rate if kind == "small" else args.big_rate
    argv = [sys.executable, "-m", "benchmarks._big_sender", "--port", str(port)]
    argv += ["--kind", kind, "--id-prefix", f"{phase}.{key}", "--rate", str(rate)]
    argv += ["--duration", str(duration), "--start-at", repr(start_at)]
    argv += ["--grace", str(SENDER_GRACE_SECONDS)]
    if kind != "small":
        argv += ["--big-bytes", str(args.big_bytes), "--concurrency", str(args.big_concurrency)]
    # The sender bounds itself; this bound is for a sender that hangs anyway.
    with trio.fail_after(LEAD_SECONDS + duration + SENDER_GRACE_SECONDS + 30):
        result = await trio.run_process(argv, cwd=ROOT, capture_stdout=True)
    return dict(json.loads(result.stdout))


async def _phase(
    port: int, phase: str, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Run the senders of one phase together; their event 0 is due at the same instant."""
    start_at = time.time() + LEAD_SECONDS
    results: dict[str, dict[str, Any]] = {}

    async def run(key: str, kind: str) -> None:
        results[key] = await _sender(port, phase, key, kind, start_at, args)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "small", "small")
        if phase in BIG_KINDS:
            nursery.start_soon(run, "big", BIG_KINDS[phase])
    return results["small"], results.get("big")


async def _wait_drained(port: int, accepted: int, process: trio.Process, limit: float) -> bool:
    """Until the journal has completed ``accepted`` events (True), or ``limit`` s (False)."""
    url = f"http://127.0.0.1:{port}/health/ready"
    async with httpx.AsyncClient(timeout=30) as client:
        with trio.move_on_after(limit):
            while process.returncode is None:
                response = await client.get(url)
                if response.json()["journal"]["completed"] >= accepted:
                    return True
                await trio.sleep(0.05)
    return False


async def run_once(args: argparse.Namespace, label: str) -> dict[str, Any]:
    """One server, all phases; figures per phase."""
    port = free_port()
    phases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as state:
        env = ocean_env(state, args.workers, args.journal, 10_000)
        if args.max_body is not None:
            env["OCEAN__LIVE_EVENTS__MAX_BODY_BYTES"] = str(args.max_body)
        async with trio.open_nursery() as nursery:
            process = await start_server(hypercorn(port, BENCH_APP), env, nursery)
            await wait_http(f"http://127.0.0.1:{port}/health/live", process)
            _log(f"{label}: server pid {process.pid} on 127.0.0.1:{port}")
            accepted = 0
            for name in ["warmup", "baseline", *args.variants]:
                small, big = await _phase(port, name, args)
                accepted += small["accepted"] + (big["accepted"] if big else 0)
                phase_end = time.time()
                drained = await _wait_drained(port, accepted, process, args.drain_limit)
                phases[name] = {
                    "small": small,
                    "big": big,
                    "drained": drained,
                    "drain_s": time.time() - phase_end,
                    "peak_rss_mb": peak_rss_mb(process.pid),
                }
                _log(f"{label}: {name}: {_summary(small, big)}; {_drain(phases[name], args)}")
                if process.returncode is not None:
                    raise RuntimeError(f"server exited with {process.returncode} during {name}")
            process.terminate()
            with trio.move_on_after(STOP_SECONDS):
                await process.wait()
            nursery.cancel_scope.cancel()  # kills the server if it is still there
        applied = _applied_latencies(Path(state) / "catalog.sqlite3")
    del phases["warmup"]
    return {name: _figures(name, phase, applied) for name, phase in phases.items()}


def _summary(small: dict[str, Any], big: dict[str, Any] | None) -> str:
    text = (
        f"small {small['accepted']}/{small['scheduled']} accepted,"
        f" ingress p50 {_fmt(small['latency_p50_ms'])} p99 {_fmt(small['latency_p99_ms'])}"
        f" max {_fmt(small['latency_max_ms'])} ms"
    )
    if big:
        text += f"; big {big['accepted']}/{big['scheduled']} accepted ({big['body_bytes']} B)"
    return text


def _drain(phase: dict[str, Any], args: argparse.Namespace) -> str:
    if phase["drained"]:
        return f"backlog drained {phase['drain_s']:.1f} s after the senders finished"
    return f"backlog NOT drained within --drain-limit {args.drain_limit} s"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _applied_latencies(db: Path) -> dict[str, list[float]]:
    """POST (due time) → applied, in seconds, per id prefix (``<phase>.<small|big>``)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT identifier, json_extract(data, '$.properties.sentAt'), updated_at"
            " FROM entities WHERE blueprint = 'benchItem'"
        ).fetchall()
    latencies: dict[str, list[float]] = {}
    for identifier, sent_at, updated_at in rows:
        latencies.setdefault(identifier.rsplit("-", 1)[0], []).append(updated_at - sent_at)
    return latencies


def _figures(name: str, phase: dict[str, Any], applied: dict[str, list[float]]) -> dict[str, Any]:
    small, big = phase["small"], phase["big"]
    small_applied = applied.get(f"{name}.small", [])
    figures: dict[str, Any] = {
        "small_scheduled": small["scheduled"],
        "small_accepted": small["accepted"],
        "small_unanswered": small["unanswered"],
        "ingress_p50_ms": small["latency_p50_ms"],
        "ingress_p99_ms": small["latency_p99_ms"],
        "ingress_max_ms": small["latency_max_ms"],
        "ingress_service_p99_ms": small["service_p99_ms"],
        "applied_p50_ms": _ms(small_applied, 0.5),
        "applied_p99_ms": _ms(small_applied, 0.99),
        "applied_max_ms": _ms(small_applied, 1.0),
        "small_lost": small["accepted"] - len(small_applied),
        "big_scheduled": big["scheduled"] if big else 0,
        "big_accepted": big["accepted"] if big else 0,
        "big_applied": len(applied.get(f"{name}.big", [])),
        "big_body_bytes": big["body_bytes"] if big else 0,
        "big_ingress_p50_ms": big["latency_p50_ms"] if big else None,
        "big_ingress_max_ms": big["latency_max_ms"] if big else None,
        "big_applied_p50_ms": _ms(applied.get(f"{name}.big", []), 0.5),
        "big_applied_max_ms": _ms(applied.get(f"{name}.big", []), 1.0),
        "drain_s": phase["drain_s"],
        "drained": phase["drained"],
        "late_start_s": max(small["late_start_s"], big["late_start_s"] if big else 0.0),
        "peak_rss_mb": phase["peak_rss_mb"],
        "statuses": {"small": small["statuses"], "big": big["statuses"] if big else {}},
    }
    return figures


def _ms(latencies: list[float], fraction: float) -> float | None:
    return 1000 * percentile(latencies, fraction) if latencies else None


def _median(values: Iterable[Any]) -> float | None:
    """Median of the numbers among ``values`` (``None``s, i.e. nothing measured, skipped)."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    median = statistics.median(numbers)
    return int(median) if all(isinstance(v, int) for v in numbers) and median % 1 == 0 else median


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = ["baseline", *args.variants]
    numeric = [
        key
        for key, value in runs[0][names[-1]].items()
        if isinstance(value, int | float | None) and not isinstance(value, bool)
    ]
    phases = {
        name: {key: _median(run[name][key] for run in runs) for key in numeric} for name in names
    }
    for name in names:
        phases[name]["drained"] = all(run[name]["drained"] for run in runs)
    ratios: dict[str, dict[str, float | None]] = {}
    for name in args.variants:
        ratios[name] = {
            f"{metric}_p99": _median(
                _ratio(run[name][f"{metric}_p99_ms"], run["baseline"][f"{metric}_p99_ms"])
                for run in runs
            )
            for metric in ("ingress", "applied")
        }
    return {
        "benchmark": "big_bodies",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": args.runs,
        "duration_s": args.duration,
        "small_rate": args.small_rate,
        "big_rate": args.big_rate,
        "big_bytes": args.big_bytes,
        "event_workers_count": args.workers,
        "journal": args.journal,
        "max_body_bytes": args.max_body,
        "phases": phases,
        "ratio_p99_big_to_baseline": ratios,
        "per_run": runs,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for index in range(args.runs):
        runs.append(await run_once(args, f"run {index + 1}/{args.runs}"))
    return summarise(args, runs)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of small events first")
    parser.add_argument("--small-rate", type=float, default=200.0, help="small events per second")
    parser.add_argument("--big-rate", type=float, default=2.0, help="big events per second")
    parser.add_argument("--big-bytes", type=int, default=5 * MIB, help="size of a big body")
    parser.add_argument("--big-concurrency", type=int, default=4, help="big requests in flight")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(BIG_KINDS),
        default=list(BIG_KINDS),
        help="big-body phases to run after the baseline",
    )
    parser.add_argument("--workers", type=int, default=8, help="OCEAN__EVENT_WORKERS_COUNT")
    parser.add_argument("--journal", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument(
        "--max-body", type=int, help="OCEAN__LIVE_EVENTS__MAX_BODY_BYTES (default: the server's)"
    )
    parser.add_argument(
        "--drain-limit", type=float, default=120.0, help="seconds to wait for a backlog"
    )
    args = parser.parse_args()
    run_and_save("big_bodies", main, args)


if __name__ == "__main__":
    cli()
