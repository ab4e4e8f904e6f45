"""The resync benchmark's baseline: make and map the same items on one core, with no I/O.

Run by ``benchmarks/resync.py`` as its own process (``python -m benchmarks._resync_ceiling``):
the bench integration's source makes the pages and ``resync_changes`` (what a resync calls per
batch) maps them with the bench's mapping, one after the other. Prints JSON: how many items a
second one core makes, maps, and both. A resync cannot beat "both" without mapping on another
core while the loop does the rest.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

from ocean_trio.mapping._compiled import CompiledPortAppConfig
from ocean_trio.mapping._live_changes import resync_changes
from ocean_trio.mapping._models import load_port_app_config

from .bench_resync.resync_source import pages

MAPPING = Path(__file__).resolve().parent / "bench_resync/.port/resources/port-app-config.yml"


def measure(entities: int, page_size: int) -> dict[str, float]:
    compiled = CompiledPortAppConfig.compile(load_port_app_config(MAPPING))
    gc.collect()
    started = time.perf_counter()
    made = sum(len(page) for page in pages(entities, page_size))
    make_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mapped = 0
    for page in pages(entities, page_size):
        changes, issues = resync_changes(compiled, 0, page)
        if issues:
            raise RuntimeError(f"the bench mapping failed: {issues[0]}")
        mapped += len(changes.upserts)
    both_seconds = time.perf_counter() - started
    if made != entities or mapped != entities:
        raise RuntimeError(f"made {made} and mapped {mapped} of {entities} items")
    return {
        "entities": entities,
        "make_per_s": entities / make_seconds,
        "map_per_s": entities / (both_seconds - make_seconds),
        "make_and_map_per_s": entities / both_seconds,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(measure(args.entities, args.page_size)))


if __name__ == "__main__":
    cli()
