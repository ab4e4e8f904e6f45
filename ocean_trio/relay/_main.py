"""``ocean-trio relay FOLDER``: run the relay in one process, ``trio.run`` at the root.

Signals as ``sail`` takes them: SIGINT or SIGTERM during start-up stops at once (exit code
128 + signal); once running, the first one drains (webhooks answer 503, the events in flight
get ``maxWaitSecondsBeforeShutdown`` to be acknowledged; exit code 0), a second one stops at
once.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from .._exceptions import one_error_as_raised
from .._log import configure_logging
from ._protocol import CONNECT_PATH
from ._server import Relay, open_relay
from ._settings import RelaySettings, load_relay_settings

logger = logging.getLogger("ocean_trio.relay")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.define
class _Stop:
    drain: trio.Event = attrs.field(factory=trio.Event)
    signum: int | None = None
    forced: bool = False
    started: bool = False


async def serve_relay(folder: Path, settings: RelaySettings) -> int:
    """Serve the relay of ``folder`` until SIGINT or SIGTERM; returns the exit code."""
    stop = _Stop()
    with trio.open_signal_receiver(*_SIGNALS) as signals, one_error_as_raised():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, signals, stop, nursery.cancel_scope)
            async with open_relay(settings, folder) as relay:
                stop.started = True
                _banner(relay)
                await stop.drain.wait()
            nursery.cancel_scope.cancel()
    if stop.signum is not None and (stop.forced or not stop.started):
        return 128 + stop.signum
    return 0


async def _watch(signals: AsyncIterator[int], stop: _Stop, scope: trio.CancelScope) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if stop.signum is None:
            stop.signum = signum
            if stop.started:
                logger.info("%s received: draining, then stopping (again to stop now)", name)
                stop.drain.set()
                continue
            logger.warning("%s received during start-up: stopping", name)
        else:
            logger.warning("%s received again: stopping now", name)
            stop.forced = True
        scope.cancel()
        return


def _banner(relay: Relay) -> None:
    base = relay.urls[0].rstrip("/") if relay.urls else ""
    socket = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    lines = [
        f"ocean-trio relay {relay.relay_id} on {base} (state folder"
        f" {relay.settings.state_folder(relay.folder.resolve())})",
        *(f"  webhook      : POST {base}{path}" for path in sorted(relay.pipelines)),
        f"  integration  : {socket}{CONNECT_PATH} (liveEvents.relay.url)",
        f"  health       : {base}/health/ready",
    ]
    print("\n".join(lines), flush=True)


def run_relay(folder: Path, *, overrides: dict[str, Any]) -> int:
    """The ``relay`` command: load settings, configure logging, ``trio.run``; the exit code."""
    settings = load_relay_settings(folder, overrides=overrides)
    configure_logging(
        settings.log_level, as_json=settings.log_format == "json", secrets=settings.secrets()
    )
    try:
        code = trio.run(partial(serve_relay, folder, settings))
    except KeyboardInterrupt:  # before trio's signal handling was in place
        code = 128 + signal.SIGINT
    if code:
        logger.info("stopped (exit code %d)", code)
    else:
        logger.info("stopped")
    return code
