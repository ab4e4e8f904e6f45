"""``ocean-trio map``: check a mapping offline against raw items, printing stable JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from .._exceptions import ConfigError, MappingError
from ._compiled import CompiledPortAppConfig
from ._mapper import CalculationResult
from ._models import load_port_app_config


def run_map_command(
    config: Path, kind: str, input_path: Path, *, stdout: TextIO, stderr: TextIO
) -> int:
    """Map ``input_path`` (a JSON array of raw items) with every resource of ``kind``.

    Prints ``{"passed": [...], "failed": [...], "errors": [...], "warnings": [...]}``
    (entities in Port's shape, ``parse_all`` as in live events); fields that came out null are
    also warned about on stderr.
    Returns 0, or 2 when the config, the kind or the input is invalid.
    """
    try:
        compiled = CompiledPortAppConfig.compile(load_port_app_config(config))
    except (ConfigError, MappingError) as error:
        print(f"error: {error}", file=stderr)
        return 2
    mappers = compiled.mappers_of_kind(kind)
    if not mappers:
        kinds = sorted({r.kind for r in compiled.config.resources})
        print(f"error: no resource of kind {kind!r} in {config} (kinds: {kinds})", file=stderr)
        return 2
    try:
        items = json.loads(input_path.read_text(encoding="utf-8"))
    except OSError as error:
        print(f"error: cannot read {input_path}: {error.strerror}", file=stderr)
        return 2
    except ValueError as error:
        print(f"error: {input_path} is not valid JSON: {error}", file=stderr)
        return 2
    if not isinstance(items, list):
        print(f"error: {input_path} must hold a JSON array of raw items", file=stderr)
        return 2
    total = CalculationResult()
    for mapper in mappers:
        result = mapper.map_items(items, parse_all=True)
        total.passed += result.passed
        total.failed += result.failed
        total.errors += result.errors
        total.warnings += result.warnings
        for field, expression in result.misconfigurations.items():
            print(
                f"warning: resources[{mapper.index}]: {field} ({expression!r}) gave null",
                file=stderr,
            )
        if result.dropped:
            print(
                f"warning: resources[{mapper.index}]: {result.dropped} item(s) dropped "
                "(empty identifier or blueprint)",
                file=stderr,
            )
    json.dump(total.to_json(), stdout, indent=2, sort_keys=True, ensure_ascii=False)
    stdout.write("\n")
    return 0
