"""Planted-truth test data: ``ObservedExperimentData`` built from arrays, with its truth.

Importable by any test module (``from tests._data import ...`` or ``from _data import ...``).
Every builder returns a :class:`Planted`: the observed data (rows variant-major, as the contract
requires) and the truth aligned to that same row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.special import ndtr

from pytyche.contracts import CalibrationTruth, ObservedExperimentData, VariantData, VisitorSchema, propensity_columns

__all__ = [
    "Planted",
    "PlantedPosterior",
    "binary_dgp",
    "continuous_dgp",
    "hurdle_dgp",
    "observed_from_arrays",
]


def observed_from_arrays(
    x: np.ndarray,
    arm: np.ndarray,
    y: np.ndarray,
    *,
    treatments: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    categorical: dict[str, np.ndarray] | None = None,
    propensity: np.ndarray | None = None,
    cells: np.ndarray | None = None,
    metric: str = "revenue_per_visitor",
    experiment_id: str = "planted",
) -> tuple[ObservedExperimentData, np.ndarray]:
    """Build observed data from per-row arrays in any order.

    Parameters
    ----------
    x
        ``(n, p)`` numeric features.
    arm
        ``(n,)`` integer arm (0 = control).
    y
        ``(n,)`` outcome.
    treatments
        Names, control first; default ``"control", "t1", ...``.
    feature_names
        Names of ``x``'s columns; default ``"x0", "x1", ...``.
    categorical
        Extra categorical (string) feature columns, name -> ``(n,)`` values.
    propensity
        ``(n, K-1)`` recorded assignment probabilities of the non-control arms.
    cells
        ``(n,)`` cell ids.

    Returns
    -------
    (observed, order)
        ``order`` is the row permutation into variant-major order: ``array[order]`` aligns any
        per-row input array with ``observed``.
    """
    x = np.asarray(x, dtype=np.float64)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    n, p = x.shape
    k = int(arm.max()) + 1 if treatments is None else len(treatments)
    names = tuple(treatments) if treatments is not None else ("control",) + tuple(f"t{a}" for a in range(1, k))
    feats = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(p)]
    order = np.argsort(arm, kind="stable")
    cols: dict[str, np.ndarray] = {f: x[:, j] for j, f in enumerate(feats)}
    types = {f: ("binary" if set(np.unique(x[:, j])) <= {0.0, 1.0} else "numeric") for j, f in enumerate(feats)}
    for f, v in (categorical or {}).items():
        cols[f] = np.asarray(v)
        types[f] = "categorical"
    cols["outcome"] = y
    if propensity is not None:
        prop = np.asarray(propensity, dtype=np.float64).reshape(n, k - 1)
        for j, c in enumerate(propensity_columns(k)):
            cols[c] = prop[:, j]
    if cells is not None:
        cols["cell"] = np.asarray(cells)
    frame = pd.DataFrame(cols)
    variants = tuple(VariantData(names[a], frame[arm == a].reset_index(drop=True)) for a in range(k))
    observed = ObservedExperimentData(experiment_id, metric, variants, VisitorSchema(types, "outcome"))
    return observed, order


@dataclass(frozen=True)
class Planted:
    """Observed data with its planted truth, both variant-major.

    ``truth.expected_outcome[:, a]`` is ``E[Y | x, a]``; ``truth.p`` / ``truth.m`` the hurdle
    channels; ``latent`` the probit/log-scale effects when the DGP has them:
    ``latent["conversion"]`` / ``latent["severity"]`` ``(n, K-1)`` effects on the probit and
    log-severity scales, ``latent["probit"]`` for binary DGPs.
    """

    observed: ObservedExperimentData
    truth: CalibrationTruth
    x: np.ndarray
    arm: np.ndarray
    latent: dict[str, np.ndarray]

    @property
    def cate(self) -> np.ndarray:
        """``(n, K-1)`` true CATE (RPV for hurdle)."""
        return self.truth.cate

    @property
    def sate(self) -> np.ndarray:
        """``(K-1,)`` the CATE averaged over the observed visitors."""
        return self.truth.cate.mean(axis=0)


def _assign(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Complete randomisation with (near) equal arm sizes."""
    return rng.permutation(np.arange(n) % k)


