"""``MappingPool``: the jq mapping of big inputs, in worker processes, so the event loop runs.

Why processes: running the mapping of a big raw item on a thread does not free the loop.
``json.dumps`` (jq's input text) and the jq binding's ``input_text`` are C calls that hold the
GIL for their whole run; for a 5 MiB item of 86,000 small objects that is ~165 ms plus
~470 ms during which the loop's thread cannot run at all. A worker process has its own GIL.

What crosses: the raw items, with ``marshal`` (~25 ms for that item, against 165 ms for
``json.dumps``, and only plain JSON-like values pass: exact ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool``, ``None``, ``tuple``); inputs ``marshal`` refuses (a datetime,
a subclass of ``str``) are mapped on a thread as before. Compiled jq programs cannot be
pickled and integrations' ``ResourceConfig`` subclasses live in modules a worker cannot
import (they are loaded from a file path), so the worker gets the port app config rebuilt
with the base classes (kind, ``selector.query`` and ``port`` are all the mapping reads) and a
token; it compiles the config once per token and keeps the last few. What comes back is
the ``EntityChanges``, the ``MappingIssue`` list and the warnings the mapping logged (they
are logged again here, so they reach this process's handlers).

Lifetime: ``open_mapping_pool`` owns a ``trio_parallel`` worker context; workers start on
the first big input (an app that never sees one starts none), stay for ``idle_timeout``,
and are shut down when the block exits. A mapping cancelled mid-way kills its worker (the
event stays in the journal); a worker that dies mid-way fails the call with
``WebhookProcessingError``: the event becomes a dead letter, replayable, rather than being
mapped again in this process, where whatever killed the worker (memory, a crash in jq)
would take the app down with it.

Workers are spawned (a fresh interpreter, not a fork of this threaded process): the first
job of a worker pays its start and the import of ``ocean_trio`` (~1.5 s measured), and
the program's main module must be safe to import again, behind ``if __name__ ==
"__main__":`` as for any ``multiprocessing`` program (the ``ocean-trio`` and ``hypercorn``
scripts and pytest are).
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import marshal
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias

import attrs
import trio
import trio_parallel

from .._exceptions import WebhookProcessingError
from ..catalog._changes import EntityChanges
from ._compiled import CompiledPortAppConfig
from ._mapper import MappingIssue
from ._models import (
    EntityMapping,
    MappingsConfig,
    PortAppConfig,
    PortResourceConfig,
    ResourceConfig,
    Selector,
)

MapResult: TypeAlias = tuple[EntityChanges, list[MappingIssue]]
MapFunction: TypeAlias = Callable[..., MapResult]
"""``live_event_changes``, ``register_raw_changes`` or ``unregister_raw_changes``: a
module-level function taking the compiled config then marshallable arguments."""

DEFAULT_WORKERS = max(1, (os.cpu_count() or 1) - 1)
"""One core stays with the event loop's process; the rest map."""

IDLE_TIMEOUT_SECONDS = 600.0
"""An idle worker exits after this long; the next big input starts a fresh one."""

WORKER_NICENESS = 10
"""Mapping is bulk work: on a busy machine the event loop's process gets the CPU first."""

SHUTDOWN_GRACE_SECONDS = 5.0
"""How long idle workers get to exit at shutdown before they are killed (they exit at once)."""

logger = logging.getLogger("ocean_trio.mapping")

# Compiled configs a worker keeps: the one in force, plus a few it replaced (events mapped
# with the old one may still be in flight when the mapping changes).
_WORKER_CACHE_SIZE = 4


@attrs.frozen
class MappingPoolStatistics:
    """``jobs``: calls mapped in a worker process; ``thread_fallbacks``: calls whose input
    ``marshal`` refused, mapped on a thread; ``worker_deaths``: calls failed by a worker dying;
    ``idle_workers`` / ``running_workers``: processes alive now."""

    jobs: int
    thread_fallbacks: int
    worker_deaths: int
    idle_workers: int
    running_workers: int


