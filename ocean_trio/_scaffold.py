"""``ocean-trio new NAME``: a new integration folder, made from the templates in ``scaffold/template``.

The templates ship as package data. ``@NAME@`` in any of them becomes the integration's name,
and a file named ``x-tpl`` is written as ``x``: the Python templates and the ``pyproject.toml``
carry the suffix so that the tools checking ocean-trio itself (mypy, ruff, pytest, the
architecture test's walk over ``*.py``) never take them for ocean-trio's own code. The generated
folder checks itself instead: its tests, ``mypy --strict`` and ruff pass as created
(``tests/test_scaffold.py`` runs them).
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import TextIO

from ._exceptions import OceanError

# A name is used as the folder, the integration's identifier and type, and the blueprint's
# prefix (``NAME-item``): lowercase words joined by single '-' or '_', as Port's identifiers
# and Python's module names like them.
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
MAX_NAME_LENGTH = 50
_PLACEHOLDER = "@NAME@"
_TEMPLATE_SUFFIX = "-tpl"


def check_name(name: str) -> None:
    """Raise ``OceanError`` (one line) unless ``name`` is a lowercase slug such as ``my-service``."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise OceanError(
            f"invalid integration name {name!r}: use at most {MAX_NAME_LENGTH} lowercase"
            " letters and digits, words joined by '-' or '_', starting with a letter"
            " (e.g. my-service)"
        )


def render(name: str) -> dict[PurePosixPath, str]:
    """Every file of a new integration called ``name``: its path in the folder, its text."""
    root = resources.files("ocean_trio").joinpath("scaffold", "template")
    return {
        path.with_name(path.name.removesuffix(_TEMPLATE_SUFFIX)): text.replace(_PLACEHOLDER, name)
        for path, text in _templates(root, PurePosixPath())
    }


def _templates(folder: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, str]]:
    found: list[tuple[PurePosixPath, str]] = []
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.extend(_templates(entry, prefix / entry.name))
        else:
            found.append((prefix / entry.name, entry.read_text(encoding="utf-8")))
    return found


def create_integration(name: str, parent: Path) -> list[Path]:
    """Write a new integration ``parent/name`` and return the files written, in order.

    Raises ``OceanError`` with a one-line message when the name is invalid, when
    ``parent/name`` exists and is not an empty folder, or when a file cannot be written.
    """
    check_name(name)
    target = parent / name
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        what = "is not empty" if target.is_dir() else "is not a folder"
        raise OceanError(f"cannot create the integration {name!r}: {target} exists and {what}")
    files = render(name)  # every template read before anything is written
    written: list[Path] = []
    try:
        for relative, text in files.items():
            path = target.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as error:
        where = error.filename or target
        raise OceanError(f"cannot create {where}: {error.strerror or error}") from None
    return written


def run_new_command(name: str, parent: Path, *, stdout: TextIO) -> int:
    """``ocean-trio new``: create the integration, print what was made and how to run it."""
    written = create_integration(name, parent)
    target = parent / name
    print(f"created the integration {name!r} in {target}/:", file=stdout)
    for path in written:
        print(f"  {path.relative_to(target)}", file=stdout)
    print(f"run it:  ocean-trio sail {target}", file=stdout)
    print(f"test it: cd {target} && python -m pytest", file=stdout)
    return 0
