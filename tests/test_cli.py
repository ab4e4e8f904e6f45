"""The ``ocean-trio`` command line as a user meets it: real subprocesses, real pipes, signals.

``--version`` and ``--help``; ``events list`` into a closed pipe and on a missing folder;
``events replay`` of numbers it cannot replay; ``sail`` stopped by SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio

from ocean_trio import (
    EventPayload,
    EventStatus,
    Integration,
    ResourceConfig,
    WebhookEventRawResults,
    __version__,
)
from ocean_trio.testing import make_settings, serve_integration

from .processors import ItemProcessor
from .test_servers import _env

pytestmark = pytest.mark.slow

PIPE_BUFFER = 64 * 1024  # Linux's default pipe capacity


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``python -m ocean_trio *args``, its output captured, whatever its exit code."""
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "ocean_trio", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )


def option_help(text: str, option: str) -> str:
    """The help of ``option`` (as printed, e.g. ``--limit LIMIT``), on one line."""
    flat = " ".join(text.split("\n\n", 1)[1].split())  # after the usage lines
    assert option in flat, text
    return flat.split(option, 1)[1].split(" -", 1)[0]


# --- 1. --version and --help ------------------------------------------------------------------


async def test_version_prints_the_name_and_version() -> None:
    done = await cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"ocean-trio {__version__}\n".encode(),
        b"",
    )


HELPS = [
    (),
    ("sail",),
    ("map",),
    ("events",),
    ("events", "list"),
    ("events", "replay"),
    ("events", "purge"),
    ("port-emulator",),
]


# ``python -m ocean_trio <argv> --help`` for each argv, in one interpreter: importing
# ocean_trio is most of each run's time, and the help is the same either way.
_HELP_DRIVER = """
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = ["ocean-trio", *argv, "--help"]
    try:
        runpy.run_module("ocean_trio", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        print(f"\\0exit {exit.code}", flush=True)
"""


async def test_help_is_plain_text_and_shows_defaults() -> None:
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-c", _HELP_DRIVER, json.dumps(HELPS)],
            capture_stdout=True,
            capture_stderr=True,
            env={**os.environ, "COLUMNS": "80"},
        )
    assert done.stderr == b""
    *texts, rest = done.stdout.decode().split("\0exit 0\n")  # each help, then its exit code
    assert (len(texts), rest) == (len(HELPS), "")
    helps = dict(zip(HELPS, texts, strict=True))

    for command, text in helps.items():
        assert "``" not in text, (command, text)  # no reST markup from docstrings
        # a default is shown only where there is one
        assert "(default: None)" not in text, (command, text)
        assert "(default: False)" not in text, (command, text)
        assert max(len(line) for line in text.splitlines()) <= 80, (command, text)

    assert "(default: 100)" in option_help(helps["events", "list"], "--limit LIMIT")
    assert "(default: .)" in option_help(helps["events", "list"], "FOLDER")
    assert "(default: 5555)" in option_help(helps["port-emulator",], "--port PORT")
    assert "(default: 127.0.0.1)" in option_help(helps["port-emulator",], "--host HOST")
    # sail's options default to the settings; the help names those defaults
    assert "8000" in option_help(helps["sail",], "--port PORT")
    assert "127.0.0.1" in option_help(helps["sail",], "--host HOST")
    assert "INFO" in option_help(helps["sail",], "--log-level LOG_LEVEL")
    assert "dead and rejected" in option_help(
        helps["events", "purge"], "{rejected,dead,done,no_match}"
    )


# --- journals for the events commands ------------------------------------------------------


class PickyProcessor(ItemProcessor):
    """Refuses (non-retryably) items whose status is ``bad``, with ``pad`` characters of error."""

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        item = payload["item"]
        if item["status"] == "bad":
            raise ValueError(f"item {item['id']} refused " + "x" * int(item.get("pad", 0)))
        return await super().handle_event(payload, resource_config)


@attrs.frozen
class Journaled:
    root: Path
    seqs: dict[str, int]  # item id → its event's number
    statuses: dict[str, EventStatus]


async def journal_events(root: Path, tmp_path: Path, items: list[dict[str, object]]) -> Journaled:
    """Run the integration at ``root`` on ``items`` (one event each) until all have finished,
    with its journal where the CLI finds it."""
    (root / "config.yaml").write_text(f"statePath: {tmp_path / 'state'}\n")
    integration = Integration(root)
    integration.add_webhook_processor("/webhook", PickyProcessor)
    seqs: dict[str, int] = {}
    statuses: dict[str, EventStatus] = {}
    with trio.fail_after(30):
        async with serve_integration(integration, make_settings(tmp_path)) as server:
            for item in items:
                assert (await server.post_event("/webhook", {"item": item})).status_code == 202
            for entry, outcome in await server.next_outcomes(len(items)):
                identifier = entry.event.payload["item"]["id"]
                seqs[identifier] = entry.seq
                statuses[identifier] = outcome.status
            await server.app.journal.flush()
    return Journaled(root, seqs, statuses)


