"""What every benchmark chart uses: colours, ``Skip``, reading figures, a new Agg figure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110

CEILING, ACCEPTED, END_TO_END = "#9e9e9e", "#90caf9", "#1565c0"
# by percentile, so that p99 has one colour in every panel; others get the darkest
PERCENTILE_COLOURS = {50: "#a5d6a7", 75: "#81c784", 90: "#66bb6a", 95: "#43a047", 99: "#2e7d32"}
ROLE_COLOURS = {
    "server": "#1565c0",
    "ingress": "#ef6c00",
    "processing": "#8e24aa",
    "supervisor": "#9e9e9e",
    "instances": "#00897b",
    "redis": "#c62828",
}
OTHER_COLOURS = ["#6d4c41", "#fdd835", "#5e35b1"]
JOURNALS = {"sqlite": "SQLite", "memory": "memory", "redis": "Redis"}
TIMES = "\N{MULTIPLICATION SIGN}"


class Skip(Exception):
    """A results file (or a chart) that cannot be drawn; the message says why."""


def number(data: Mapping[str, Any], key: str) -> float:
    """``data[key]`` as a finite float; ``Skip`` when it is missing, null, NaN or not a number."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Skip(f"no {key}")
    return float(value)


def maybe_number(data: Mapping[str, Any], key: str) -> float | None:
    try:
        return number(data, key)
    except Skip:
        return None


def section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise Skip(f"no {key} section")
    return value


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # Agg: renders to PNG with no display
    return figure


def runs_text(runs: float | None) -> str:
    if runs is None:
        return ""
    return "1 run" if runs == 1 else f"medians of {runs:.0f} runs"
