"""The docs name event statuses as the code does (``EventStatus``), never a status it lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocean_trio import EventStatus
from ocean_trio.live_events._run import RunStatus

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

EVENT_STATUSES = {s.value for s in EventStatus}
# What a *run* (one processor on one resource) can end as, but an event cannot: ``failed``
# and friends are fine after "run", never as an event's status.
RUN_ONLY_STATUSES = {s.value for s in RunStatus} - EVENT_STATUSES

_BACKTICKED = re.compile(r"`([a-z_]+)`")
# Statuses in commands and requests: `--status dead`, `?status=dead`, `"statuses": ["dead"]`.
_GIVEN = re.compile(r"--status (\w+)|[?&]status=(\w+)")
_STATUS_LIST = re.compile(r'"statuses":\s*\[([^\]]*)\]')
# A resync ends running/completed/failed/aborted (Ocean's resync statuses).
_RESYNC_STATUSES = re.compile(r"`(running|completed|aborted)`")


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_statuses_checked_are_the_codes() -> None:
    assert sorted(EVENT_STATUSES) == ["dead", "done", "no_match", "pending", "rejected"]
    assert "failed" in RUN_ONLY_STATUSES  # what the docs must not give an event
    assert len(DOCS) > 5


def misused_statuses(text: str) -> list[str]:
    """Each place ``text`` gives a status only runs have as if it were an event's."""
    found = []
    for line_number, line in enumerate(text.splitlines(), 1):
        for match in _BACKTICKED.finditer(line):
            word = match.group(1)
            if word not in RUN_ONLY_STATUSES:
                continue
            before = line[: match.start()]
            if before.endswith("run "):
                continue  # a run's status, as RunStatus has it
            if re.fullmatch(r"\s*- ", before) and line[match.end() :].startswith(":"):
                continue  # a bullet defining a field of that name (the map command's output)
            if "resync" in line.lower() or _RESYNC_STATUSES.search(line):
                continue  # a resync's status (running, completed, failed, aborted), not an event's
            found.append(f"line {line_number}: {line.strip()}")
    return found


def test_the_checker_finds_failed_used_as_an_event_status() -> None:
    assert misused_statuses("the event's status is then `failed`.") == [
        "line 1: the event's status is then `failed`."
    ]
    assert misused_statuses("| `failed` | gave up |") != []
    assert misused_statuses("| situation | run `failed` (the error is kept) |") == []
    assert misused_statuses("- `failed`: entities whose item fails it;") == []
    assert misused_statuses("its status (`running`, `completed`, `failed` or `aborted`)") == []
    assert misused_statuses("a resync that ends `failed` deletes nothing") == []
    assert misused_statuses("the event is `dead`") == []


@pytest.mark.parametrize("path", DOCS, ids=_doc_id)
def test_docs_use_only_the_event_statuses_the_code_has(path: Path) -> None:
    text = path.read_text()
    assert misused_statuses(text) == []
    given = [a or b for a, b in _GIVEN.findall(text)]
    for listed in _STATUS_LIST.findall(text):
        given += re.findall(r'"(\w+)"', listed)
    assert set(given) <= EVENT_STATUSES, given


def test_the_operations_guide_lists_every_final_status() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    header = "| status | meaning | kept |"
    assert header in text
    table = text.split(header, 1)[1].split("\n\n", 1)[0]
    listed = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", table, re.MULTILINE)}
    assert listed == EVENT_STATUSES - {"pending"}
    assert "*pending*" in text.split(header, 1)[0]
