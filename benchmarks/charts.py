"""PNG charts of the benchmarks' JSON results: ``python -m benchmarks.charts [--results DIR]``.

Reads every ``*.json`` in ``benchmarks/results/`` (or ``DIR``) and writes, next to them:

- ``live_events_throughput.png``: each live-events mode's ceiling, accept and end-to-end rates,
  the end-to-end / ceiling ratio printed on its bar;
- ``live_events_latency.png``: POST → applied percentiles per mode, at half rate and saturated;
- ``live_events_cost.png``: CPU per event and peak RSS per mode, by process role;
- ``resync.png``, ``big_bodies.png``, ``live_events_soak.png``, ``live_events_observed.png``:
  one chart per benchmark (``_charts_single``).

A file that is not JSON, or lacks the figures a chart needs (an older format), is skipped with
a line saying why, and the other charts are still drawn. Drawing uses matplotlib's Agg canvas
directly (no pyplot, no display, no global state).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from matplotlib.axes import Axes
from matplotlib.ticker import StrMethodFormatter

from ._chart_kit import (
    ACCEPTED,
    CEILING,
    DPI,
    END_TO_END,
    JOURNALS,
    OTHER_COLOURS,
    PERCENTILE_COLOURS,
    ROLE_COLOURS,
    TIMES,
    Skip,
    maybe_number,
    new_figure,
    number,
    runs_text,
)
from ._charts_single import chart_big_bodies, chart_observed, chart_resync, chart_soak
from ._common import RESULTS

_LATENCY_KEY = re.compile(r"(?P<load>saturated|half_rate)_latency_p(?P<percentile>\d+)_ms")
_LIVE = {"live_events", "live_events_split", "live_events_redis", "live_events_port_sink"}


@attrs.frozen
class LiveMode:
    """One live-events results file: how it ran (``label``) and its summary figures."""

    file: str
    label: str
    order: tuple[int, int]
    data: Mapping[str, Any]


def load_results(folder: Path) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """Every JSON object in ``folder`` by file name, and a line per file left out."""
    found: dict[str, Mapping[str, Any]] = {}
    skipped: list[str] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            skipped.append(f"skipped {path.name}: not readable JSON ({error})")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("benchmark"), str):
            skipped.append(f"skipped {path.name}: not a benchmark result (no 'benchmark' name)")
            continue
        found[path.name] = data
    return found, skipped


def live_mode(file: str, data: Mapping[str, Any]) -> LiveMode:
    """Name a live-events run after how it ran: journal, topology, instances, sink."""
    kind = data["benchmark"]
    if kind == "live_events_split":
        count = int(number(data, "ingress_processes"))
        return LiveMode(file, f"split\n{count} ingress + 1\nprocessing", (2, count), data)
    if kind == "live_events_redis":
        count = int(number(data, "instances"))
        plural = "instance" if count == 1 else "instances"
        return LiveMode(file, f"Redis journal\n{count} {plural}", (3, count), data)
    if kind == "live_events_port_sink":
        workers = int(number(data, "event_workers_count"))
        plural = "worker" if workers == 1 else "workers"
        return LiveMode(file, f"Port sink\n(emulator,\n{workers} {plural})", (4, 0), data)
    journal = str(data.get("journal", file.removeprefix("live_events_").removesuffix(".json")))
    order = 0 if journal == "sqlite" else 1
    name = JOURNALS.get(journal, journal)
    return LiveMode(file, f"single process\n{name} journal", (order, 0), data)


def runs_note(modes: Sequence[LiveMode]) -> str:
    """``"20,000 events, medians of 3 runs"`` when every mode ran alike; ``""`` if unknown."""
    shapes = {(maybe_number(m.data, "events"), maybe_number(m.data, "runs")) for m in modes}
    if len(shapes) != 1:
        return "medians over each mode's runs"
    [(events, runs)] = shapes
    if events is None or runs is None:
        return ""
    return f"{events:,.0f} events, {runs_text(runs)}"


def _usable(
    modes: Sequence[LiveMode], chart: str, figures: Callable[[LiveMode], object]
) -> tuple[list[LiveMode], list[str]]:
    """The modes whose ``figures`` can be read, and a note for each one left out."""
    usable, notes = [], []
    for mode in modes:
        try:
            figures(mode)
        except (Skip, KeyError, TypeError, ValueError) as error:
            notes.append(f"{mode.file} left out of {chart}: {_reason(error)}")
        else:
            usable.append(mode)
    if not usable:
        raise Skip("no live-events result has its figures")
    return usable, notes


@attrs.frozen
class Throughput:
    ceiling: float
    accepted: float
    end_to_end: float
    ratio: float

    @classmethod
    def of(cls, mode: LiveMode) -> Throughput:
        data = mode.data
        return cls(
            number(data, "ceiling_rate"),
            number(data, "accept_rate"),
            number(data, "end_to_end_rate"),
            number(data, "ratio_end_to_end_to_ceiling"),
        )


def chart_throughput(modes: Sequence[LiveMode], path: Path) -> list[str]:
    """Grouped bars: ceiling, accepted, end to end; the end-to-end / ceiling ratio on top."""
    modes, notes = _usable(modes, path.name, Throughput.of)
    rows = [Throughput.of(mode) for mode in modes]
    figure = new_figure(max(7.0, 1.5 * len(rows) + 2), 5.2)
    axes = figure.add_subplot()
    width = 0.27
    xs = range(len(rows))
    series = [
        ("HTTP ceiling (bare app)", CEILING, [row.ceiling for row in rows]),
        ("accepted (202)", ACCEPTED, [row.accepted for row in rows]),
        ("end to end (POST → in catalog)", END_TO_END, [row.end_to_end for row in rows]),
    ]
    for offset, (name, colour, values) in enumerate(series):
        bars = axes.bar(
            [x + (offset - 1) * width for x in xs], values, width, label=name, color=colour
        )
    axes.bar_label(  # on the last series: end to end
        bars,
        labels=[f"{row.ratio:.2f}{TIMES}" for row in rows],
        padding=3,
        fontsize=9,
        fontweight="bold",
    )
    axes.set_xticks(list(xs), [mode.label for mode in modes], fontsize=8)
    axes.set_ylabel("events per second (requests/s for the ceiling)")
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 12,000
    axes.set_ylim(0, max(row.ceiling for row in rows) * 1.15)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    note = runs_note(modes)
    figure.suptitle("Live events: throughput against the HTTP ceiling", fontweight="bold")
    axes.set_title(
        "bold: end to end ÷ ceiling (median of per-run ratios)" + (f"; {note}" if note else ""),
        fontsize=9,
    )
    figure.savefig(path, dpi=DPI)
    return notes


def latencies(data: Mapping[str, Any], load: str) -> dict[int, float]:
    """The POST → applied percentiles of one load (``half_rate``, ``saturated``), in ms."""
    found = {}
    for key in data:
        match = _LATENCY_KEY.fullmatch(key)
        if match and match["load"] == load and (value := maybe_number(data, key)) is not None:
            found[int(match["percentile"])] = value
    return dict(sorted(found.items()))


def chart_latency(modes: Sequence[LiveMode], path: Path) -> list[str]:
    """Per mode, the percentiles at half rate and saturated, in two panels."""
    loads = [
        ("half_rate", "at half the end-to-end rate (open loop)"),
        ("saturated", "saturated: open loop at the maximum rate (mostly queueing)"),
    ]

    def figures(mode: LiveMode) -> None:
        if not any(latencies(mode.data, load) for load, _ in loads):
            raise Skip("no latency percentiles")

    modes, notes = _usable(modes, path.name, figures)
    figure = new_figure(max(8.0, 1.4 * len(modes) + 2), 8.0)
    panels = figure.subplots(2, 1)
    for axes, (load, title) in zip(panels, loads, strict=True):
        _latency_panel(axes, modes, load, title)
    figure.suptitle("Live events: POST → entity in the catalog, latency", fontweight="bold")
    figure.savefig(path, dpi=DPI)
    return notes


def _latency_panel(axes: Axes, modes: Sequence[LiveMode], load: str, title: str) -> None:
    percentiles = sorted({p for m in modes for p in latencies(m.data, load)})
    width = 0.8 / max(1, len(percentiles))
    for index, percentile in enumerate(percentiles):
        values = [latencies(m.data, load).get(percentile, math.nan) for m in modes]
        xs = [x + (index - (len(percentiles) - 1) / 2) * width for x in range(len(modes))]
        colour = PERCENTILE_COLOURS.get(percentile, "#1b5e20")
        bars = axes.bar(xs, values, width, label=f"p{percentile}", color=colour)
        labels = ["" if math.isnan(v) else f"{v:.0f}" for v in values]
        axes.bar_label(bars, labels=labels, padding=2, fontsize=7)
    labels = [m.label for m in modes]
    if load == "half_rate":  # the rate each mode was loaded at
        rates = [maybe_number(m.data, "half_rate_events_per_s") for m in modes]
        labels = [
            label if rate is None else f"{label}\n({rate:,.0f} events/s)"
            for label, rate in zip(labels, rates, strict=True)
        ]
    axes.set_xticks(range(len(modes)), labels, fontsize=8)
    axes.set_ylabel("milliseconds")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.margins(y=0.12)
    axes.legend(fontsize=8, loc="upper left")


def by_role(data: Mapping[str, Any], key: str) -> dict[str, float]:
    """``key_by_role`` when the run had several processes, else ``{"server": key}``."""
    roles = data.get(f"{key}_by_role")
    if isinstance(roles, Mapping) and roles:
        return {str(role): number(roles, role) for role in roles}
    return {"server": number(data, key)}


def chart_cost(modes: Sequence[LiveMode], path: Path) -> list[str]:
    """Stacked by role: CPU milliseconds per event, and peak RSS, per mode."""
    keys = ("cpu_ms_per_event", "peak_rss_mb")
    modes, notes = _usable(modes, path.name, lambda mode: [by_role(mode.data, k) for k in keys])
    figure = new_figure(max(9.0, 1.8 * len(modes) + 2), 5.2)
    panels = figure.subplots(1, 2)
    for axes, (key, unit, title) in zip(
        panels,
        [
            ("cpu_ms_per_event", "CPU milliseconds per event", "CPU per event"),
            ("peak_rss_mb", "MB (peak RSS, summed over processes)", "peak memory"),
        ],
        strict=True,
    ):
        values = [by_role(m.data, key) for m in modes]
        roles = list(dict.fromkeys(role for value in values for role in value))
        bottoms = [0.0] * len(modes)
        for index, role in enumerate(roles):
            heights = [value.get(role, 0.0) for value in values]
            colour = ROLE_COLOURS.get(role, OTHER_COLOURS[index % len(OTHER_COLOURS)])
            axes.bar(range(len(modes)), heights, 0.6, bottom=bottoms, label=role, color=colour)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        for x, total in enumerate(bottoms):
            axes.annotate(f"{total:.1f}", (x, total), ha="center", va="bottom", fontsize=8)
        axes.set_xticks(range(len(modes)), [m.label for m in modes], fontsize=7)
        axes.set_ylabel(unit)
        axes.set_title(title, fontsize=10)
        axes.set_ylim(0, max(bottoms) * 1.12)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=8, title="process role", title_fontsize=8, loc="upper left")
    figure.suptitle("Live events: what an event costs, by process role", fontweight="bold")
    figure.savefig(path, dpi=DPI)
    return notes


def draw(folder: Path, out: Callable[[str], None]) -> list[Path]:
    """Draw every chart the results in ``folder`` allow; report each file and skip with ``out``."""
    results, skipped = load_results(folder)
    for line in skipped:
        out(line)
    written: list[Path] = []
    modes: list[LiveMode] = []
    single: dict[str, tuple[str, Callable[[Mapping[str, Any], Path], None]]] = {
        "resync": ("resync.png", chart_resync),
        "big_bodies": ("big_bodies.png", chart_big_bodies),
        "live_events_soak": ("live_events_soak.png", chart_soak),
        "live_events_observed": ("live_events_observed.png", chart_observed),
    }
    for file, data in results.items():
        kind = data["benchmark"]
        try:
            if kind in _LIVE:
                modes.append(live_mode(file, data))
            elif kind in single:
                name, chart = single[kind]
                chart(data, folder / name)
                written.append(folder / name)
            else:
                out(f"skipped {file}: no chart for benchmark {kind!r}")
        except (Skip, KeyError, TypeError, ValueError) as error:
            out(f"skipped {file}: {_reason(error)} (an older format?)")
    modes.sort(key=lambda mode: mode.order)
    live_charts: list[tuple[str, Callable[[Sequence[LiveMode], Path], list[str]]]] = [
        ("live_events_throughput.png", chart_throughput),
        ("live_events_latency.png", chart_latency),
        ("live_events_cost.png", chart_cost),
    ]
    if not modes:
        out("no live-events results: no live-events charts")
        live_charts = []
    for name, live_chart in live_charts:
        try:
            notes = live_chart(modes, folder / name)
        except Skip as error:
            out(f"skipped {name}: {error}")
            continue
        for note in notes:
            out(f"note: {note}")
        written.append(folder / name)
    for path in written:
        out(f"wrote {path}")
    return written


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, Skip) else f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.charts", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, metavar="DIR", help="folder of results JSON"
    )
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"no results folder {args.results}: nothing to chart", file=sys.stderr)
        return 0
    if not draw(args.results, print):
        print(f"no chart drawn from {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
