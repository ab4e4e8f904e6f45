"""One redis journal instance in a process of its own, for the tests that kill one (-9).

``python -m tests.live_events.redis.instance URL INSTANCE_ID`` runs a watched journal with
the tests' settings and prints ``owned <shards...>`` whenever its shards change and
``read <local seq>`` after each read; it never finishes an event.
"""

from __future__ import annotations

import sys

import trio

from ocean_trio.live_events._redis_journal import RedisJournal
from ocean_trio.live_events._redis_settings import RedisJournalSettings

SETTINGS = {
    "prefix": "test",
    "lease_seconds": 0.6,
    "block_ms": 50,
    "stream_maintenance_scan_interval_seconds": 0.2,
}


def say(line: str) -> None:
    print(line, flush=True)


async def main(url: str, instance_id: str) -> None:
    settings = RedisJournalSettings(url=url, **SETTINGS)  # type: ignore[arg-type]
    async with (
        RedisJournal.open(
            settings,
            instance_id=instance_id,
            max_pending=1000,
            dedup_window_seconds=3600,
            max_in_memory=1000,
        ) as journal,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(journal.run)
        journal.watch(lambda high: say(f"read {high}"))
        said: list[frozenset[int]] = []
        while True:
            await journal.wait_owned(lambda shards: not said or shards != said[-1])
            said.append(journal.owned_shards)
            say(" ".join(["owned", *map(str, sorted(said[-1]))]))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
