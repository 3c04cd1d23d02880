"""``plot_calibration``: the R(p) curve (nominal vs empirical coverage) of a calibration."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytyche.viz._axes import get_ax

_FAMILY_LABELS = {
    "cate": "per-visitor CATE",
    "gate": "segment GATE",
    "ate": "ATE",
    "conversion_effect": "conversion effect",
    "severity_effect": "severity effect",
}


def _correction_of(obj: Any, name: str) -> Any:
    """Accept a calibrated posterior, a ``Calibration`` or a ``LayeredCalibrationCorrection``."""
    cal = getattr(obj, "calibration", None)
    if cal is not None and not hasattr(obj, "layers"):
        obj = cal
    corr = getattr(obj, "correction", obj)
    if corr is None or not hasattr(corr, "family_curves"):
        raise ValueError(
            f"The '{name}' parameter of plot_calibration must be a calibrated posterior, a Calibration with a "
            f"correction, or a LayeredCalibrationCorrection. Got {type(obj).__name__} without a fitted correction instead."
        )
    return corr


def plot_calibration(calibrated_posterior: Any, reference: Any = None, ax: Any = None, *, family: str | None = None) -> Any:
    """R(p) calibration curve: empirical coverage of raw intervals against their nominal level.

    Draws, per quantity family of the artifact (or only ``family``): the raw (uncalibrated)
    R(p) points and their isotonic fit, the coverage the corrected intervals reach (on the
    sweep's records), and the diagonal an honest posterior would follow. ``reference`` (another
    calibrated posterior, ``Calibration`` or correction) is overlaid dashed.

    Parameters
    ----------
    calibrated_posterior
        A posterior after ``apply_calibration``, a ``Calibration`` or a ``LayeredCalibrationCorrection``.
    reference
        Optional second curve to compare with (e.g. an earlier artifact).
    ax
        Matplotlib axes; ``None`` creates a new figure.
    family
        Restrict to one quantity family.

    Returns
    -------
    matplotlib.axes.Axes
    """
    corr = _correction_of(calibrated_posterior, "calibrated_posterior")
    ax = get_ax(ax, (6, 5.5))
    curves = [c for c in corr.family_curves if family is None or c.family == family]
    if not curves:
        raise ValueError(
            f"The 'family' parameter of plot_calibration must name a family the artifact has "
            f"({[c.family for c in corr.family_curves]}). Got {family!r} instead."
        )
    ax.plot([0, 1], [0, 1], color="black", lw=1, ls=":", label="honest (nominal = empirical)")
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    grid = np.linspace(0.05, 0.99, 60)
    for i, c in enumerate(curves):
        col = colors[i % len(colors)]
        label = _FAMILY_LABELS.get(c.family, c.family)
        ax.scatter(c.nominal, c.raw, color=col, s=18, alpha=0.6)
        ax.plot(c.nominal, c.empirical, color=col, lw=2, label=f"{label}: raw R(p)")
        corrected = [c.coverage_of(float(c.nominal_for(q))) for q in grid]
        ax.plot(grid, corrected, color=col, lw=1.2, ls="-.", alpha=0.8, label=f"{label}: calibrated")
    if reference is not None:
        ref = _correction_of(reference, "reference")
        for i, c in enumerate(r for r in ref.family_curves if family is None or r.family == family):
            ax.plot(c.nominal, c.empirical, color=colors[i % len(colors)], lw=1.5, ls="--", alpha=0.7,
                    label=f"reference {_FAMILY_LABELS.get(c.family, c.family)}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal interval level p")
    ax.set_ylabel("empirical coverage R(p)")
    regime = f"{corr.metric}, K={corr.n_treatments}, {corr.pooling} pooling"
    ax.set_title(f"Interval calibration ({regime})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ax
