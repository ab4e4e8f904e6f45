"""``ResyncCoordinator``: one resync at a time; triggers coalesced; no trigger storm starves it.

The rule (Ocean's, made safe):
- a trigger while nothing runs starts a resync after ``coalesce_seconds``, so a burst of
  triggers gives one resync;
- a trigger while a resync runs cancels it (``aborted``, nothing deleted) and a fresh one
  starts, as in Ocean, **unless** the last ``max_aborts`` resyncs in a row were aborted that
  way: then the running one finishes, and the trigger is served by the next resync. So at
  most ``max_aborts`` resyncs are cancelled in a row, however many triggers arrive.

Requests made with ``request_durably`` are recorded first (``RequestStore``) and forgotten
only once a resync that began after them has run: one lost to a crash or a shutdown runs at
the next start.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable

import trio

from ._requests import RequestStore
from ._state import ResyncState, ResyncStatus

logger = logging.getLogger("ocean_trio.resync")

REPORT_SECONDS = 5.0  # reporting a state change (to Port) never holds up more than this


class ResyncCoordinator:
    """Runs ``run_one`` for each resync, one at a time; see the module docstring."""

    def __init__(
        self,
        run_one: Callable[[ResyncState], Awaitable[None]],
        requests: RequestStore,
        *,
        coalesce_seconds: float = 1.0,
        max_aborts: int = 3,
        on_state: Callable[[ResyncState], Awaitable[None]] | None = None,
    ) -> None:
        self._run_one = run_one
        self._store = requests
        self._coalesce = coalesce_seconds
        self._max_aborts = max_aborts
        self._on_state = on_state
        self._reasons: list[str] = []
        self._wake = trio.Event()
        self._running: tuple[ResyncState, trio.CancelScope] | None = None
        self._aborts_in_a_row = 0
        self._last: ResyncState | None = None
        self._finished = trio.Event()
        self._last_id = 0
        self._seen_request = 0  # the last recorded request this coordinator knows of
        self.ended: collections.Counter[str] = collections.Counter()  # resyncs by status
        self.last_completed_at: float | None = None  # when the last completed resync ended

    @property
    def current(self) -> ResyncState | None:
        """The resync running now, if any."""
        return None if self._running is None else self._running[0]

    @property
    def last(self) -> ResyncState | None:
        """The last resync that ended."""
        return self._last

    def request(self, reason: str) -> None:
        """Ask for a resync (not recorded: for triggers whose sender does not wait on it)."""
        self._reasons.append(reason)
        self._wake.set()
        if self._running is not None and self._aborts_in_a_row < self._max_aborts:
            state, scope = self._running
            logger.info("resync %d: %s arrived: aborting it for a fresh one", state.id, reason)
            scope.cancel()

    async def request_durably(self, reason: str) -> None:
        """Record the request, then ask for it: once this returns, a resync will run for it
        even if the process dies right after."""
        self._seen_request = max(self._seen_request, await self._store.add(reason))
        self.request(reason)

    async def pick_up_recorded(self) -> None:
        """Serve requests another process of the state folder recorded (its POST /resync)."""
        last = await self._store.last()
        if last > self._seen_request:
            self._seen_request = last
            self.request("a request recorded by another process")

    async def wait_for_next(self) -> ResyncState:
        """Wait until the next resync ends; its final state."""
        finished = self._finished
        await finished.wait()
        assert self._last is not None
        return self._last

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run resyncs as they are asked for, until cancelled; ``started()`` at once."""
        left = await self._store.pending()
        self._seen_request = max(self._seen_request, await self._store.last())
        if left:
            self.request(f"{len(left)} request(s) left pending by the last run")
        task_status.started()
        while True:
            await self._wake.wait()
            await trio.sleep(self._coalesce)  # further triggers join this resync
            self._wake = trio.Event()
            reasons, self._reasons = self._reasons, []
            covered = await self._store.last()
            await self._run(", ".join(dict.fromkeys(reasons)), covered)

    async def _run(self, reason: str, covered: int) -> None:
        self._last_id = max(self._last_id + 1, int(time.time() * 1000))
        state = ResyncState(id=self._last_id, reason=reason)
        logger.info("resync %d started (%s)", state.id, reason)
        with trio.move_on_after(REPORT_SECONDS):
            await self._report(state)
        try:
            with trio.CancelScope() as scope:
                self._running = (state, scope)
                try:
                    await self._run_one(state)
                except Exception as error:
                    state.status = ResyncStatus.FAILED
                    state.error = f"resync failed: {error!r}"
                    logger.exception("resync %d failed", state.id)
            if scope.cancelled_caught:
                state.status = ResyncStatus.ABORTED
                self._aborts_in_a_row += 1
            else:
                self._aborts_in_a_row = 0
                await self._store.done(covered)
        except BaseException:
            # Cancelled from outside (shutdown): the requests it covered stay pending.
            state.status = ResyncStatus.ABORTED
            raise
        finally:
            self._running = None
            state.finished_at = time.time()
            self._last = state
            self.ended[state.status.value] += 1
            if state.status is ResyncStatus.COMPLETED:
                self.last_completed_at = state.finished_at
            logger.info(
                "resync %d %s in %.1fs%s",
                state.id,
                state.status.value,
                state.finished_at - state.started_at,
                f": {'; '.join(state.errors[:3])}" if state.errors else "",
            )
            with trio.move_on_after(REPORT_SECONDS, shield=True):
                await self._report(state)
            # Waiters (ONCE's exit, tests) learn of the end once Port has been told.
            self._finished.set()
            self._finished = trio.Event()

    async def _report(self, state: ResyncState) -> None:
        if self._on_state is None:
            return
        try:
            await self._on_state(state)
        except Exception as error:
            logger.warning("reporting resync %d as %s failed: %r", state.id, state.status, error)