class MappingPool:
    """Maps big inputs in worker processes; built by ``open_mapping_pool``."""

    def __init__(
        self, context: trio_parallel.WorkerContext, *, allow_env: bool, workers: int
    ) -> None:
        self._context = context
        self._allow_env = allow_env
        # One job per worker: the limiter is what bounds the number of processes.
        self._limiter = trio.CapacityLimiter(workers)
        self._thread_limiter = trio.CapacityLimiter(1)
        self._tokens = itertools.count(1)
        self._prepared: tuple[CompiledPortAppConfig, str, PortAppConfig] | None = None
        self._jobs = 0
        self._thread_fallbacks = 0
        self._worker_deaths = 0

    async def map(self, fn: MapFunction, compiled: CompiledPortAppConfig, *args: Any) -> MapResult:
        """``fn(compiled, *args)``, in a worker process; the result is the same as in-process.

        Raises ``WebhookProcessingError`` when the worker dies on the way; anything ``fn``
        raises is raised here.
        """
        try:
            payload = marshal.dumps(args)
        except ValueError:
            self._thread_fallbacks += 1
            return await trio.to_thread.run_sync(fn, compiled, *args, limiter=self._thread_limiter)
        token, config = self._portable(compiled)
        try:
            changes, issues, records = await self._context.run_sync(
                _map_in_worker,
                fn,
                token,
                config,
                self._allow_env,
                payload,
                kill_on_cancel=True,
                limiter=self._limiter,
            )
        except trio_parallel.BrokenWorkerError as error:
            self._worker_deaths += 1
            raise WebhookProcessingError(
                f"the mapping worker process died ({_exit_of(error)}) while mapping"
                f" {len(payload):,} bytes of raw items; nothing was applied"
            ) from error
        self._jobs += 1
        for record in records:
            target = logging.getLogger(record.name)
            if target.isEnabledFor(record.levelno):
                target.handle(record)
        # The options object of the config in force, as the in-process mapping returns.
        return attrs.evolve(changes, options=compiled.options), issues

    def statistics(self) -> MappingPoolStatistics:
        workers = self._context.statistics()
        return MappingPoolStatistics(
            jobs=self._jobs,
            thread_fallbacks=self._thread_fallbacks,
            worker_deaths=self._worker_deaths,
            idle_workers=workers.idle_workers,
            running_workers=workers.running_workers,
        )

    def _portable(self, compiled: CompiledPortAppConfig) -> tuple[str, PortAppConfig]:
        # The mapping in force is replaced as a whole, never mutated: identity is its key.
        if self._prepared is None or self._prepared[0] is not compiled:
            self._prepared = (compiled, str(next(self._tokens)), _base_config(compiled.config))
        return self._prepared[1], self._prepared[2]


@asynccontextmanager
async def open_mapping_pool(
    *, allow_env: bool, workers: int = DEFAULT_WORKERS
) -> AsyncIterator[MappingPool]:
    """A ``MappingPool`` whose worker processes live no longer than the block.

    ``allow_env`` must be what the mapping was compiled with
    (``allow_environment_variables_jq_access``); workers see the environment of this
    process as it was when they started. On exit, waits for running mappings (callers
    live inside the block, so there are none) and stops the workers.
    """
    body_failed = False
    try:
        async with trio_parallel.open_worker_context(
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            init=_worker_started,
            grace_period=SHUTDOWN_GRACE_SECONDS,
        ) as context:
            try:
                yield MappingPool(context, allow_env=allow_env, workers=workers)
            except BaseException:
                body_failed = True
                raise
    except trio_parallel.BrokenWorkerError as error:
        # An idle worker killed from outside (the OOM killer) makes the close complain;
        # every worker is gone by now, which is all the exit needs.
        if body_failed:
            raise
        logger.warning("a mapping worker process had died before shutdown: %s", error)


def _base_config(config: PortAppConfig) -> PortAppConfig:
    """``config`` with the base classes only: what a worker can unpickle and compile."""

    def rebuild(value: Any, cls: type[Any], **changes: Any) -> Any:
        fields = {a.alias: getattr(value, a.name) for a in attrs.fields(cls)}
        return cls(**{**fields, **changes})

    resources = tuple(
        ResourceConfig(
            kind=r.kind,
            selector=Selector(query=r.selector.query),
            port=rebuild(
                r.port,
                PortResourceConfig,
                entity=MappingsConfig(mappings=rebuild(r.port.entity.mappings, EntityMapping)),
            ),
        )
        for r in config.resources
    )
    base: PortAppConfig = rebuild(config, PortAppConfig, resources=resources)
    return base


def _exit_of(error: BaseException) -> str:
    for arg in error.args:
        if isinstance(arg, multiprocessing.process.BaseProcess):
            return f"pid {arg.pid}, exit code {arg.exitcode}"
    return str(error)


# --- in the worker process -------------------------------------------------------------

_compiled: collections.OrderedDict[str, CompiledPortAppConfig] = collections.OrderedDict()


def _worker_started() -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)


def _map_in_worker(
    fn: MapFunction, token: str, config: PortAppConfig, allow_env: bool, payload: bytes
) -> tuple[EntityChanges, list[MappingIssue], list[logging.LogRecord]]:
    compiled = _compiled.get(token)
    if compiled is None:
        compiled = _compiled[token] = CompiledPortAppConfig.compile(config, allow_env=allow_env)
        while len(_compiled) > _WORKER_CACHE_SIZE:
            _compiled.popitem(last=False)
    else:
        _compiled.move_to_end(token)
    # Nothing the mapping builds is cyclic: refcounting frees it all, and a collection
    # while the input's many objects are alive would only walk them.
    gc.disable()
    try:
        args = marshal.loads(payload)
        del payload
        with _captured_logs() as records:
            changes, issues = fn(compiled, *args)
    finally:
        gc.enable()
    return changes, issues, records


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Formatted here: arguments of any type would have to be pickled otherwise.
        record.msg, record.args = record.getMessage(), None
        record.exc_info = record.exc_text = record.stack_info = None
        self.records.append(record)


@contextmanager
def _captured_logs() -> Iterator[list[logging.LogRecord]]:
    """What ``ocean_trio`` loggers emit in here, at every level, kept for the parent."""
    logger = logging.getLogger("ocean_trio")
    handler = _Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
