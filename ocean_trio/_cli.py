"""The ocean-trio command line: sail an integration, create a new one, map items offline, manage
journaled events, run a Port API emulator."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._exceptions import OceanError
from ._version import __version__

_STATUSES = ["pending", "done", "no_match", "rejected", "dead"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown after an option's help, only where there is one (not None or False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocean-trio", description=__doc__, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"ocean-trio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sail = commands.add_parser(
        "sail",
        help="run an integration (HTTP server, live events, catalog)",
        description="Run the integration in FOLDER until SIGINT/SIGTERM (the first one drains,"
        " a second one stops at once). Settings: FOLDER/config.yaml and OCEAN__ variables.",
        formatter_class=_Help,
    )
    sail.add_argument(
        "path", type=Path, nargs="?", default=Path("."), metavar="FOLDER", help="integration folder"
    )
    sail.add_argument("-p", "--port", type=int, help="HTTP port (http.port: 8000)")
    sail.add_argument("--host", help="HTTP host (http.host: 127.0.0.1)")
    sail.add_argument("-l", "--log-level", help="log level (logLevel: INFO)")
    sail.add_argument(
        "--role",
        choices=["all", "ingress", "processing"],
        help="what this process does (role: all); see docs/scaling.md",
    )
    sail.add_argument(
        "-i",
        "--ingress-processes",
        type=int,
        metavar="N",
        help="run N ingress processes on the HTTP port and one processing process, and"
        " supervise them (restart a crashed one; SIGTERM drains all)",
    )
    sail.add_argument(
        "--processing-port",
        type=int,
        metavar="PORT",
        help="with --ingress-processes: the processing process serves its live page, /metrics"
        " and health on this port (http.processingPort)",
    )
    sail.add_argument("--http-fd", type=int, help=argparse.SUPPRESS)  # the supervisor's socket
    sail.add_argument(
        "-O",
        "--once",
        action="store_true",
        help="resync once, then exit: 0 when the resync completed (eventListener.type: ONCE)",
    )

    mapping = commands.add_parser(
        "map",
        help="map raw items with a port app config, offline",
        description="Map the raw items in INPUT (a JSON array) with every resource of KIND and"
        " print the entities as JSON; exit 2 when the config, kind or input is invalid.",
        formatter_class=_Help,
    )
    mapping.add_argument("--config", type=Path, required=True, help="port-app-config.yml")
    mapping.add_argument("--kind", required=True, help="resource kind to map")
    mapping.add_argument("--input", type=Path, required=True, help="JSON array of raw items")

    events = commands.add_parser(
        "events",
        help="list, replay or purge journaled events",
        description="Work on the journal of an integration folder (SQLite, or Redis).",
        formatter_class=_Help,
    )
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="list events (dead letters with --status dead)", formatter_class=_Help
    )
    listing.add_argument(
        "path", type=Path, nargs="?", default=Path("."), metavar="FOLDER", help="integration folder"
    )
    listing.add_argument("--status", choices=_STATUSES, help="only events with this status")
    listing.add_argument("--limit", type=int, default=100, help="at most this many events")
    listing.add_argument("--json", action="store_true", help="JSON, with payloads")
    replay = actions.add_parser(
        "replay",
        help="make dead (or given) events pending again",
        description="Append the given dead or rejected events (or every dead one) again as"
        " pending; a running integration picks them up within seconds, a stopped one when it"
        " next starts. Exit 1 when a number is unknown or not dead/rejected.",
        formatter_class=_Help,
    )
    replay.add_argument("path", type=Path, metavar="FOLDER", help="integration folder")
    replay.add_argument(
        "seqs", type=int, nargs="*", metavar="SEQ", help="event numbers (SEQ of list)"
    )
    replay.add_argument("--all", action="store_true", help="every dead event")
    purge = actions.add_parser(
        "purge", help="delete dead and rejected events", formatter_class=_Help
    )
    purge.add_argument(
        "path", type=Path, nargs="?", default=Path("."), metavar="FOLDER", help="integration folder"
    )
    purge.add_argument(
        "--status",
        choices=["rejected", "dead", "done", "no_match"],
        help="only this status (default: dead and rejected)",
    )

    new = commands.add_parser(
        "new",
        help="create a new integration folder (processor, resync, mapping, tests)",
        description="Create PARENT/NAME: a processor, an on_resync handler, the mapping and"
        " blueprints under .port/resources, config.yaml, a README and a test that passes as"
        " created. Exit 2 when NAME is invalid or PARENT/NAME exists and is not empty.",
        formatter_class=_Help,
    )
    new.add_argument("name", metavar="NAME", help="the integration's name, e.g. my-service")
    new.add_argument(
        "--dir", type=Path, default=Path("."), metavar="PARENT", help="folder to create it in"
    )

    tail = actions.add_parser(
        "tail",
        help="follow the live feed of a running integration",
        description="Print events as the running integration accepts and finishes them"
        " (its /live/feed), until Ctrl-C; reconnects when the integration restarts.",
        formatter_class=_Help,
    )
    tail.add_argument(
        "path", type=Path, nargs="?", default=Path("."), metavar="FOLDER", help="integration folder"
    )
    tail.add_argument("--url", help="the integration's address (default: from FOLDER's settings)")
    tail.add_argument(
        "--path",
        dest="paths",
        action="append",
        default=[],
        metavar="PATH",
        help="only events of this webhook path (repeatable)",
    )
    tail.add_argument(
        "--status",
        dest="statuses",
        action="append",
        default=[],
        choices=_STATUSES,
        help="only events with this status (repeatable; pending: just accepted)",
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")

    relay = commands.add_parser(
        "relay",
        help="receive webhooks publicly for an integration no webhook can reach",
        description="Serve the webhook paths of FOLDER/relay.yaml (POST /integration/<path>),"
        " journal what arrives, and stream it to the integration connected at /relay/connect"
        " (liveEvents.relay) until SIGINT/SIGTERM (the first one drains, a second one stops at"
        " once). Settings: FOLDER/relay.yaml and OCEAN_RELAY__ variables; see docs/relay.md.",
        formatter_class=_Help,
    )
    relay.add_argument(
        "path", type=Path, nargs="?", default=Path("."), metavar="FOLDER", help="relay folder"
    )
    relay.add_argument("-p", "--port", type=int, help="HTTP port (http.port: 9000)")
    relay.add_argument("--host", help="HTTP host (http.host: 127.0.0.1)")
    relay.add_argument("-l", "--log-level", help="log level (logLevel: INFO)")

    emulator = commands.add_parser(
        "port-emulator",
        help="serve an emulator of Port's API (for trying the port sink)",
        formatter_class=_Help,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=5555, help="port to listen on")
    emulator.add_argument("--client-id", default="client-id", help="accepted client id")
    emulator.add_argument("--client-secret", default="client-secret", help="accepted client secret")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (2 for bad usage or a start-up failure)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except OceanError as error:
        print(f"ocean-trio: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``… | head``): not an error worth a traceback. Point stdout
        # at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "sail":
        from ._sail import run_sail

        overrides: dict[str, Any] = {}
        http = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
        if http:
            overrides["http"] = http
        if args.log_level:
            overrides["logLevel"] = args.log_level
        if args.once:
            overrides["eventListener"] = {"type": "ONCE"}
        if args.role:
            overrides["role"] = args.role
        if args.processing_port is not None:
            overrides.setdefault("http", {})["processingPort"] = args.processing_port
        child_args = ["--log-level", args.log_level] if args.log_level else []
        if args.processing_port is not None:
            child_args += ["--processing-port", str(args.processing_port)]
        return run_sail(
            args.path,
            overrides=overrides,
            http_fd=args.http_fd,
            ingress_processes=args.ingress_processes,
            child_args=child_args,
        )
    if args.command == "map":
        from .mapping._cli import run_map_command

        return run_map_command(
            args.config, args.kind, args.input, stdout=sys.stdout, stderr=sys.stderr
        )
    if args.command == "new":
        from ._scaffold import run_new_command

        return run_new_command(args.name, args.dir, stdout=sys.stdout)
    if args.command == "relay":
        from .relay._main import run_relay

        relay: dict[str, Any] = {}
        http = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
        if http:
            relay["http"] = http
        if args.log_level:
            relay["logLevel"] = args.log_level
        return run_relay(args.path, overrides=relay)
    if args.command == "port-emulator":
        # Test tooling, imported only for this command.
        from .testing._port_emulator import run_port_emulator

        return run_port_emulator(
            args.host, args.port, client_id=args.client_id, client_secret=args.client_secret
        )
    if args.action == "tail":
        from ._tail import run_tail

        return run_tail(
            args.url or _base_url(args.path),
            paths=args.paths,
            statuses=args.statuses,
            as_json=args.json,
        )
    from .live_events._events_cli import run_events_command

    if args.action == "replay" and not (args.seqs or args.all):
        print("ocean-trio events replay: give event numbers or --all", file=sys.stderr)
        return 2
    return run_events_command(
        args.action,
        args.path,
        status=getattr(args, "status", None),
        limit=getattr(args, "limit", 100),
        seqs=getattr(args, "seqs", None),
        replay_all=getattr(args, "all", False),
        as_json=getattr(args, "json", False),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def _base_url(folder: Path) -> str:
    """Where the integration in ``folder`` serves: ``baseUrl``, else ``http.host:port``."""
    from ._settings import load_settings

    settings = load_settings(folder)
    if settings.base_url:
        return settings.base_url
    host = settings.http.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.http.port}"


if __name__ == "__main__":
    sys.exit(main())
