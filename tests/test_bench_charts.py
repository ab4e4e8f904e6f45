"""``python -m benchmarks.charts``: PNGs from a small synthetic results folder; a file that is not
JSON, or of an older format, is skipped with a line saying so, and the other charts are drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.charts import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = [
    "big_bodies.png",
    "live_events_cost.png",
    "live_events_latency.png",
    "live_events_observed.png",
    "live_events_soak.png",
    "live_events_throughput.png",
    "resync.png",
]


def live(benchmark: str, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "events": 2000,
        "runs": 1,
        "ceiling_rate": 1300.0,
        "accept_rate": 800.0,
        "end_to_end_rate": 790.0,
        "ratio_end_to_end_to_ceiling": 0.61,
        "saturated_latency_p50_ms": 50.0,
        "saturated_latency_p90_ms": 90.0,
        "saturated_latency_p99_ms": 130.0,
        "half_rate_events_per_s": 395.0,
        "half_rate_latency_p50_ms": 9.0,
        "half_rate_latency_p99_ms": 40.0,
        "peak_rss_mb": 80.0,
        "cpu_ms_per_event": 1.4,
        **extra,
    }


def phase(scale: float) -> dict[str, float]:
    return {
        "ingress_p50_ms": 3.0 * scale,
        "ingress_p99_ms": 4.0 * scale,
        "applied_p50_ms": 2.8 * scale,
        "applied_p99_ms": 4.1 * scale,
    }


def resync(seconds: float) -> dict[str, float]:
    return {"seconds": seconds, "entities_per_s": 5000 / seconds}


RESULTS: dict[str, Any] = {
    "live_events_sqlite.json": live("live_events", journal="sqlite"),
    "live_events_split_2.json": live(
        "live_events_split",
        ingress_processes=2,
        cpu_ms_per_event_by_role={"ingress": 1.0, "processing": 0.5, "supervisor": 0.0},
        peak_rss_mb_by_role={"ingress": 146.0, "processing": 77.0, "supervisor": 70.0},
    ),
    "live_events_redis_2.json": live(
        "live_events_redis",
        instances=2,
        cpu_ms_per_event_by_role={"instances": 2.2, "redis": 0.1},
        peak_rss_mb_by_role={"instances": 150.0, "redis": 13.0},
    ),
    # no latency or CPU figures: only in the throughput chart
    "live_events_port_sink.json": {
        "benchmark": "live_events_port_sink",
        "event_workers_count": 1,
        "ceiling_rate": 1700.0,
        "accept_rate": 760.0,
        "end_to_end_rate": 750.0,
        "ratio_end_to_end_to_ceiling": 0.48,
        "peak_rss_mb": 67.0,
    },
    "live_events_observed.json": {
        "benchmark": "live_events_observed",
        "events": 2000,
        "ratio_observed_to_plain": 0.99,
        "per_run": {
            "plain": [{"end_to_end_rate": 700.0}, {"end_to_end_rate": 720.0}],
            "observed": [{"end_to_end_rate": 690.0}, {"end_to_end_rate": 715.0}],
        },
    },
    "live_events_soak.json": {
        "benchmark": "live_events_soak",
        "events": 200000,
        "end_to_end_rate": 1200.0,
        "rss_after_10000_mb": 85.1,
        "rss_at_end_mb": 94.4,
        "lost_events": 0,
    },
    "big_bodies.json": {
        "benchmark": "big_bodies",
        "small_rate": 200.0,
        "big_rate": 2.0,
        "big_bytes": 5242880,
        "phases": {"baseline": phase(1), "big_string": phase(3), "big_structured": phase(5)},
    },
    "resync.json": {
        "benchmark": "resync",
        "entities": 5000,
        "page_size": 100,
        "runs": 3,
        "baseline": {"make_and_map_per_s": 13000.0},
        "local": {"first": resync(0.7), "second": resync(0.6)},
        "port": {"first": resync(3.8), "second": resync(1.4)},
        "ocean_for_scale": {"first_entities_per_s": 900},
    },
}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for name, data in RESULTS.items():
        (folder / name).write_text(json.dumps(data))
    return folder


def pngs(folder: Path) -> list[str]:
    found = sorted(path.name for path in folder.glob("*.png"))
    for name in found:
        assert (folder / name).read_bytes().startswith(PNG_MAGIC), name
    return found


def test_every_chart_is_drawn(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(results)]) == 0
    assert pngs(results) == CHARTS
    out = capsys.readouterr().out.splitlines()
    assert sorted(line for line in out if line.startswith("wrote ")) == [
        f"wrote {results / name}" for name in CHARTS
    ]
    assert (
        "note: live_events_port_sink.json left out of live_events_latency.png:"
        " no latency percentiles"
    ) in out
    assert not [line for line in out if line.startswith("skipped")]


def test_bad_and_older_files_are_skipped_with_a_line(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (results / "broken.json").write_text('{"benchmark": "live_events", "ceiling_')
    (results / "list.json").write_text("[1, 2]")
    # an older live-events file: no ceiling measured, no ratio
    (results / "live_events_memory.json").write_text(
        json.dumps({"benchmark": "live_events", "journal": "memory", "end_to_end_rate": 900.0})
    )
    # an older resync file: figures under other names
    (results / "resync.json").write_text(json.dumps({"benchmark": "resync", "local": {}}))
    (results / "future.json").write_text(json.dumps({"benchmark": "something_new"}))

    assert main(["--results", str(results)]) == 0
    assert pngs(results) == [name for name in CHARTS if name != "resync.png"]
    out = capsys.readouterr().out
    assert "skipped broken.json: not readable JSON (" in out
    assert "skipped list.json: not a benchmark result (no 'benchmark' name)" in out
    assert "skipped resync.json: no first section (an older format?)" in out
    assert "skipped future.json: no chart for benchmark 'something_new'" in out
    assert (
        "note: live_events_memory.json left out of live_events_throughput.png: no ceiling_rate"
        in out
    )


def test_an_empty_or_missing_folder_draws_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--results", str(tmp_path)]) == 0
    assert pngs(tmp_path) == []
    captured = capsys.readouterr()
    assert captured.out == "no live-events results: no live-events charts\n"
    assert captured.err == f"no chart drawn from {tmp_path}\n"

    assert main(["--results", str(tmp_path / "missing")]) == 0
    assert (
        capsys.readouterr().err == f"no results folder {tmp_path / 'missing'}: nothing to chart\n"
    )


def test_python_m_benchmarks_charts(results: Path) -> None:
    for name in list(RESULTS)[1:]:
        (results / name).unlink()  # one file: the quickest run
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.charts", "--results", str(results)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert pngs(results) == [
        "live_events_cost.png",
        "live_events_latency.png",
        "live_events_throughput.png",
    ]
