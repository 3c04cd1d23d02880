"""Thompson allocation with the ε-clip floor (docs/concepts.md, *Thompson allocation*).

Per segment, each active treatment's share of traffic is the posterior probability that it is
best, read off the joint draws of the segment-average outcome of every arm: one draw is one
coherent state of the world, so cross-arm dependence is preserved (no per-arm marginals are
combined). The ε-clip then lifts every active treatment to at least ``ε / K_active`` and
renormalises. No thresholds: a segment with ``P(best) = 0.91`` gets a markedly different
allocation from one with ``P(best) = 0.55``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from pytyche._validation import Interval, invalid, validate, wrong_type
from pytyche.compare._draws import p_best

#: ε of the ε-clip (internal, not a parameter of the public API; docs/concepts.md)
EPSILON = 0.02


def _check_draws(draws: Any, active: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(draws, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
        raise invalid("draws", where, "a 2-D (S, K) array of joint draws (S >= 1, K >= 1)", f"shape {d.shape}", show=False)
    if not np.all(np.isfinite(d)):
        raise invalid("draws", where, "finite", "NaN or infinite values", show=False)
    k = d.shape[1]
    if active is None:
        a = np.ones(k, dtype=bool)
    else:
        a = np.asarray(active)
        if a.dtype != bool:
            raise wrong_type("active", where, "None or a boolean mask over the K arms", active)
        if a.shape != (k,):
            raise invalid("active", where, f"a boolean mask of shape ({k},)", f"shape {a.shape}", show=False)
        if not a.any():
            raise invalid("active", where, "a mask with at least one active arm", "no active arm", show=False)
    return d, a


def arm_best_probabilities(draws: Any, active: Any = None) -> np.ndarray:
    """Posterior probability that each arm is best, from joint draws.

    Parameters
    ----------
    draws
        ``(S, K)`` joint posterior draws of the (segment-average) outcome of each arm.
    active
        Optional ``(K,)`` boolean mask; inactive arms do not compete and get probability 0.

    Returns
    -------
    np.ndarray
        ``(K,)`` probabilities summing to 1. A draw in which several arms tie for the maximum
        splits its unit mass equally among them.
    """
    d, a = _check_draws(draws, active, "arm_best_probabilities")
    return p_best(d, a)


def clip_floor(weights: np.ndarray, floor: float) -> np.ndarray:
    """Lift every weight to at least ``floor`` and renormalise the rest so the total stays 1.

    The exact clip-then-renormalise: weights lifted to the floor stay there, the others are
    scaled proportionally into the remaining mass, repeated until no scaled weight falls below
    the floor (at most ``len(weights)`` passes). Order-preserving; requires ``floor * len <= 1``.
    """
    p = np.asarray(weights, dtype=np.float64)
    k = p.size
    fixed = np.zeros(k, dtype=bool)
    w = p.copy()
    for _ in range(k + 1):
        free = ~fixed
        w[fixed] = floor
        if not free.any():
            break
        remaining = 1.0 - floor * fixed.sum()
        total = p[free].sum()
        w[free] = p[free] * (remaining / total) if total > 0 else remaining / free.sum()
        low = free & (w < floor)
        if not low.any():
            break
        fixed |= low
    return w


#: the scalar settings of :func:`thompson_allocation` (draws and active are checked by hand)
THOMPSON_ALLOCATION_CONSTRAINTS: dict[str, Any] = {"epsilon": Interval(numbers.Real, 0.0, 1.0, loose=True)}


def thompson_allocation(draws: Any, active: Any = None, epsilon: float = EPSILON) -> np.ndarray:
    """Per-arm traffic weights of one segment: ``P(arm best)`` with the ε-clip floor.

    Parameters
    ----------
    draws
        ``(S, K)`` joint posterior draws of the segment-average outcome of each arm (control
        first), one row per posterior draw.
    active
        Optional ``(K,)`` boolean mask of active treatments (default: all). Inactive arms get
        weight 0 and do not compete for "best".
    epsilon
        The ε of the ε-clip: each active arm receives at least ``epsilon / K_active``.

    Returns
    -------
    np.ndarray
        ``(K,)`` weights summing to 1.

    Raises
    ------
    ValueError, TypeError
        On draws that are not a finite ``(S, K)`` array, a malformed mask or ``epsilon`` outside
        ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal([0.0, 0.3], 0.1, size=(4000, 2))
    >>> w = thompson_allocation(d)
    >>> bool(w[1] > 0.9 and abs(w.sum() - 1) < 1e-12 and w[0] >= 0.01)
    True
    """
    d, a = _check_draws(draws, active, "thompson_allocation")
    eps = validate({"epsilon": epsilon}, THOMPSON_ALLOCATION_CONSTRAINTS, "thompson_allocation")["epsilon"]
    out = np.zeros(d.shape[1], dtype=np.float64)
    p = p_best(d, a)[a]
    out[a] = clip_floor(p, eps / a.sum())
    return out
