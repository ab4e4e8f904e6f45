"""One resync of N generated items into a fresh local catalog, in a process of its own; prints
its memory as JSON: RSS when 10,000 items had been handed over, and the peak RSS at the end.

Run by ``test_resync_memory.py``: ``python resync_memory_process.py <folder> <items>``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from ocean_trio import Integration, open_app
from ocean_trio.testing import make_settings

PAGE = 100
MARK = 10_000
MAPPING = """
resources:
  - kind: item
    selector:
      query: 'true'
    port:
      entity:
        mappings:
          identifier: .id
          title: .title
          blueprint: '"item"'
          properties:
            status: .status
            owner: .owner.email
            labels: .labels
"""


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _item(n: int) -> dict[str, Any]:
    return {
        "id": f"ITEM-{n}",
        "title": f"Item number {n}, with a title of a realistic length",
        "status": ("open", "in progress", "done")[n % 3],
        "owner": {"email": f"user{n % 97}@example.com", "name": f"User {n % 97}"},
        "labels": [f"label-{n % 7}", f"team-{n % 5}"],
        "description": "x" * 200,
    }


async def main(folder: Path, count: int) -> dict[str, Any]:
    resources = folder / ".port" / "resources"
    resources.mkdir(parents=True, exist_ok=True)
    (resources / "port-app-config.yml").write_text(MAPPING)
    integration = Integration(folder)
    figures: dict[str, Any] = {}

    @integration.on_resync("item")
    async def items(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
        for start in range(0, count, PAGE):
            if start == MARK:
                figures["rss_at_mark_kb"] = _status_kb("VmRSS")
            yield [_item(n) for n in range(start, min(start + PAGE, count))]

    settings = make_settings(
        folder,
        eventListener={"type": "POLLING", "resyncOnStart": False},
        resync={"coalesceSeconds": 0},
    )
    async with open_app(integration, settings) as app:
        assert app.resyncs is not None
        app.resyncs.request("memory")
        state = await app.resyncs.wait_for_next()
    figures["status"] = state.status.value
    figures["upserted"] = sum(kind.upserted for kind in state.kinds)
    figures["peak_kb"] = _status_kb("VmHWM")
    return figures


if __name__ == "__main__":
    print(json.dumps(trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))))
