"""Resync benchmark: a full resync of 100,000 entities, into the local catalog and into Port.

For each of ``--runs`` runs, in separate processes on 127.0.0.1:

1. **Baseline** (``benchmarks._resync_ceiling``): the same items made and mapped on one core,
   no I/O: the rate a resync reaches if mapping and writing do not overlap and writing is free.
2. **Local catalog**: ``ocean-trio sail benchmarks/bench_resync --once`` on a fresh state
   folder (a first resync: every entity is new), then again on the same folder (a second
   resync: nothing changed, every entity is compared and left as it is).
3. **Port** (``--sink port``/``both``): the same two resyncs with ``catalog.type: port``
   against the Port API emulator (``ocean-trio port-emulator``, its own process, fresh per
   run), counting the calls it receives.

A resync's duration is read from the server's log (``resync N started`` to ``resync N
completed``, millisecond timestamps): it excludes the process start and stop. While it
runs, the server's ``/proc/<pid>/status`` is read every 10 ms (RSS, peak RSS) and ``GET
/resync`` every 50 ms; RSS is noted when ``--rss-at`` entities (10,000) have gone through the
sink, and at the last reading before the process exits. Prints the medians as JSON (also
written to ``benchmarks/results/resync.json`` with every run's figures); progress on stderr.

Run: ``python -m benchmarks.resync`` (``--entities 100000 --runs 3 --sink both``).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from ._common import ROOT, free_port, progress, run_and_save, wait_http

INTEGRATION = "benchmarks/bench_resync"

RESYNC_LIMIT_SECONDS = 900.0  # one resync of 100,000 entities; Ocean needs ~110 s
START_LIMIT_SECONDS = 30.0
PROC_EVERY_SECONDS = 0.01
HTTP_EVERY_SECONDS = 0.05

TARGETS = {
    "port_first_entities_per_s": 13_000,
    "second_resync_seconds": 5.0,
    "rss_growth_mb": 20.0,
}
OCEAN_FOR_SCALE = {
    "first_resync_seconds": 110,
    "first_entities_per_s": 900,
    "bulk_calls": 5_000,
    "second_resync_seconds": 100,
}

_LOG_TIME = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+\s+ocean_trio\.resync: "
_STARTED = re.compile(_LOG_TIME + r"resync (\d+) started", re.MULTILINE)
_ENDED = re.compile(_LOG_TIME + r"resync (\d+) (completed|failed|aborted) in", re.MULTILINE)
_KIND = re.compile(
    r"resync \d+: (\S+) \(resources\[\d+\]\) done in [\d.]+s: (\d+) items, (\d+) written,"
    r" (\d+) unchanged or newer, (\d+) refused, (\d+) errors"
)


def _memory_mb(pid: int) -> tuple[float, float] | None:
    """``(VmRSS, VmHWM)`` of ``pid`` in MB; None once it has exited (a zombie has neither)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.MULTILINE))
    if len(found) < 2:
        return None
    return int(found["VmRSS"]) / 1024, int(found["VmHWM"]) / 1024


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (its own threads; not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _log_time(text: str) -> float:
    # The log's asctime is local time with milliseconds; only differences are used.
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _resync_env(state: str, entities: int, page_size: int) -> dict[str, str]:
    return {
        **os.environ,
        "OCEAN__STATE_PATH": state,
        "OCEAN__RESYNC__COALESCE_SECONDS": "0",
        "BENCH_RESYNC_ENTITIES": str(entities),
        "BENCH_RESYNC_PAGE_SIZE": str(page_size),
    }


def _port_env(base: dict[str, str], emulator_url: str, rate: float | None) -> dict[str, str]:
    extra = {"OCEAN__PORT__REQUESTS_PER_SECOND": str(rate)} if rate else {}
    return {
        **base,
        **extra,
        "OCEAN__CATALOG__TYPE": "port",
        "OCEAN__PORT__BASE_URL": emulator_url,
        "OCEAN__PORT__CLIENT_ID": "client-id",
        "OCEAN__PORT__CLIENT_SECRET": "client-secret",
        "OCEAN__INTEGRATION__IDENTIFIER": "bench-resync",
        "OCEAN__INTEGRATION__TYPE": "bench",
    }


class _Watch:
    """What the watcher saw of one server process: memory at two marks and at the end.

    The marks are counts of entities through the sink: ``first`` (10,000) and ``last`` (all
    of them, i.e. before reconciliation ends). Peaks are the maximum of every reading of
    VmRSS and VmHWM: the kernel's VmHWM alone can read lower later (it is only updated on
    some unmaps).
    """

    def __init__(self, first: int, last: int) -> None:
        self.marks = {"first": first, "last": last}
        self.at: dict[str, dict[str, float]] = {}
        self.rss = float("nan")
        self.peak = 0.0
        self.cpu = float("nan")

    def _read(self, pid: int) -> bool:
        memory, cpu = _memory_mb(pid), _cpu_seconds(pid)
        if memory is None or cpu is None:
            return False
        self.rss = memory[0]
        self.peak = max(self.peak, *memory)
        self.cpu = cpu
        return True

    async def memory(self, pid: int) -> None:
        # Sampling, not waiting for a condition: memory has no event to wait on.
        while True:
            if not self._read(pid):
                return
            await trio.sleep(PROC_EVERY_SECONDS)

    async def count(self, pid: int, url: str) -> None:
        # No keep-alive: an open connection would hold up the server's shutdown.
        no_keep_alive = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=2, limits=no_keep_alive) as client:
            while len(self.at) < len(self.marks):
                try:
                    state = (await client.get(url)).json().get("resync") or {}
                except (httpx.HTTPError, ValueError):
                    state = {}
                kinds = state.get("kinds") or []
                count = sum(k["upserted"] + k["skipped"] + k["failed"] for k in kinds)
                for name, mark in self.marks.items():
                    if name not in self.at and count >= mark and self._read(pid):
                        self.at[name] = {"entities": count, "rss": self.rss, "peak": self.peak}
                await trio.sleep(HTTP_EVERY_SECONDS)


