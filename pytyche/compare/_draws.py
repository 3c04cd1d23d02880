"""Shared plumbing of compare and analysis: posterior checks, group averages of draws, P(best).

Everything downstream of a fit reduces the per-visitor draws ``outcome_samples`` ``(n, S, K)`` to
group averages ``(G, S, K)`` (a segment, a masked population, the whole population). Averaging
is linear, so group-average CATE draws are ``avg[..., 1:] - avg[..., :1]`` exactly; the analysis
layer therefore reads ``outcome_samples`` once per call and never materialises ``cate_samples``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from pytyche._validation import invalid, wrong_type
from pytyche.contracts.enums import ClaimLevel

#: number of float64 elements one chunk of rows may hold while averaging draws (32 MiB)
_CHUNK_ELEMENTS = 1 << 22

_REQUIRED = ("observed", "treatments", "outcome_samples", "cate_mean", "interval")


def check_posterior(posterior: Any, where: str) -> np.ndarray:
    """Validate a posterior's interface and return its ``(n, S, K)`` outcome draws (read once).

    Raises
    ------
    TypeError
        When ``posterior`` lacks the fit-result interface.
    ValueError
        When the draws do not match the observed data or the treatments.
    """
    missing = [a for a in _REQUIRED if not hasattr(posterior, a)]
    if missing:
        raise wrong_type("posterior", where, f"a fit result (pt.fit) exposing {', '.join(_REQUIRED)}; missing {missing}", posterior)
    observed = posterior.observed
    treatments = tuple(posterior.treatments)
    draws = np.asarray(posterior.outcome_samples)
    n, k = observed.n_visitors, len(treatments)
    if treatments != tuple(observed.variant_names):
        raise invalid(
            "posterior", where, f"a fit whose treatments match its observed variants {list(observed.variant_names)}",
            list(treatments),
        )
    if draws.ndim != 3 or draws.shape[0] != n or draws.shape[2] != k or draws.shape[1] < 1:
        raise invalid(
            "posterior", where, f"a fit whose outcome_samples are (n, S, K) = ({n}, S, {k})",
            f"shape {draws.shape}", show=False,
        )
    return draws


def resolve_mask(mask: Any, observed: Any, name: str, where: str) -> np.ndarray | None:
    """A boolean ``(n,)`` selection of visitors (variant-major) or ``None`` for everyone.

    ``mask`` may be ``None``, a boolean array (or ``AlignedVisitorArray``) of length n, or a
    segment rule (anything with ``.mask(frame)``), evaluated on ``observed.features_frame()``.
    """
    if mask is None:
        return None
    if hasattr(mask, "mask") and callable(mask.mask):
        m = np.asarray(mask.mask(observed.features_frame()), dtype=bool)
    else:
        values = getattr(mask, "values", mask) if not isinstance(mask, np.ndarray) else mask
        m = np.asarray(values)
        if m.dtype != bool:
            raise wrong_type(name, where, "None, a boolean array over visitors or a segment rule", mask)
    n = observed.n_visitors
    if m.shape != (n,):
        raise invalid(name, where, f"a boolean array of shape ({n},) (one entry per visitor)", f"shape {m.shape}", show=False)
    if not m.any():
        raise invalid(name, where, "a selection of at least one visitor", "an empty selection", show=False)
    return m


def group_means(values: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Average ``values`` ``(n, ...)`` over the rows of each group: ``(n_groups, ...)`` float64.

    ``labels[i]`` is the group of row ``i`` (``-1``: in no group). Computed as a sparse indicator
    product ``(G, n) @ (n, rest)`` over chunks of rows, accumulating in float64 without a float64
    copy of the whole array. Every group must be non-empty.
    """
    n = values.shape[0]
    rest = values.shape[1:]
    flat = values.reshape(n, -1)
    width = flat.shape[1]
    labels = np.asarray(labels, dtype=np.int64)
    keep = labels >= 0
    counts = np.bincount(labels[keep], minlength=n_groups).astype(np.float64)
    if np.any(counts == 0):
        raise ValueError("Every group must hold at least one visitor.")
    out = np.zeros((n_groups, width), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        lab = labels[start:stop]
        rows = np.flatnonzero(lab >= 0)
        if rows.size == 0:
            continue
        ind = sparse.csr_matrix(
            (1.0 / counts[lab[rows]], (lab[rows], rows)), shape=(n_groups, stop - start), dtype=np.float64
        )
        out += ind @ np.asarray(flat[start:stop], dtype=np.float64)
    return out.reshape((n_groups, *rest))


def p_best(draws: np.ndarray, active: np.ndarray, ties: str = "split") -> np.ndarray:
    """``(K,)`` probability each active arm has the highest value, from ``(S, K)`` joint draws.

    The one home of P(best). A draw in which several arms tie for the maximum gives its unit mass
    by the ``ties`` rule: ``"split"`` (default; segments, Thompson allocation, comparisons) shares
    it equally among them; ``"first"`` gives it to the first of them in arm order (the engine's
    population-level P(best), which decides dropping and is what experiment snapshots record).
    Inactive arms get 0. Inputs are assumed checked (finite, at least one active arm).
    """
    masked = np.where(active[None, :], draws, -np.inf)
    if ties == "first":
        best = np.zeros(masked.shape, dtype=bool)
        best[np.arange(masked.shape[0]), np.argmax(masked, axis=1)] = True
        return best.mean(axis=0)
    if ties != "split":
        raise invalid("ties", "p_best", "'split' or 'first'", ties)
    best = masked == masked.max(axis=1, keepdims=True)
    best &= active[None, :]
    share = best / best.sum(axis=1, keepdims=True)
    return share.mean(axis=0)


def claim_level(posterior: Any) -> ClaimLevel:
    """The claim level of ``posterior``'s calibration (:meth:`ClaimLevel.of`)."""
    return ClaimLevel.of(getattr(posterior, "calibration", None))


def decision_draws(posterior: Any, draws: np.ndarray, family: str) -> np.ndarray:
    """``(S,)`` draws of one quantity moved by the posterior's calibration for ``family``
    (:meth:`Calibration.decision_draws`; unchanged when uncalibrated or the family stays raw)."""
    cal = getattr(posterior, "calibration", None)
    move = getattr(cal, "decision_draws", None)
    if move is None or ClaimLevel.of(cal) is not ClaimLevel.CALIBRATED:
        return np.asarray(draws, dtype=np.float64)
    return move(draws, family, int(posterior.observed.n_visitors))


def intervals(posterior: Any, draws: np.ndarray, level: float, family: str) -> tuple[np.ndarray, np.ndarray]:
    """``posterior.interval`` over the last (draws) axis, as float64 arrays."""
    lo, hi = posterior.interval(draws, level=level, family=family, axis=-1)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
