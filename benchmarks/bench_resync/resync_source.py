"""The benchmark's fake source: ``BENCH_RESYNC_ENTITIES`` raw items of ~1 KB, made on demand.

Deterministic (item ``n`` is the same in every run and process), so a second resync finds
nothing changed, and cheap to make (~2 µs an item): the source is not what is measured.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

ENTITIES = int(os.environ.get("BENCH_RESYNC_ENTITIES", "100000"))
PAGE_SIZE = int(os.environ.get("BENCH_RESYNC_PAGE_SIZE", "100"))

_STATUSES = ("open", "in progress", "review", "done")
_PRIORITIES = ("low", "medium", "high")
_WORDS = (
    *("resync", "entity", "catalog", "mapping", "blueprint", "identifier", "property"),
    *("relation", "team", "owner", "service", "deployment", "cluster", "namespace"),
    *("incident", "pipeline", "repository", "branch", "release"),
)
# Long enough that every item's description is a different 800-character window of it.
_TEXT = " ".join(_WORDS[(i * 7) % len(_WORDS)] for i in range(400))


def item(n: int) -> dict[str, Any]:
    """Raw item ``n``: ~1 KB of JSON, eight fields, a list and a long text."""
    return {
        "id": f"item-{n:06d}",
        "title": f"Benchmark item {n}",
        "status": _STATUSES[n % len(_STATUSES)],
        "priority": _PRIORITIES[n % len(_PRIORITIES)],
        "owner": f"user-{n % 97}@example.com",
        "created": 1_700_000_000 + n,
        "labels": [f"label-{n % 7}", f"label-{n % 11}"],
        "description": _TEXT[n % 500 : n % 500 + 800],
    }


def pages(total: int = ENTITIES, size: int = PAGE_SIZE) -> Iterator[list[dict[str, Any]]]:
    """The items ``0 .. total - 1`` in pages of ``size``."""
    for start in range(0, total, size):
        yield [item(n) for n in range(start, min(start + size, total))]