async def sail_once(env: dict[str, str], entities: int, rss_at: int) -> dict[str, Any]:
    """One ``sail --once`` process: its resync's figures, read from its log and ``/proc``."""
    port = free_port()
    argv = [sys.executable, "-m", "ocean_trio", "sail", INTEGRATION, "--once"]
    argv += ["--port", str(port), "--log-level", "INFO"]
    watch = _Watch(rss_at, entities)
    with tempfile.TemporaryFile() as log:
        spawned = time.perf_counter()
        with trio.fail_after(RESYNC_LIMIT_SECONDS):
            async with trio.open_nursery() as nursery:
                run = functools.partial(
                    trio.run_process,
                    argv,
                    cwd=ROOT,
                    env=env,
                    check=False,
                    stdout=log,
                    stderr=log,
                )
                process: trio.Process = await nursery.start(run)
                nursery.start_soon(watch.memory, process.pid)
                await wait_http(
                    f"http://127.0.0.1:{port}/health/live", process, START_LIMIT_SECONDS
                )
                nursery.start_soon(watch.count, process.pid, f"http://127.0.0.1:{port}/resync")
                await process.wait()
                nursery.cancel_scope.cancel()
        process_seconds = time.perf_counter() - spawned
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    return _figures(text, process.returncode, process_seconds, entities, watch)


