"""``ocean-trio events``: list, replay and purge the journal's events from the command line.

Works on the journal of an integration folder: its SQLite file, or its Redis streams (dead
letters). Replayed events become pending; a running integration picks them up within
seconds (its processing process looks at the journal when poked and every few seconds),
a stopped one when it next starts.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import trio

from .._exceptions import ConfigError
from .._settings import Settings, load_settings
from .._state_wake import WakeSender
from ._journal import DEFAULT_PURGE, EventStatus, Journal, JournalRecord
from ._redis_journal import RedisJournal
from ._sqlite_journal import SqliteJournal


def _settings(root: Path) -> Settings:
    if not root.is_dir():
        raise ConfigError(f"no integration folder at {root}")
    return load_settings(root)


@asynccontextmanager
async def _open_journal(root: Path, settings: Settings) -> AsyncIterator[Journal]:
    kind = settings.live_events.journal_type
    if kind == "memory":
        raise ConfigError(
            "the journal is in memory (liveEvents.journal.type: memory): its events live only"
            " in the running process; use the admin API"
        )
    if kind == "redis":
        from .._root import redis_instance_id, redis_settings

        async with RedisJournal.open(
            redis_settings(settings, root),
            instance_id=redis_instance_id(settings, root) + ":cli",
            max_pending=1 << 62,
            dedup_window_seconds=settings.live_events.journal.dedup_window_seconds,
            max_in_memory=1,
        ) as journal:
            yield journal
        return
    path = settings.journal_path(root)
    if not await trio.Path(path).is_file():
        raise ConfigError(f"no journal at {path} (has the integration run yet?)")
    async with SqliteJournal.open(path, max_pending=1 << 62) as journal:
        yield journal


def run_events_command(
    action: str,
    root: Path,
    *,
    status: str | None = None,
    limit: int = 100,
    seqs: list[int] | None = None,
    replay_all: bool = False,
    as_json: bool = False,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Run ``list``, ``replay`` or ``purge`` on the journal of the integration at ``root``.

    Returns the exit code: 0, or 1 when some of the events asked for could not be replayed.
    """
    wanted = EventStatus(status) if status else None
    settings = _settings(root)

    async def main() -> int:
        async with _open_journal(root, settings) as journal:
            if action == "list":
                records = await journal.records(wanted, limit=limit)
                _print_records(records, as_json=as_json, stdout=stdout)
            elif action == "replay":
                result = await journal.replay(None if replay_all else seqs or [])
                if result.replayed:
                    # A running integration's processing process looks at once.
                    wake = WakeSender(settings.resolve(root, settings.state_path))
                    wake.notify()
                    wake.close()
                if result.replayed:
                    numbers = ", ".join(f"{r.old_seq} → {r.seq}" for r in result.replayed)
                    print(
                        f"{len(result.replayed)} event(s) pending again ({numbers});"
                        " a running integration picks them up within seconds",
                        file=stdout,
                    )
                elif replay_all:
                    print("no dead events to replay", file=stdout)
                for problem in result.problems():
                    print(f"ocean-trio events replay: {problem}", file=stderr)
                return 1 if result.problems() else 0
            else:
                statuses = [wanted] if wanted else list(DEFAULT_PURGE)
                if EventStatus.PENDING in statuses:
                    raise ConfigError("pending events cannot be purged")
                print(f"{await journal.purge(statuses)} event(s) purged", file=stdout)
        return 0

    return trio.run(main)


def _print_records(records: list[JournalRecord], *, as_json: bool, stdout: TextIO) -> None:
    if as_json:
        json.dump({"events": [r.to_json(with_payload=True) for r in records]}, stdout, indent=2)
        stdout.write("\n")
        return
    if not records:
        print("no events", file=stdout)
        return
    print(
        f"{'SEQ':>7}  {'STATUS':<9} {'TRIES':>5}  {'RECEIVED (UTC)':<19}  PATH  ERROR", file=stdout
    )
    for r in records:
        received = datetime.datetime.fromtimestamp(r.event.received_at, datetime.UTC)
        print(
            f"{r.seq:>7}  {r.status.value:<9} {r.attempts:>5}  "
            f"{received:%Y-%m-%d %H:%M:%S}  {r.event.path}  {r.error or ''}",
            file=stdout,
        )
