"""``ocean-trio sail``: run an integration in one process, ``trio.run`` at the root.

Signals are watched from the first moment: SIGINT or SIGTERM during start-up stops at once
(exit code 128 + signal); once running, the first one drains (exit code 0 when the drain
ends), a second one stops at once.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from ._app import App
from ._exceptions import one_error_as_raised
from ._integration import load_integration
from ._log import configure_logging
from ._root import open_app
from ._settings import Settings, load_settings
from ._stop import SIGNALS, Stop, run_to_exit, watch_signals
from ._supervisor import SUPERVISOR_ENV, supervise, watch_supervisor

logger = logging.getLogger("ocean_trio")


async def sail(root: Path, settings: Settings, *, http_fd: int | None = None) -> int:
    """Serve the integration at ``root`` until SIGINT or SIGTERM; returns the exit code.

    The ``processing`` role serves no HTTP; ``http_fd`` is a listening socket handed down by
    the supervisor (``_supervisor``), served instead of binding ``settings.http``.
    """
    stop = Stop()
    with trio.open_signal_receiver(*SIGNALS) as signals, one_error_as_raised():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, signals, stop, nursery.cancel_scope)
            supervisor = os.environ.get(SUPERVISOR_ENV)
            if supervisor and supervisor.isdigit():
                nursery.start_soon(watch_supervisor, int(supervisor), stop.drain)
            integration = load_integration(root)
            processing_port = settings.http.processing_port
            serve_http = settings.role != "processing" or processing_port is not None
            if settings.role == "processing" and processing_port is not None:
                http = attrs.evolve(settings.http, port=processing_port)
                settings = attrs.evolve(settings, http=http)
            async with open_app(
                integration, settings, root=root, serve_http=serve_http, http_fd=http_fd
            ) as app:
                stop.started = True
                if http_fd is not None:
                    logger.info("%s: serving the supervisor's socket", settings.role)
                elif settings.role == "processing" and app.urls:
                    print(
                        f"ocean-trio: integration {root.name!r}: processing events"
                        f" (pid {os.getpid()}); its live page, metrics and health:"
                        f" {app.urls[0]}/live/, /metrics, /health/ready",
                        flush=True,
                    )
                elif serve_http:
                    _banner(root, app)
                else:
                    print(
                        f"ocean-trio: integration {root.name!r}: processing events"
                        f" (pid {os.getpid()})",
                        flush=True,
                    )
                nursery.start_soon(_drain_when_finished, app, stop)
                await stop.drain.wait()
            nursery.cancel_scope.cancel()
    return stop.final_code()


async def _drain_when_finished(app: App, stop: Stop) -> None:
    # The ONCE listener finishes the app once its resync ended.
    await app.finished.wait()
    stop.exit_code = app.exit_code
    stop.drain.set()


def _banner(root: Path, app: App) -> None:
    base_url = app.base_url
    catalog = (
        [f"  catalog      : Port's API at {app.port.base_url}"]
        if app.port is not None
        else [
            f"  catalog page : {base_url}/catalog/",
            f"  catalog API  : {base_url}/catalog/entities",
        ]
    )
    lines = [
        f"ocean-trio: integration {root.name!r} is sailing on {base_url}",
        f"  live page    : {base_url}/live/   (events as they arrive, dead letters, catalog)",
        *catalog,
        f"  metrics      : {base_url}/metrics",
        f"  health       : {base_url}/health/ready",
        *(f"  webhook      : POST {base_url}{path}" for path in sorted(app.pipelines)),
    ]
    print("\n".join(lines), flush=True)


def run_sail(
    root: Path,
    *,
    overrides: dict[str, Any],
    http_fd: int | None = None,
    ingress_processes: int | None = None,
    child_args: list[str] | None = None,
) -> int:
    """The ``sail`` command: load settings, configure logging, ``trio.run``; the exit code.

    With ``ingress_processes`` this process supervises the split topology (``_supervisor``).
    """
    settings = load_settings(root, overrides=overrides)
    configure_logging(
        settings.log_level, as_json=settings.log_format == "json", secrets=settings.secrets()
    )
    if ingress_processes is not None:
        return run_to_exit(
            partial(
                supervise,
                root,
                settings,
                ingress_processes=ingress_processes,
                child_args=child_args or [],
            )
        )
    return run_to_exit(partial(sail, root, settings, http_fd=http_fd))
