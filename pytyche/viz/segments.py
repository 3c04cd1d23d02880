"""``plot_segment_intervals``: forest plot of per-segment GATEs with 80% credible intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytyche.viz._axes import get_ax


def _wrap(text: str, width: int = 38) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def plot_segment_intervals(segments: Any, ax: Any = None, *, unit: str = "") -> Any:
    """Forest plot of per-segment GATE estimates and their 80% credible intervals.

    Parameters
    ----------
    segments
        ``DiscoveredSegment`` list (e.g. ``PolicyTreeResult.segments`` or ``AnalysisResult.segments``);
        a ``PolicyTreeResult`` or ``AnalysisResult`` is accepted too.
    ax
        Matplotlib axes; ``None`` creates a new figure.
    unit
        Unit label of the effect (e.g. ``"$ per visitor"``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    segments = getattr(segments, "segments", segments)
    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence) or not segments:
        raise ValueError("The 'segments' parameter of plot_segment_intervals must be a non-empty list of DiscoveredSegment.")
    treatments = list(segments[0].gate_estimate)
    ax = get_ax(ax, (8, 0.9 * len(segments) * max(1, len(treatments)) ** 0.5 + 1.5))
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    step = 0.8 / max(1, len(treatments))
    for j, t in enumerate(treatments):
        ys, est, lo, hi = [], [], [], []
        for i, s in enumerate(segments):
            ys.append(i + (j - (len(treatments) - 1) / 2) * step)
            est.append(s.gate_estimate[t])
            lo.append(s.gate_ci[t][0])
            hi.append(s.gate_ci[t][1])
        xerr = [[e - l for e, l in zip(est, lo)], [h - e for e, h in zip(est, hi)]]
        ax.errorbar(est, ys, xerr=xerr, fmt="o", color=colors[j % len(colors)], capsize=3, label=f"{t} vs control")
    ax.axvline(0.0, color="black", lw=0.8, ls="--")
    labels = []
    for s in segments:
        stab = "n/a" if s.stability_score != s.stability_score else f"{s.stability_score:.2f}"
        labels.append(f"#{s.id}: {_wrap(str(s.rule))}\n{s.population_share:.0%} of visitors, stability {stab}")
    ax.set_yticks(range(len(segments)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"segment average treatment effect{f' ({unit})' if unit else ''}, 80% credible interval")
    ax.set_title("Effect by segment")
    ax.legend(fontsize=8, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    return ax
