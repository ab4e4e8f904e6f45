"""``ocean-trio sail --ingress-processes N``: one integration split over the cores of a machine.

The supervisor binds the HTTP port itself and starts N ingress processes that share that
listening socket (the kernel spreads connections over them, as with ``hypercorn -w N``) and
one processing process; they share the state folder's SQLite journal. A child that dies is
started again (after a pause that grows while it keeps dying), unless its first start failed
(exit code 2: a bad setting, which stops the topology with its message); the first SIGINT or SIGTERM
is passed on to every child, which drains and exits, a second one kills them. Children run
in sessions of their own, so a terminal's Ctrl-C reaches them once, through the supervisor,
and each drains on its own if the supervisor dies (it watches its parent).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from ._exceptions import ConfigError
from ._serve import HttpListener
from ._settings import Settings

logger = logging.getLogger("ocean_trio")

SUPERVISOR_ENV = "OCEAN_TRIO_SUPERVISOR"
"""Set in a child's environment to the supervisor's pid: the child drains if it goes."""

FIRST_RESTART_SECONDS = 0.5
MAX_RESTART_SECONDS = 30.0
STEADY_SECONDS = 30.0  # a child that ran this long starts again at once when it dies
STARTUP_FAILURE_CODE = 2  # the CLI's exit code for a start-up failure: restarting cannot help
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.define(eq=False)
class _Child:
    name: str
    argv: list[str]
    process: trio.Process | None = None
    restarts: int = 0


@attrs.define(eq=False)
class _State:
    stopping: trio.Event = attrs.field(factory=trio.Event)
    signum: int | None = None
    forced: bool = False
    failed: str | None = None  # a child that cannot start: why


async def supervise(
    root: Path, settings: Settings, *, ingress_processes: int, child_args: list[str]
) -> int:
    """Run the split topology until a signal; the exit code (see the module docstring)."""
    if ingress_processes < 1:
        raise ConfigError("--ingress-processes must be at least 1")
    if settings.live_events.journal_type == "memory":
        raise ConfigError(
            "--ingress-processes needs a journal the processes share"
            " (liveEvents.journal.type: sqlite); the memory journal runs in one process"
        )
    if settings.event_listener.type == "ONCE":
        raise ConfigError("--once resyncs and exits: run it without --ingress-processes")
    listener = HttpListener.bind(settings.http.host, settings.http.port)
    try:
        [sock] = listener.sockets.insecure_sockets
        fd = sock.fileno()
        os.set_inheritable(fd, True)
        host, port = sock.getsockname()[:2]
        base = [sys.executable, "-m", "ocean_trio", "sail", str(root), *child_args]
        children = [_Child("processing", [*base, "--role", "processing"])]
        children += [
            _Child(f"ingress {n}", [*base, "--role", "ingress", "--http-fd", str(fd)])
            for n in range(1, ingress_processes + 1)
        ]
        processing = settings.http.processing_port
        print(
            f"ocean-trio: integration {root.name!r} is sailing on http://{host}:{port} with"
            f" {ingress_processes} ingress process(es) and 1 processing process"
            f" (supervisor pid {os.getpid()})"
            + (
                ""
                if processing is None
                else f"; the processing process's live page: http://{host}:{processing}/live/"
            ),
            flush=True,
        )
        url = f"http://{host}:{port}"
        return await _run(children, fd, base_url=None if settings.base_url else url)
    finally:
        listener.close()


async def _run(children: list[_Child], fd: int, *, base_url: str | None) -> int:
    state = _State()
    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
    if base_url is not None:
        env["OCEAN__BASE_URL"] = base_url  # the processing process serves no HTTP itself
    with trio.open_signal_receiver(*_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, children, state)
            async with trio.open_nursery() as kept:
                for child in children:
                    kept.start_soon(_keep, child, fd, env, state, children)
            nursery.cancel_scope.cancel()
    if state.failed is not None:
        logger.error("%s", state.failed)
        return STARTUP_FAILURE_CODE
    if state.signum is not None and state.forced:
        return 128 + state.signum
    return 0


async def _keep(
    child: _Child, fd: int, env: dict[str, str], state: _State, children: list[_Child]
) -> None:
    """Run ``child`` until the supervisor stops, starting it again whenever it dies."""
    pause = FIRST_RESTART_SECONDS
    while not state.stopping.is_set():
        started = trio.current_time()
        async with _child_process(child.argv, env, fd) as process:
            child.process = process
            code = await process.wait()
        if state.stopping.is_set():
            return
        ran = trio.current_time() - started
        if code == STARTUP_FAILURE_CODE and child.restarts == 0:
            # Its first start: a bad setting or a busy port, which restarting cannot mend
            # (after a restart, the same code may be an outage: it is started again).
            state.failed = f"{child.name} could not start (exit code {code}): see its message above"
            _stop(state, None, children)
            return
        if ran >= STEADY_SECONDS:
            pause = FIRST_RESTART_SECONDS
        child.restarts += 1
        logger.warning(
            "%s (pid %d) exited with code %s after %.1fs: starting it again in %.1fs",
            child.name,
            process.pid,
            code,
            ran,
            pause,
        )
        with trio.move_on_at(trio.current_time() + pause):
            await state.stopping.wait()
        pause = min(pause * 2, MAX_RESTART_SECONDS)


@asynccontextmanager
async def _child_process(
    argv: list[str], env: dict[str, str], fd: int
) -> AsyncIterator[trio.Process]:
    """A child process for the block; killed (and reaped) if the block is left early."""
    process = await trio.lowlevel.open_process(
        argv, env=env, pass_fds=(fd,), start_new_session=True
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _watch_signals(
    signals: AsyncIterator[int], children: list[_Child], state: _State
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if not state.stopping.is_set():
            logger.info("%s received: every process drains, then stops (again to kill)", name)
            _stop(state, signum, children)
        else:
            logger.warning("%s received again: killing every process", name)
            state.forced = True
            for child in children:
                if child.process is not None and child.process.returncode is None:
                    child.process.kill()


def _stop(state: _State, signum: int | None, children: list[_Child]) -> None:
    state.signum = signum
    state.stopping.set()
    for child in children:
        if child.process is not None and child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)


async def watch_supervisor(pid: int, drain: trio.Event) -> None:
    """In a child: set ``drain`` once the supervisor ``pid`` is gone (its parent changed)."""
    while os.getppid() == pid:  # noqa: ASYNC110 - no event tells a process its parent died
        await trio.sleep(1.0)
    logger.warning("the supervisor (pid %d) is gone: draining, then stopping", pid)
    drain.set()
