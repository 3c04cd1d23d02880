"""``plot_cells``: one round's cell structure as a horizontal bar chart of weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytyche.viz._axes import get_ax, policy_label

_COLORS = {"control": "#7f7f7f", "explore": "#1f77b4"}


def _cells_of(cells: Any) -> Sequence[Any]:
    cells = getattr(cells, "cells", cells)  # a NextRoundPlan or a list of cells
    if isinstance(cells, (str, bytes)) or not isinstance(cells, Sequence) or not cells:
        raise ValueError("The 'cells' parameter of plot_cells must be a non-empty list of Cell (or a NextRoundPlan).")
    for c in cells:
        if not all(hasattr(c, a) for a in ("id", "weight", "policy")):
            raise TypeError(f"The 'cells' parameter of plot_cells must hold Cell objects. Got {type(c).__name__} instead.")
    return cells


def plot_cells(cells: Any, ax: Any = None, *, title: str | None = None) -> Any:
    """Horizontal bar chart of cell weights for one round.

    Parameters
    ----------
    cells
        The round's cells (``list[Cell]``) or a ``NextRoundPlan``.
    ax
        Matplotlib axes to draw on; ``None`` creates a new figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    cells = _cells_of(cells)
    ax = get_ax(ax, (7, 0.6 * len(cells) + 1.4))
    labels = [f"{c.id}\n({policy_label(c.policy)})" for c in cells]
    weights = [float(c.weight) * 100 for c in cells]
    colors = [_COLORS.get(str(c.id), "#2ca02c") for c in cells]
    y = range(len(cells))
    bars = ax.barh(list(y), weights, color=colors)
    for bar, w in zip(bars, weights):
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{w:.0f}%", va="center", fontsize=9)
    ax.set_yticks(list(y), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("share of the round's visitors (%)")
    ax.set_title(title or "Cells this round")
    ax.spines[["top", "right"]].set_visible(False)
    return ax
