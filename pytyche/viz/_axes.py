"""Shared plumbing of the viz primitives: lazy matplotlib and the ``ax=None`` convention."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """Import matplotlib.pyplot on first use (``import pytyche`` never imports matplotlib)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def get_ax(ax: Any, figsize: tuple[float, float]) -> Any:
    """Return ``ax`` or, when ``None``, the axes of a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax
    plt = pyplot()
    _, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return new_ax


def policy_label(policy: Any) -> str:
    """Short readable description of a cell's policy."""
    name = type(policy).__name__
    over = getattr(policy, "over", None)
    if over:
        return f"{name.replace('Policy', '')} over {', '.join(map(str, over))}"
    if name == "TreePolicy":
        amap = getattr(policy, "allocation_map", None) or {}
        n = len(amap)
        return f"Tree ({n} segment{'' if n == 1 else 's'}, Thompson)"
    return name.replace("Policy", "") or name
