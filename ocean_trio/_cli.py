"""The ``ocean-trio`` command line: ``sail`` an integration, ``map`` items offline, manage
``events``, run a ``port-emulator``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._exceptions import OceanError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocean-trio", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sail = commands.add_parser(
        "sail", help="run an integration (HTTP server, live events, catalog)"
    )
    sail.add_argument("path", type=Path, nargs="?", default=Path("."), help="integration folder")
    sail.add_argument("-p", "--port", type=int, help="HTTP port (default 8000)")
    sail.add_argument("--host", help="HTTP host (default 127.0.0.1)")
    sail.add_argument("-l", "--log-level", help="log level (default INFO)")

    mapping = commands.add_parser("map", help="map raw items with a port app config, offline")
    mapping.add_argument("--config", type=Path, required=True, help="port-app-config.yml")
    mapping.add_argument("--kind", required=True, help="resource kind to map")
    mapping.add_argument("--input", type=Path, required=True, help="JSON array of raw items")

    events = commands.add_parser("events", help="list, replay or purge journaled events")
    actions = events.add_subparsers(dest="action", required=True)
    statuses = ["pending", "done", "no_match", "rejected", "dead"]
    listing = actions.add_parser("list", help="list events (dead letters with --status dead)")
    listing.add_argument("path", type=Path, nargs="?", default=Path("."), help="integration folder")
    listing.add_argument("--status", choices=statuses)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="JSON with payloads")
    replay = actions.add_parser("replay", help="make dead (or given) events pending again")
    replay.add_argument("path", type=Path, help="integration folder")
    replay.add_argument("seqs", type=int, nargs="*", help="event numbers (SEQ of list)")
    replay.add_argument("--all", action="store_true", help="every dead event")
    purge = actions.add_parser("purge", help="delete dead and rejected events")
    purge.add_argument("path", type=Path, nargs="?", default=Path("."), help="integration folder")
    purge.add_argument("--status", choices=["rejected", "dead", "done", "no_match"])

    emulator = commands.add_parser(
        "port-emulator", help="serve an emulator of Port's API (for trying the port sink)"
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=5555)
    emulator.add_argument("--client-id", default="client-id")
    emulator.add_argument("--client-secret", default="client-secret")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "sail":
            from ._sail import run_sail

            overrides: dict[str, Any] = {}
            http = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
            if http:
                overrides["http"] = http
            if args.log_level:
                overrides["logLevel"] = args.log_level
            return run_sail(args.path, overrides=overrides)
        if args.command == "map":
            from .mapping._cli import run_map_command

            return run_map_command(
                args.config, args.kind, args.input, stdout=sys.stdout, stderr=sys.stderr
            )
        if args.command == "port-emulator":
            from .testing._port_emulator import run_port_emulator

            return run_port_emulator(
                args.host,
                args.port,
                client_id=args.client_id,
                client_secret=args.client_secret,
            )
        if args.command == "events":
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
            )
    except OceanError as error:
        print(f"ocean-trio: {error}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
