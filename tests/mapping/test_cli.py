"""``ocean-trio map``: stable JSON for a mapping checked offline, exit 2 with a message on bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocean_trio.mapping._cli import run_map_command

from .test_mapper import DOCS_EXAMPLE

FIELDS = {
    "status": {"name": "Open"},
    "comments": [{"id": "c1", "body": "hello", "author": {}}],
}
ISSUE = {"key": "PROJ-1", "fields": FIELDS}


def run(tmp_path: Path, config: str, kind: str, items: object) -> tuple[int, str, str]:
    (tmp_path / "config.yml").write_text(config)
    (tmp_path / "items.json").write_text(json.dumps(items))
    out, err = io.StringIO(), io.StringIO()
    code = run_map_command(
        tmp_path / "config.yml", kind, tmp_path / "items.json", stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def test_prints_passed_failed_errors_and_warnings_as_port_entities(tmp_path: Path) -> None:
    done = {**ISSUE, "key": "PROJ-2", "fields": {**FIELDS, "status": {"name": "Done"}}}
    # the selector fails on a string status (an error); no comments array only warns
    odd = {"key": "PROJ-4", "fields": {"status": "open", "comments": [{"id": "c4"}]}}
    code, out, err = run(tmp_path, DOCS_EXAMPLE, "issue", [ISSUE, done, {"fields": "x"}, odd])
    assert code == 0
    result = json.loads(out)
    assert list(result) == ["errors", "failed", "passed", "warnings"]
    assert [(e["identifier"], e["relations"]["issue"]) for e in result["passed"]] == [
        ("c1", "PROJ-1")
    ]
    assert [(e["identifier"], e["relations"]["issue"]) for e in result["failed"]] == [
        ("c1", "PROJ-2")
    ]
    assert [(e["item"], e["field"]) for e in result["errors"]] == [(3, "selector")]
    assert [(e["item"], e["field"]) for e in result["warnings"]] == [(2, "itemsToParse")]
    # the null author email is a misconfiguration: a warning, not part of the JSON
    assert "properties.author ('.item.author.email') gave null" in err


def test_the_output_is_stable(tmp_path: Path) -> None:
    first = run(tmp_path, DOCS_EXAMPLE, "issue", [ISSUE])
    assert run(tmp_path, DOCS_EXAMPLE, "issue", [ISSUE]) == first


@pytest.mark.parametrize(
    ("config", "kind", "items", "message"),
    [
        (DOCS_EXAMPLE, "repo", [], "no resource of kind 'repo'"),
        (DOCS_EXAMPLE, "issue", {"a": 1}, "must hold a JSON array"),
        ("resources: [{kind: issue}]", "issue", [], "selector"),
        ("resources: :", "issue", [], "not valid YAML"),
        (
            DOCS_EXAMPLE.replace(".item.id", ".item.id[["),
            "issue",
            [],
            "identifier: invalid jq",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    tmp_path: Path, config: str, kind: str, items: object, message: str
) -> None:
    code, out, err = run(tmp_path, config, kind, items)
    assert (code, out) == (2, "")
    assert message in err


def test_console_script(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(DOCS_EXAMPLE)
    (tmp_path / "items.json").write_text(json.dumps([ISSUE]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocean_trio",
            "map",
            "--config",
            str(tmp_path / "config.yml"),
            "--kind",
            "issue",
            "--input",
            str(tmp_path / "items.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"][0]["identifier"] == "c1"
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocean_trio",
            "map",
            "--config",
            str(tmp_path / "nope.yml"),
            "--kind",
            "issue",
            "--input",
            str(tmp_path / "items.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert "cannot read port app config" in missing.stderr
