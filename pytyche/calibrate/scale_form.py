"""The *scale* form of an R(p) curve: one number per layer, fitted from every level at once.

A coverage record of a family with few targets per dataset (``ate``: one per treated arm;
``gate``: one per segment) says little through its coverage indicators: at 90% each dataset
contributes a 0 or a 1 per target, and each level is fitted on its own. Its ``z_sq_mean`` carries
more: the mean squared standardized error ``z = (truth - mean) / sd`` of its targets
(:func:`pytyche.calibrate.sbc.pit_summary`).

Under the location-scale model of :mod:`pytyche.calibrate.correction` (draws ``N(c, s^2)``, truth
``c + t e`` with ``e ~ N(0, 1)``, ``r = t / s``) every ``z`` is ``N(0, r^2)``, so the maximum
likelihood estimate of ``r`` is ``sqrt(mean z^2)`` over the layer's targets (:func:`fit_scale`).
The curve it implies is ``R(p) = 2 Phi(z(p) / r) - 1`` at every level (:func:`scale_coverage`),
and the correction's multiplier is ``r`` at every level: the Gaussian model's straight line in z
space, which the isotonic form only approaches with many units.

Precision, and the units a scale curve needs. Each unit (dataset) moves ``r`` by its influence
``(z_i^2 - r^2) / (2 r)``, with ``z_i^2`` the unit's mean squared standardized error, so
``se(r) = sd(z_i^2) / (2 r sqrt(n))`` and the coverage at level ``q`` moves by
``|dR/dr| se(r)``, ``dR/dr = -2 phi(z(q) / r) z(q) / r^2``. A curve meets a tolerance ``tol`` at
95% with ``n >= (1.96 |dR/dr| sd(z^2) / (2 r tol))^2`` units (:func:`scale_min_units`). With one
standard normal target per unit (``sd(z^2) = sqrt 2``, ``r = 1``) that is about 245 units for
+-3 pp at 90% and 430 at 80%; the mean of the coverage indicators needs about 385 and 680.
(The PIT histogram binned in 40 bins gives a less precise scale: its tail bins pool the largest
errors, which carry most of the information about ``r``. It serves the per-level checks.)

The form assumes the posterior of an average (an ATE, a GATE) is close to Gaussian, which the
central limit theorem makes likely; the held-out validation checks it per level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import norm

__all__ = ["SCALE_BOUNDS", "fit_scale", "scale_coverage", "scale_min_units"]

#: the scale ``r`` is searched in this range (an interval 10x too narrow or too wide)
SCALE_BOUNDS = (0.1, 10.0)


def fit_scale(z_sq: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> float:
    """``r = sqrt(mean z^2)``: the scale behind units' mean squared standardized errors, each
    weighted by its number of targets (``weights``; default equal), clipped to :data:`SCALE_BOUNDS`."""
    z = np.asarray(z_sq, dtype=np.float64)
    w = np.ones_like(z) if weights is None else np.asarray(weights, dtype=np.float64)
    if z.ndim != 1 or z.size < 1 or w.shape != z.shape or not np.all(np.isfinite(z)) or np.any(z < 0) or np.any(w <= 0):
        raise ValueError(f"z_sq must be finite values >= 0 with positive weights of the same length. Got {z.size} values.")
    r = math.sqrt(float(np.sum(w * z) / np.sum(w)))
    return float(min(max(r, SCALE_BOUNDS[0]), SCALE_BOUNDS[1]))


def scale_coverage(levels: Sequence[float] | np.ndarray, r: float) -> np.ndarray:
    """``R(p) = 2 Phi(z(p) / r) - 1``: the coverage of the raw level-``p`` intervals under scale ``r``."""
    p = np.asarray(levels, dtype=np.float64)
    return 2.0 * ndtr(ndtri((1.0 + p) / 2.0) / r) - 1.0


def scale_min_units(z_sq: Sequence[float] | np.ndarray, tol: float, levels: Sequence[float], confidence_z: float = 1.959963984540054) -> int:
    """Units a scale curve needs so its coverage at each of ``levels`` is within ``tol`` at 95%.

    ``z_sq`` holds one mean squared standardized error per unit; with fewer than two, the
    standard-normal value ``sd(z^2) = sqrt(2)`` at ``r = 1`` is used.
    """
    z = np.asarray(z_sq, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size >= 2 and z.mean() > 0:
        r = math.sqrt(float(z.mean()))
        sd = float(z.std(ddof=1))
    else:
        r, sd = 1.0, math.sqrt(2.0)
    need = 2
    for q in levels:
        zq = float(ndtri((1.0 + q) / 2.0))
        slope = 2.0 * float(norm.pdf(zq / r)) * zq / r**2
        need = max(need, math.ceil((confidence_z * slope * sd / (2.0 * r * tol)) ** 2))
    return need
