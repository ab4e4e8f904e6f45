"""The resync benchmark's integration: one kind, ``item``, listed a page at a time.

``python -m benchmarks.resync`` runs it with ``ocean-trio sail benchmarks/bench_resync
--once``: one full resync of ``BENCH_RESYNC_ENTITIES`` items (default 100,000) in pages of
``BENCH_RESYNC_PAGE_SIZE`` (100), then the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio

from ocean_trio import ocean

# ``sail`` imports this file as a top-level module with its folder on sys.path; the
# benchmark's ceiling imports it as ``benchmarks.bench_resync.main``.
if __package__:
    from .resync_source import pages
else:
    from resync_source import pages


@ocean.on_resync("item")
async def items(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
    for page in pages():
        # A real source awaits its HTTP client between pages; this one only lets the loop in.
        await trio.lowlevel.checkpoint()
        yield page
