"""``ocean-trio new NAME``: the folder it writes passes its own tests, mypy --strict and ruff as
created; bad names and occupied folders are refused with one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ocean_trio
from ocean_trio._cli import main

FILES = [
    ".gitignore",
    ".port/resources/blueprints.json",
    ".port/resources/port-app-config.yml",
    "README.md",
    "client.py",
    "config.yaml",
    "main.py",
    "processors.py",
    "pyproject.toml",
    "tests/test_integration.py",
]
# A source checkout (the editable install of `make test`): mypy cannot follow setuptools'
# editable import hook, so it is told where ocean_trio is, and checks it silently.
SOURCE_ROOT = Path(ocean_trio.__file__).resolve().parents[1]


def written(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()
    )


def run(folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """``python -m *args`` in ``folder``; fails the test with the output unless it exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_new_integration_passes_its_own_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "demo"
    assert written(folder) == FILES
    out = capsys.readouterr().out
    assert f"ocean-trio sail {folder}" in out
    for name in FILES:
        text = (folder / name).read_text()
        assert "@NAME@" not in text, name
    assert "identifier: demo\n" in (folder / "config.yaml").read_text()
    assert '"demo-item"' in (folder / ".port/resources/port-app-config.yml").read_text()

    # its test: a signed webhook lands in the catalog, an unsigned one is refused, resyncs
    run(folder, "pytest", "-q", "-p", "no:cacheprovider")
    run(folder, "ruff", "check", "--no-cache", ".")
    run(folder, "ruff", "format", "--no-cache", "--check", ".")
    env = dict(os.environ)
    if (SOURCE_ROOT / "pyproject.toml").is_file():
        env["MYPYPATH"] = str(SOURCE_ROOT)
    # strict (its pyproject.toml); ocean_trio is followed but its own findings are not ours
    run(folder, "mypy", "--follow-imports=silent", "--cache-dir", str(tmp_path / "mypy"), env=env)


def test_an_empty_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 0
    assert written(tmp_path / "demo") == FILES


def test_a_missing_parent_is_created(tmp_path: Path) -> None:
    assert main(["new", "my_service", "--dir", str(tmp_path / "a" / "b")]) == 0
    folder = tmp_path / "a" / "b" / "my_service"
    assert written(folder) == FILES
    assert '"my_service-item"' in (folder / ".port/resources/port-app-config.yml").read_text()


def test_a_folder_that_is_not_empty_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"ocean-trio: cannot create the integration 'demo': {tmp_path / 'demo'} exists and"
        " is not empty\n"
    )
    assert written(tmp_path / "demo") == ["notes.txt"]


def test_a_file_in_the_way_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo").write_text("mine")
    assert main(["new", "demo", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"ocean-trio: cannot create the integration 'demo': {tmp_path / 'demo'} exists and"
        " is not a folder\n"
    )


def test_a_parent_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["new", "demo", "--dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ocean-trio: cannot create {tmp_path / 'file'}")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Demo",
        "1demo",
        "my service",
        "-demo",
        "demo-",
        "my--demo",
        "my_-demo",
        "../demo",
        "dé",
        "a" * 51,
    ],
)
def test_a_bad_name_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert main(["new", "--dir", str(tmp_path), "--", name]) == 2  # "--": "-demo" is a name
    err = capsys.readouterr().err
    assert err.startswith(f"ocean-trio: invalid integration name {name!r}: ")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a", "demo", "my-service", "my_service2", "a" * 50])
def test_good_names(tmp_path: Path, name: str) -> None:
    assert main(["new", name, "--dir", str(tmp_path)]) == 0
    assert (tmp_path / name / "main.py").is_file()