def _figures(
    text: str, code: int | None, process_seconds: float, entities: int, watch: _Watch
) -> dict[str, Any]:
    started, ended, kind = _STARTED.search(text), _ENDED.search(text), _KIND.search(text)
    if code != 0 or started is None or ended is None or kind is None or ended[3] != "completed":
        raise RuntimeError(f"the resync did not complete (exit code {code}):\n{text[-3000:]}")
    seconds = _log_time(ended[1]) - _log_time(started[1])
    items, written, unchanged, refused, errors = (int(kind[i]) for i in range(2, 7))
    if items != entities or written + unchanged != entities or refused or errors:
        raise RuntimeError(f"unexpected resync figures: {kind[0]}")
    nan = dict.fromkeys(("entities", "rss", "peak"), float("nan"))
    first, last = watch.at.get("first", nan), watch.at.get("last", nan)
    mark = watch.marks["first"]
    return {
        "seconds": seconds,
        "entities_per_s": entities / seconds,
        "written": written,
        "unchanged": unchanged,
        "process_seconds": process_seconds,
        "process_cpu_seconds": watch.cpu,
        f"rss_at_{mark}_mb": first["rss"],
        f"peak_rss_at_{mark}_mb": first["peak"],
        "peak_rss_after_writes_mb": last["peak"],
        "rss_at_end_mb": watch.rss,
        "peak_rss_mb": watch.peak,
        "rss_growth_writes_mb": last["peak"] - first["peak"],
        "rss_growth_mb": watch.peak - first["peak"],
    }


