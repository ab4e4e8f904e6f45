"""``ocean-trio relay FOLDER``: run the relay in one process, ``trio.run`` at the root.

Signals as ``sail`` takes them: SIGINT or SIGTERM during start-up stops at once (exit code
128 + signal); once running, the first one drains (webhooks answer 503, the events in flight
get ``maxWaitSecondsBeforeShutdown`` to be acknowledged; exit code 0), a second one stops at
once.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .._exceptions import one_error_as_raised
from .._log import configure_logging
from .._stop import SIGNALS, Stop, run_to_exit, watch_signals
from ._protocol import CONNECT_PATH
from ._server import Relay, open_relay
from ._settings import RelaySettings, load_relay_settings

logger = logging.getLogger("ocean_trio.relay")


async def serve_relay(folder: Path, settings: RelaySettings) -> int:
    """Serve the relay of ``folder`` until SIGINT or SIGTERM; returns the exit code."""
    stop = Stop()
    with trio.open_signal_receiver(*SIGNALS) as signals, one_error_as_raised():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, signals, stop, nursery.cancel_scope)
            async with open_relay(settings, folder) as relay:
                stop.started = True
                _banner(relay)
                await stop.drain.wait()
            nursery.cancel_scope.cancel()
    return stop.final_code()


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
    return run_to_exit(partial(serve_relay, folder, settings))
