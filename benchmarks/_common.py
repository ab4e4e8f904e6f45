"""What every benchmark driver shares: where results go, progress lines, free ports, waiting
for a server to answer, and writing the JSON result."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def progress(message: str) -> None:
    """A line on stderr, so a human sees the benchmark move (stdout is the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(url: str, process: trio.Process, limit: float = 30.0) -> None:
    """Wait until ``url`` answers anything; fail if ``process`` exits or ``limit`` passes."""
    async with httpx.AsyncClient(timeout=5) as client:
        with trio.fail_after(limit):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"{url}: the process exited with {process.returncode}")
                try:
                    await client.get(url)
                    return
                except httpx.TransportError:
                    await trio.sleep(0.05)


def run_and_save(
    name: str, main: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]], args: Any
) -> None:
    """Run ``main(args)`` under trio, add its wall time, write and print the result."""
    started = time.time()
    summary = trio.run(main, args)
    summary["wall_seconds"] = time.time() - started
    save_results(name, summary)


def save_results(name: str, summary: dict[str, Any]) -> None:
    """Write ``summary`` to ``benchmarks/results/<name>.json``; print it without ``per_run``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "per_run"}, indent=2))
