"""Process-tree helpers for the benchmarks (Linux ``/proc``): find, measure and end descendants.

A benchmark that starts Ray (:mod:`bench.bench_lockstep`) measures its actors' peak memory from
outside them, and a driver that runs sections under a deadline (:mod:`bench.device_check`) ends
a section's whole process tree (a Ray head and its actors included) when it overruns. Only the
processes below a given pid are ever touched, so another Ray on the same machine is left alone.
On a system without ``/proc`` every function finds nothing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["descendants", "end_tree", "peak_rss_mib", "process_title"]


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: ``[state, ppid, ...]``; ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
    return stat[stat.rindex(")") + 2:].split()


def _parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has exited; only its parent's wait is left


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), parents first."""
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []
    children: dict[int, list[int]] = {}
    for p in pids:
        parent = _parent_of(p)
        if parent is not None:
            children.setdefault(parent, []).append(p)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def process_title(pid: int) -> str:
    """The process's command line as it shows it (Ray rewrites an actor's to ``ray::Class.method``)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size so far (``VmHWM``), in MiB; ``None`` once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def end_tree(pid: int, grace: float = 5.0) -> list[int]:
    """End ``pid`` and every process below it: SIGTERM, then SIGKILL after ``grace`` seconds.

    The tree is listed before the first signal, so processes a dying parent leaves behind (a Ray
    head's raylet and workers) are still ended. Returns the pids signalled.
    """
    tree = [pid, *descendants(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in tree:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_alive(p) for p in tree):
                time.sleep(0.2)
    return tree
