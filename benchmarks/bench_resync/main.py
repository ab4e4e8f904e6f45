"""The resync benchmark's integration: one kind, ``item``, listed a page at a time.

``python -m benchmarks.resync`` runs it with ``ocean-trio sail benchmarks/bench_resync
--once``: one full resync of ``BENCH_RESYNC_ENTITIES`` items (default 100,000) in pages of
``BENCH_RESYNC_PAGE_SIZE`` (100), then the process exits.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import trio

from ocean_trio import ocean
from ocean_trio.catalog._port_client import PortClient

# ``sail`` imports this file as a top-level module with its folder on sys.path; the
# benchmark's ceiling imports it as ``benchmarks.bench_resync.main``.
if __package__:
    from .resync_source import pages
else:
    from resync_source import pages


# Benchmark only, until the Port client's rate limit is a setting (issue 9): what the default
# of 100 requests/s costs is measured by running again with a higher one. ``sail`` imports
# this file before it builds the Port client, so the client takes this default.
_RATE = os.environ.get("BENCH_PORT_REQUESTS_PER_SECOND")
if _RATE:
    defaults = PortClient.__init__.__kwdefaults__
    assert defaults is not None
    defaults["requests_per_second"] = float(_RATE)


@ocean.on_resync("item")
async def items(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
    for page in pages():
        # A real source awaits its HTTP client between pages; this one only lets the loop in.
        await trio.lowlevel.checkpoint()
        yield page
