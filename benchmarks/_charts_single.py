"""The charts of one results file each: resync, big bodies, soak, observed live events."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.ticker import StrMethodFormatter

from ._chart_kit import (
    ACCEPTED,
    CEILING,
    DPI,
    END_TO_END,
    Skip,
    maybe_number,
    new_figure,
    number,
    runs_text,
    section,
)


def chart_resync(data: Mapping[str, Any], path: Path) -> None:
    """Entities/s of a first and a no-change resync per sink, against mapping alone."""
    sinks = [(name, section(data, name)) for name in ("local", "port") if name in data]
    if not sinks:
        raise Skip("no local or port section")
    labels = {"local": "embedded catalog", "port": "Port API (emulator)"}
    figure = new_figure(8.0, 5.0)
    axes = figure.add_subplot()
    width = 0.36
    for offset, (resync, name, colour) in enumerate(
        [
            ("first", "first resync (every entity new)", END_TO_END),
            ("second", "no change", ACCEPTED),
        ]
    ):
        figures = [section(sink, resync) for _, sink in sinks]
        xs = [x + (offset - 0.5) * width for x in range(len(sinks))]
        bars = axes.bar(
            xs, [number(f, "entities_per_s") for f in figures], width, label=name, color=colour
        )
        axes.bar_label(
            bars, labels=[f"{number(f, 'seconds'):.1f} s" for f in figures], padding=2, fontsize=8
        )
    baseline = maybe_number(data.get("baseline") or {}, "make_and_map_per_s")
    if baseline is not None:
        axes.axhline(
            baseline, color=CEILING, linestyle="--", label="mapping alone, one core, no I/O"
        )
    ocean = maybe_number(data.get("ocean_for_scale") or {}, "first_entities_per_s")
    if ocean is not None:
        axes.axhline(ocean, color="#c62828", linestyle=":", label="Ocean, first resync (for scale)")
    axes.set_xticks(range(len(sinks)), [labels.get(name, name) for name, _ in sinks])
    axes.set_xlim(-0.9, len(sinks) - 0.1)
    axes.set_ylabel("entities per second")
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 12,000
    axes.grid(axis="y", alpha=0.3)
    axes.margins(y=0.12)
    axes.legend(fontsize=8)
    entities = maybe_number(data, "entities")
    page = maybe_number(data, "page_size")
    runs = maybe_number(data, "runs")
    details = [
        f"{entities:,.0f} entities" if entities is not None else "",
        f"pages of {page:.0f}" if page is not None else "",
        runs_text(runs),
        "bar labels: resync duration",
    ]
    figure.suptitle("Resync: entities written per second", fontweight="bold")
    axes.set_title("; ".join(d for d in details if d), fontsize=9)
    figure.savefig(path, dpi=DPI)


def chart_big_bodies(data: Mapping[str, Any], path: Path) -> None:
    """Small events' latencies per phase: does a big webhook delay everyone else?"""
    phases = section(data, "phases")
    if not phases:
        raise Skip("no phases")
    series = [
        ("ingress_p50_ms", "ingress p50 (due → 202)", ACCEPTED),
        ("ingress_p99_ms", "ingress p99", "#42a5f5"),
        ("applied_p50_ms", "applied p50 (due → in catalog)", "#a5d6a7"),
        ("applied_p99_ms", "applied p99", "#2e7d32"),
    ]
    names = list(phases)
    figure = new_figure(max(7.0, 2.2 * len(names) + 2), 5.0)
    axes = figure.add_subplot()
    width = 0.8 / len(series)
    for index, (key, label, colour) in enumerate(series):
        values = [number(section(phases, name), key) for name in names]
        xs = [x + (index - (len(series) - 1) / 2) * width for x in range(len(names))]
        bars = axes.bar(xs, values, width, label=label, color=colour)
        axes.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2, fontsize=7)
    axes.set_xticks(range(len(names)), [name.replace("_", " ") for name in names])
    axes.set_ylabel("milliseconds (small ~1 KB events)")
    axes.grid(axis="y", alpha=0.3)
    axes.margins(y=0.12)
    axes.legend(fontsize=8, loc="upper left")
    big = maybe_number(data, "big_bytes")
    small_rate = maybe_number(data, "small_rate")
    big_rate = maybe_number(data, "big_rate")
    duration = maybe_number(data, "duration_s")
    details = [
        f"small events at {small_rate:.0f}/s" if small_rate is not None else "",
        f"big ones of {_size(big)} at {big_rate:g}/s"
        if big is not None and big_rate is not None
        else "",
        f"{duration:g} s phases" if duration is not None else "",
        runs_text(maybe_number(data, "runs")),
    ]
    figure.suptitle(
        "Big bodies: small events' latency while big webhooks arrive", fontweight="bold"
    )
    axes.set_title(", ".join(d for d in details if d), fontsize=9)
    figure.savefig(path, dpi=DPI)


