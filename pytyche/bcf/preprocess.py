"""Arrays for the BCF sampler: contrast coding of arms and the design matrices.

``_compute_basis`` is the per-arm contrast coding the seeds name: arm ``a >= 1`` of an
``(n,)`` integer arm vector ``Z`` becomes a one-hot column ``a - 1`` of an ``(n, K-1)`` basis,
control rows are all zero, so the BCF mean reads ``mu(x) + sum_a basis[:, a-1] * tau_a(x)``:
``mu`` is the control-arm surface and ``tau_a`` the effect of arm ``a`` versus control.

:func:`design_from_observed` turns an :class:`~pytyche.contracts.ObservedExperimentData` into
the arrays :func:`pytyche.bcf.sampler.run_bcf` takes: the feature matrix (both forests) and the
recorded propensities as prognostic-only covariates (BCF's propensity adjustment of the
mu-forest; Hahn, Murray & Carvalho 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytyche._arms import contrast_basis
from pytyche._validation import invalid, wrong_type
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["BCFDesign", "_compute_basis", "design_from_observed"]


def _compute_basis(Z: np.ndarray, n_arms: int | None = None) -> np.ndarray:
    """Contrast-code integer arms as one-hot columns of the non-control arms.

    Parameters
    ----------
    Z
        ``(n,)`` integer arm index per row, ``0`` = control, arms numbered from 0.
    n_arms
        Number of arms ``K``. Default: ``max(Z) + 1``. When given, every ``Z`` must be below it
        (arms absent from ``Z`` are allowed and get an all-zero column).

    Returns
    -------
    np.ndarray
        ``(n, K-1)`` float32 basis: ``basis[i, a-1] = 1`` iff ``Z[i] == a`` for ``a = 1..K-1``.

    Raises
    ------
    TypeError
        If ``Z`` is not an integer array (a float array holding whole numbers is accepted).
    ValueError
        If ``Z`` is not 1-d, is empty, holds negative values, or ``K < 2``.

    Examples
    --------
    >>> _compute_basis(np.array([0, 1, 2, 0]))
    array([[0., 0.],
           [1., 0.],
           [0., 1.],
           [0., 0.]], dtype=float32)
    """
    where = "_compute_basis"
    z = np.asarray(Z)
    if z.dtype == bool or not (np.issubdtype(z.dtype, np.integer) or np.issubdtype(z.dtype, np.floating)):
        raise wrong_type("Z", where, "an integer array of arm indices", Z)
    if z.ndim != 1 or z.size == 0:
        raise invalid("Z", where, "a non-empty 1-d array of arm indices", f"shape {z.shape}", show=False)
    if np.issubdtype(z.dtype, np.floating):
        if not np.all(np.isfinite(z)) or np.any(z != np.round(z)):
            raise wrong_type("Z", where, "an integer array of arm indices (whole numbers)", Z)
        z = z.astype(np.int64)
    if np.any(z < 0):
        raise invalid("Z", where, "integer arm indices starting from 0 (0 = control)", f"min {int(z.min())}", show=False)
    top = int(z.max())
    if n_arms is None:
        k = top + 1
    else:
        if isinstance(n_arms, bool) or not isinstance(n_arms, (int, np.integer)):
            raise wrong_type("n_arms", where, "an int >= 2", n_arms)
        k = int(n_arms)
        if top >= k:
            raise invalid("Z", where, f"arm indices below n_arms={k}", f"max {top}", show=False)
    if k < 2:
        raise invalid("n_arms", where, "at least 2 (a control and one treatment)", k)
    return np.ascontiguousarray(contrast_basis(z, k, np.float32))


@dataclass(frozen=True)
class BCFDesign:
    """The sampler's inputs derived from observed data (rows variant-major).

    Attributes
    ----------
    x
        ``(n, p)`` float32 feature matrix, used by both forests (categoricals integer-coded).
    arm
        ``(n,)`` int32 arm index (0 = control).
    mu_covariates
        ``(n, K-1)`` float32 recorded propensities, used by the prognostic forest only; ``None``
        when they carry no information (no propensity columns, or constant across rows).
    feature_names
        Names of the columns of ``x``.
    n_arms
        ``K``.
    """

    x: np.ndarray
    arm: np.ndarray
    mu_covariates: np.ndarray | None
    feature_names: tuple[str, ...]
    n_arms: int


def design_from_observed(observed: ObservedExperimentData) -> BCFDesign:
    """Build the BCF design matrices from observed data.

    The propensities are passed to the prognostic forest only when the data records them and
    they vary across rows: a constant propensity (complete randomisation, or the empirical shares
    used when none are recorded) is a constant column no tree can split on.

    A data set without features gets one constant column, so the forests reduce to a single
    leaf each: a homogeneous-effect BCF (the A/B/N difference in means with BART shrinkage).
    """
    if not isinstance(observed, ObservedExperimentData):
        raise wrong_type("observed", "design_from_observed", "an ObservedExperimentData", observed)
    x, names = observed.feature_matrix()
    if x.shape[1] == 0:
        x = np.zeros((observed.n_visitors, 1))
        names = ("(intercept)",)
    x = np.ascontiguousarray(x, dtype=np.float32)
    mu_cov = None
    if observed.has_propensity:
        prop = observed.propensity()
        if np.any(np.ptp(prop, axis=0) > 0):
            mu_cov = np.ascontiguousarray(prop, dtype=np.float32)
    arm = np.asarray(observed.arm, dtype=np.int32)
    return BCFDesign(x=x, arm=arm, mu_covariates=mu_cov, feature_names=tuple(names), n_arms=observed.n_variants)