# --- 2. a closed pipe -------------------------------------------------------------------------


async def test_events_list_into_a_closed_pipe_prints_no_traceback(
    integration_root: Path, tmp_path: Path
) -> None:
    items: list[dict[str, object]] = [
        {"id": f"I-{n}", "status": "bad", "pad": 2000} for n in range(100)
    ]
    journaled = await journal_events(integration_root, tmp_path, items)
    assert set(journaled.statuses.values()) == {EventStatus.DEAD}
    root = str(journaled.root)

    whole = await cli("events", "list", root)
    assert whole.returncode == 0, whole.stderr.decode()
    assert len(whole.stdout) > 2 * PIPE_BUFFER  # more than the pipe holds while head exits

    with trio.fail_after(30):
        piped = await trio.run_process(
            ["sh", "-c", '"$0" -m ocean_trio events list "$1" | head -1', sys.executable, root],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert piped.stdout.decode().split() == [
        "SEQ",
        "STATUS",
        "TRIES",
        "RECEIVED",
        "(UTC)",
        "PATH",
        "ERROR",
    ]
    assert piped.stderr == b""


# --- 3. replay problems -----------------------------------------------------------------------


@pytest.fixture
async def dead_and_done(integration_root: Path, tmp_path: Path) -> Journaled:
    journaled = await journal_events(
        integration_root,
        tmp_path,
        [{"id": "D", "status": "bad"}, {"id": "OK", "status": "open"}],
    )
    assert journaled.statuses == {"D": EventStatus.DEAD, "OK": EventStatus.DONE}
    return journaled


async def test_replaying_an_unknown_or_done_event_says_so_and_fails(
    dead_and_done: Journaled,
) -> None:
    root, seqs = str(dead_and_done.root), dead_and_done.seqs

    unknown = await cli("events", "replay", root, "999")
    assert unknown.returncode == 1
    assert unknown.stderr.decode() == "ocean-trio events replay: event 999 does not exist\n"

    done = await cli("events", "replay", root, str(seqs["OK"]))
    assert done.returncode == 1
    assert done.stderr.decode() == (
        f"ocean-trio events replay: event {seqs['OK']} is done, not dead or rejected\n"
    )

    # nothing was replayed: the dead letter is still there
    listed = await cli("events", "list", root, "--status", "dead", "--json")
    assert [e["seq"] for e in json.loads(listed.stdout)["events"]] == [seqs["D"]]


async def test_replaying_a_dead_and_an_unknown_event_replays_the_dead_one_and_fails(
    dead_and_done: Journaled,
) -> None:
    root, seqs = str(dead_and_done.root), dead_and_done.seqs

    mixed = await cli("events", "replay", root, str(seqs["D"]), "999")
    assert mixed.returncode == 1
    assert mixed.stderr.decode() == "ocean-trio events replay: event 999 does not exist\n"
    assert "1 event(s) pending again" in mixed.stdout.decode()

    pending = await cli("events", "list", root, "--status", "pending", "--json")
    [replayed] = json.loads(pending.stdout)["events"]
    assert replayed["payload"] == {"item": {"id": "D", "status": "bad"}}
    assert f"{seqs['D']} → {replayed['seq']}" in mixed.stdout.decode()

    # no dead events left: --all says so and succeeds
    nothing = await cli("events", "replay", root, "--all")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (
        0,
        b"no dead events to replay\n",
        b"",
    )


# --- 4. a missing folder ----------------------------------------------------------------------


async def test_events_list_on_a_missing_folder_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = await cli("events", "list", str(missing))
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode() == f"ocean-trio: no integration folder at {missing}\n"


# --- 6. sail's last word ----------------------------------------------------------------------


async def test_sail_stopped_by_sigint_says_stopped_last(package: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "ocean_trio", "sail", str(package), "--port", "0"]
    process = await trio.lowlevel.open_process(
        argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    errors = b""

    async def read_stderr() -> None:
        nonlocal errors
        assert process.stderr is not None
        while chunk := await process.stderr.receive_some():
            errors += chunk

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stderr)
            try:
                assert process.stdout is not None
                banner = b""
                while b"is sailing on" not in banner:
                    chunk = await process.stdout.receive_some()
                    assert chunk, "sail exited before printing its banner"
                    banner += chunk
            finally:
                process.send_signal(signal.SIGINT)
            await process.wait()
    assert process.returncode == 0, errors.decode()
    last = errors.decode().rstrip("\n").splitlines()[-1]
    assert "stopped" in last, errors.decode()
