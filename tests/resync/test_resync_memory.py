"""A resync's memory does not grow with its size: 100,000 items through the engine and the
local catalog, in a process of its own, measured with the kernel's RSS figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("resync_memory_process.py")
GROWTH_LIMIT_KB = 20 * 1024  # the bound, between 10,000 and 100,000 entities


def test_peak_rss_grows_less_than_20_mb_from_10_000_to_100_000_entities(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "100000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["status"], figures["upserted"]) == ("completed", 100_000)
    growth = figures["peak_kb"] - figures["rss_at_mark_kb"]
    assert growth < GROWTH_LIMIT_KB, figures