def _size(size: float) -> str:
    """``5 MiB`` for a size the benchmark set in MiB (its default), else ``1.0 MB``."""
    if size % 2**20 == 0:
        return f"{size / 2**20:.0f} MiB"
    return f"{size / 1e6:.1f} MB"


def chart_soak(data: Mapping[str, Any], path: Path) -> None:
    """Resident memory after 10,000 events and at the end of the soak."""
    events = number(data, "events")
    at_end = number(data, "rss_at_end_mb")
    after = maybe_number(data, "rss_after_10000_mb")
    labels = [f"at the end\n({events:,.0f} events)"]
    values = [at_end]
    if after is not None:
        labels.insert(0, "after 10,000 events")
        values.insert(0, after)
    figure = new_figure(6.0, 4.6)
    axes = figure.add_subplot()
    colours = [ACCEPTED, END_TO_END][-len(values) :]
    bars = axes.bar(range(len(values)), values, 0.5, color=colours)
    axes.bar_label(bars, labels=[f"{v:.1f} MB" for v in values])
    axes.set_xticks(range(len(values)), labels)
    axes.set_xlim(-0.75, len(values) - 0.25)
    axes.set_ylabel("server RSS, MB")
    axes.set_ylim(0, max(values) * 1.2)
    axes.grid(axis="y", alpha=0.3)
    rate = maybe_number(data, "end_to_end_rate")
    lost = maybe_number(data, "lost_events")
    refused = maybe_number(data, "refused_503")
    growth = (
        "fewer than 10,000 events: no growth figure"
        if after is None
        else f"growth {at_end - after:+.1f} MB"
    )
    details = [
        f"{rate:,.0f} events/s end to end" if rate is not None else "",
        f"{lost:.0f} lost" if lost is not None else "",
        f"{refused:.0f} refused (503)" if refused is not None else "",
    ]
    figure.suptitle("Soak: server memory over a long run", fontweight="bold")
    axes.set_title(growth + "\n" + ", ".join(d for d in details if d), fontsize=9)
    figure.savefig(path, dpi=DPI)


def chart_observed(data: Mapping[str, Any], path: Path) -> None:
    """End-to-end rate per run with and without /metrics scraped and two live-page clients."""
    runs = section(data, "per_run")
    plain = [number(r, "end_to_end_rate") for r in runs.get("plain", [])]
    observed = [number(r, "end_to_end_rate") for r in runs.get("observed", [])]
    if not plain or len(plain) != len(observed):
        raise Skip("no per-run rates")
    ratio = number(data, "ratio_observed_to_plain")
    figure = new_figure(7.0, 4.6)
    axes = figure.add_subplot()
    width = 0.38
    xs = range(len(plain))
    alone = axes.bar([x - width / 2 for x in xs], plain, width, color=ACCEPTED, label="alone")
    watched = axes.bar(
        [x + width / 2 for x in xs],
        observed,
        width,
        color=END_TO_END,
        label="/metrics every 1 s + 2 live-page clients",
    )
    for bars in (alone, watched):
        axes.bar_label(bars, labels=[f"{b.get_height():,.0f}" for b in bars], fontsize=8)
    axes.set_xticks(list(xs), [f"run {n + 1}" for n in xs])
    axes.set_ylabel("end to end, events/s")
    axes.set_ylim(0, max(plain + observed) * 1.25)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    events = maybe_number(data, "events")
    shape = f"{events:,.0f} events per run, " if events is not None else ""
    figure.suptitle("Live events watched: the cost of metrics and the live page", fontweight="bold")
    axes.set_title(
        f"{shape}median ratio observed / alone {ratio:.2f} (target: at least 0.95)", fontsize=9
    )
    figure.savefig(path, dpi=DPI)