async def ceiling(entities: int, page_size: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks._resync_ceiling"]
    argv += ["--entities", str(entities), "--page-size", str(page_size)]
    with trio.fail_after(RESYNC_LIMIT_SECONDS):
        result = await trio.run_process(argv, cwd=ROOT, capture_stdout=True)
    return dict(json.loads(result.stdout))


async def run_local(entities: int, page_size: int, rss_at: int) -> dict[str, Any]:
    """A first and a second resync into a fresh local catalog."""
    with tempfile.TemporaryDirectory() as state:
        env = _resync_env(state, entities, page_size)
        first = await sail_once(env, entities, rss_at)
        progress(f"  local, first: {first['seconds']:.2f} s, {first['entities_per_s']:,.0f}/s")
        second = await sail_once(env, entities, rss_at)
        progress(f"  local, second (no change): {second['seconds']:.2f} s")
    return {"first": first, "second": second}


def _call_kind(method: str, path: str) -> str:
    if path.endswith("/entities/bulk"):
        return "bulk_upsert"
    if path == "/v1/entities/search":
        return "diff_search"
    if path.endswith("/datasource-entities"):
        return "owned_search"
    if "/bulk/entities/delete" in path:
        return "bulk_delete"
    return f"{method} {re.sub(r'/integration/[^/]+', '/integration/{id}', path)}"


async def _port_calls(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(f"{url}/_emulator/requests")
    return list(response.json()["requests"])


async def run_port(
    entities: int, page_size: int, rss_at: int, rate: float | None = None
) -> dict[str, Any]:
    """A first and a second resync into a fresh Port emulator, counting its calls."""
    emulator_port = free_port()
    url = f"http://127.0.0.1:{emulator_port}"
    argv = [sys.executable, "-m", "ocean_trio", "port-emulator", "--port", str(emulator_port)]
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as state:
        env = _port_env(_resync_env(state, entities, page_size), url, rate)
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=60) as client:
            run = functools.partial(
                trio.run_process, argv, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL
            )
            emulator: trio.Process = await nursery.start(run)
            await wait_http(f"{url}/_emulator/requests", emulator)
            for name in ("first", "second"):
                before = len(await _port_calls(client, url))
                cpu = _cpu_seconds(emulator.pid) or 0.0
                figures = await sail_once(env, entities, rss_at)
                figures["emulator_cpu_seconds"] = (_cpu_seconds(emulator.pid) or 0.0) - cpu
                calls = (await _port_calls(client, url))[before:]
                kinds = collections.Counter(_call_kind(c["method"], c["path"]) for c in calls)
                figures["port_calls"] = len(calls)
                figures["port_calls_per_1000_entities"] = 1000 * len(calls) / entities
                figures["port_calls_by_kind"] = dict(kinds.most_common())
                statuses = collections.Counter(str(c["status"]) for c in calls)
                figures["port_statuses"] = dict(statuses.most_common())
                result[name] = figures
                progress(
                    f"  port, {name}: {figures['seconds']:.2f} s,"
                    f" {figures['entities_per_s']:,.0f}/s, {len(calls):,} Port calls"
                    f" ({kinds['bulk_upsert']:,} bulk upserts)"
                )
            stored = (await client.get(f"{url}/_emulator/entities")).json()["entities"]
            result["entities_in_port"] = sum(
                1 for e in stored if e["blueprint"] == "benchResyncItem"
            )
            emulator.terminate()
            nursery.cancel_scope.cancel()
    if result["entities_in_port"] != entities:
        raise RuntimeError(f"Port holds {result['entities_in_port']} of {entities} entities")
    return result


def _median(values: list[Any]) -> float:
    return float(statistics.median(values))


def _summary(runs: list[dict[str, Any]], sink: str, rss_at: int) -> dict[str, Any]:
    """Medians over runs of each resync's figures."""
    summary: dict[str, Any] = {}
    for name in ("first", "second"):
        resyncs = [r[sink][name] for r in runs]
        keys = ["seconds", "entities_per_s", "written", "unchanged", "process_seconds"]
        keys += ["process_cpu_seconds"]
        keys += [f"rss_at_{rss_at}_mb", f"peak_rss_at_{rss_at}_mb", "peak_rss_after_writes_mb"]
        keys += ["rss_at_end_mb", "peak_rss_mb", "rss_growth_writes_mb", "rss_growth_mb"]
        if sink == "port":
            keys += ["port_calls", "port_calls_per_1000_entities", "emulator_cpu_seconds"]
        figures: dict[str, Any] = {key: _median([r[key] for r in resyncs]) for key in keys}
        if sink == "port":
            kinds = {k for r in resyncs for k in r["port_calls_by_kind"]}
            figures["port_calls_by_kind"] = {
                k: _median([r["port_calls_by_kind"].get(k, 0) for r in resyncs])
                for k in sorted(kinds)
            }
        summary[name] = figures
    ratios = [r[sink]["first"]["entities_per_s"] / r["ceiling"]["make_and_map_per_s"] for r in runs]
    summary["ratio_first_to_baseline"] = _median(ratios)
    return summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sinks = ["local", "port"] if args.sink == "both" else [args.sink]
    runs: list[dict[str, Any]] = []
    for number in range(1, args.runs + 1):
        progress(f"run {number}/{args.runs}: baseline (make and map on one core, no I/O)")
        run: dict[str, Any] = {"ceiling": await ceiling(args.entities, args.page_size)}
        progress(f"  baseline {run['ceiling']['make_and_map_per_s']:,.0f} items/s")
        if "local" in sinks:
            progress(f"run {number}/{args.runs}: {args.entities:,} entities into the local catalog")
            run["local"] = await run_local(args.entities, args.page_size, args.rss_at)
        if "port" in sinks:
            progress(f"run {number}/{args.runs}: {args.entities:,} entities into the Port emulator")
            run["port"] = await run_port(args.entities, args.page_size, args.rss_at, args.port_rate)
        runs.append(run)
    summary: dict[str, Any] = {
        "benchmark": "resync",
        "entities": args.entities,
        "page_size": args.page_size,
        "runs": args.runs,
        "port_requests_per_second": args.port_rate or "default (100)",
        "baseline": {
            key: _median([r["ceiling"][key] for r in runs])
            for key in ("make_per_s", "map_per_s", "make_and_map_per_s")
        },
    }
    for sink in sinks:
        summary[sink] = _summary(runs, sink, args.rss_at)
    summary["targets"] = TARGETS
    summary["ocean_for_scale"] = OCEAN_FOR_SCALE
    summary["per_run"] = runs
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sink", choices=["local", "port", "both"], default="both")
    parser.add_argument("--rss-at", type=int, default=10_000, help="entities at the first RSS mark")
    parser.add_argument(
        "--port-rate",
        type=float,
        help="port.requestsPerSecond (default: its own, 100); to measure what it costs",
    )
    args = parser.parse_args()
    run_and_save("resync", main, args)


if __name__ == "__main__":
    cli()