def continuous_dgp(n: int = 300, seed: int = 0, *, noise: float = 0.5, tau_slope: float = 2.0, tau_base: float = 1.0) -> Planted:
    """Continuous outcome, heterogeneous effect.

    ``x ~ U(0, 1)^3``, ``mu(x) = 2 sin(pi x0) + x2``, ``tau(x) = tau_base + tau_slope * x1``,
    ``y = mu + tau * 1[treated] + N(0, noise^2)``, two arms.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 3))
    arm = _assign(rng, n, 2)
    mu = 2.0 * np.sin(np.pi * x[:, 0]) + x[:, 2]
    tau = tau_base + tau_slope * x[:, 1]
    y = mu + tau * (arm == 1) + noise * rng.normal(size=n)
    observed, order = observed_from_arrays(x, arm, y, metric="order_value")
    eo = np.column_stack([mu, mu + tau])[order]
    truth = CalibrationTruth(eo, observed.variant_names, np.full(n, -1))
    return Planted(observed, truth, x[order], arm[order], {})


def binary_dgp(n: int = 300, seed: int = 0, *, shift: float = 1.0) -> Planted:
    """Binary outcome with a constant probit shift.

    ``P(y = 1 | x, a) = Phi(-0.5 + 1.5 (x0 - 0.5) + shift * 1[treated])``, ``x ~ U(0, 1)^3``.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 3))
    arm = _assign(rng, n, 2)
    base = -0.5 + 1.5 * (x[:, 0] - 0.5)
    lat = base + shift * (arm == 1)
    y = (rng.uniform(size=n) < ndtr(lat)).astype(np.float64)
    observed, order = observed_from_arrays(x, arm, y, metric="conversion_rate")
    eo = ndtr(np.column_stack([base, base + shift]))[order]
    truth = CalibrationTruth(eo, observed.variant_names, np.full(n, -1))
    return Planted(observed, truth, x[order], arm[order], {"probit": np.full((n, 1), shift)})


def hurdle_dgp(
    n: int = 300,
    seed: int = 0,
    *,
    conversion_shift: Sequence[float] = (0.5,),
    severity_shift: Sequence[float] = (0.3,),
    base_conversion: float = 0.0,
    sigma: float = 0.5,
    heterogeneous: bool = False,
) -> Planted:
    """Zero-inflated (revenue) outcome with independent channels.

    K = ``len(conversion_shift) + 1`` arms. Conversion depends on ``x0`` only, severity on
    ``x2`` only (independent channels, different features)::

        conversion latent  = base_conversion + 0.8 (x0 - 0.5) + c_a * h(x1)
        log-severity       = 3 + 0.6 (x2 - 0.5)              + s_a * h(x1) + N(0, sigma^2)
        y = 1[converted] * exp(log-severity)

    with ``h(x1) = 1`` (homogeneous effects) or ``h(x1) = 2 x1`` (heterogeneous, mean 1).
    Truth: ``p = Phi(latent)``, ``m = exp(log-severity mean + sigma^2 / 2)``, RPV ``p m``.
    """
    rng = np.random.default_rng(seed)
    c = np.asarray(conversion_shift, dtype=np.float64)
    s = np.asarray(severity_shift, dtype=np.float64)
    if c.shape != s.shape:
        raise ValueError("conversion_shift and severity_shift must have one entry per non-control arm")
    k = c.size + 1
    x = rng.uniform(size=(n, 3))
    arm = _assign(rng, n, k)
    h = 2.0 * x[:, 1] if heterogeneous else np.ones(n)
    conv_eff = np.column_stack([np.zeros(n)] + [ca * h for ca in c])  # (n, K) probit effect per arm
    sev_eff = np.column_stack([np.zeros(n)] + [sa * h for sa in s])
    lat = base_conversion + 0.8 * (x[:, 0] - 0.5)
    logm = 3.0 + 0.6 * (x[:, 2] - 0.5)
    p = ndtr(lat[:, None] + conv_eff)  # (n, K)
    m = np.exp(logm[:, None] + sev_eff + sigma**2 / 2)
    rows = np.arange(n)
    converted = rng.uniform(size=n) < p[rows, arm]
    sev = np.exp(logm + sev_eff[rows, arm] + sigma * rng.normal(size=n))
    y = np.where(converted, sev, 0.0)
    observed, order = observed_from_arrays(x, arm, y, metric="revenue_per_visitor")
    truth = CalibrationTruth((p * m)[order], observed.variant_names, np.full(n, -1), p=p[order], m=m[order])
    latent = {"conversion": conv_eff[order][:, 1:], "severity": sev_eff[order][:, 1:]}
    return Planted(observed, truth, x[order], arm[order], latent)


@dataclass(frozen=True)
class PlantedPosterior:
    """A posterior-like frozen dataclass over planted draws: what the calibrate module reads.

    ``outcome_samples`` is ``(n, S, K)``; ``cate_samples`` the ``(n, S, K-1)`` differences to
    control. A test needing more of the fit-result interface subclasses it.
    """

    observed: ObservedExperimentData
    outcome_samples: np.ndarray
    decomposition: object = None
    calibration: object = None
    pooling: str | None = None

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.observed.variant_names

    @cached_property
    def cate_samples(self) -> np.ndarray:
        return self.outcome_samples[..., 1:] - self.outcome_samples[..., :1]
