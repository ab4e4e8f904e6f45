"""What ``/proc`` says about the processes a benchmark started: a process tree, resident
memory and CPU time (Linux only, as every benchmark here)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first; processes gone meanwhile are left out."""
    found = [pid]
    for parent in found:  # grows while iterated: a breadth-first walk
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                found += [int(child) for child in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
    return [p for p in found if Path(f"/proc/{p}").exists()]


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def _status_mb(pid: int, field: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB; 0 once it is gone."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), MB; 0 once it is gone."""
    return _status_mb(pid, "VmRSS:")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its own threads, not its children's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}
