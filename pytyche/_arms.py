"""Arm coding, in one place: one-hot indicator columns of integer arm indices (0 = control).

`one_hot` is the ``(n, K)`` indicator matrix (a deterministic policy's allocation, observed arm
counts); `contrast_basis` drops the control column, the ``(n, K-1)`` contrast coding of the BCF
(arm ``a >= 1`` is column ``a - 1``). The seed-named, validating entry point is
:func:`pytyche.bcf.preprocess._compute_basis`, which checks its input and calls `contrast_basis`;
the kernel's arm masks (:mod:`pytyche.bcf.kernel`) are the same coding, transposed and traced.
No validation here: callers pass checked integer arrays with values in ``[0, K)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contrast_basis", "one_hot"]


def one_hot(arm: np.ndarray, n_arms: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """``(n, K)``: ``out[i, a] = 1`` iff ``arm[i] == a``."""
    arm = np.asarray(arm)
    out = np.zeros((arm.shape[0], n_arms), dtype=dtype)
    out[np.arange(arm.shape[0]), arm] = 1
    return out


def contrast_basis(arm: np.ndarray, n_arms: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """``(n, K-1)``: ``out[i, a-1] = 1`` iff ``arm[i] == a``, for the non-control arms ``a = 1..K-1``."""
    return one_hot(arm, n_arms, dtype)[:, 1:]
