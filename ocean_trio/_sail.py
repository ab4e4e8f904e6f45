"""``ocean-trio sail``: run an integration in one process, ``trio.run`` at the root."""

from __future__ import annotations

import logging
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ._app import open_app
from ._asgi import OceanASGI
from ._ocean import load_integration
from ._serve import serve_asgi
from ._settings import Settings, load_settings
from .catalog._port_client import PortClient

logger = logging.getLogger("ocean_trio")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per outgoing request drowns the integration's own log at INFO.
    if logging.getLogger().level <= logging.INFO:
        logging.getLogger("httpx").setLevel(logging.WARNING)


async def sail(root: Path, settings: Settings) -> None:
    """Serve the integration at ``root`` until SIGINT or SIGTERM, then drain and stop."""
    integration = load_integration(root)
    asgi = OceanASGI(integration)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_app(integration, settings, root=root) as app:
            asgi.attach(app)
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:
                serve = partial(serve_asgi, asgi, settings.http.host, settings.http.port)
                urls = await nursery.start(partial(serve, shutdown_trigger=shutdown))
                app.served_at(urls)
                _banner(root, app.base_url, sorted(app.pipelines), port=app.port)
                async for signum in signals:
                    logger.info("%s received: draining, then stopping", signal.Signals(signum).name)
                    app.stopping.set()
                    shutdown.set()
                    break


def _banner(
    root: Path, base_url: str, webhook_paths: list[str], *, port: PortClient | None
) -> None:
    catalog = (
        [f"  catalog      : Port's API at {port.base_url}"]
        if port is not None
        else [
            f"  catalog page : {base_url}/catalog/",
            f"  catalog API  : {base_url}/catalog/entities",
        ]
    )
    lines = [
        f"ocean-trio: integration {root.name!r} is sailing on {base_url}",
        *catalog,
        f"  health       : {base_url}/health/ready",
        *(f"  webhook      : POST {base_url}{path}" for path in webhook_paths),
    ]
    print("\n".join(lines), flush=True)


def run_sail(root: Path, *, overrides: dict[str, Any]) -> int:
    """The ``sail`` command: load settings, configure logging, ``trio.run``."""
    settings = load_settings(root, overrides=overrides)
    configure_logging(settings.log_level)
    trio.run(sail, root, settings)
    return 0
