"""``sparse_signal``: a continuous outcome where two features matter among many irrelevant ones.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features: ``x1``, ``x2`` (the signal) and
``n_noise`` irrelevant ``noise_j`` (default 20), all independent ``N(0, 1)`` rounded to 0.01.
Treatments ``control``, ``treatment``; metric ``order_value`` (continuous, noise sd
``outcome_sd``, default 2).

- control mean ``mu0 = 5 + 1.5 x1 + 0.5 x2²``;
- effect ``tau = effect_scale · (1.0 · [x1 > 0] + 0.5 x2 - 0.25)``.

A step in ``x1`` plus a slope in ``x2`` (the prognostic part shares ``x1``: targeted-selection
style confounding of the two surfaces). The oracle treats where ``[x1 > 0] + 0.5 x2 > 0.25``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ContinuousTemplate, feature_template, FeatureTemplate, integer, param, POSITIVE, Surface


@dataclass(frozen=True)
class SparseSignal(FeatureTemplate, ContinuousTemplate):
    """See the module docstring."""

    outcome_sd: float = param(2.0, POSITIVE)
    n_noise: int = param(20, integer(0, 500))

    name = "sparse_signal"
    metric = "order_value"
    treatments = ("control", "treatment")

    features = {"x1": "numeric", "x2": "numeric"}

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return pd.DataFrame({"x1": np.round(rng.standard_normal(n), 2), "x2": np.round(rng.standard_normal(n), 2)})

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        x1 = visitors["x1"].to_numpy(dtype=np.float64)
        x2 = visitors["x2"].to_numpy(dtype=np.float64)
        mu0 = 5.0 + 1.5 * x1 + 0.5 * x2**2
        tau = self.effect_scale * (1.0 * (x1 > 0) + 0.5 * x2 - 0.25)
        return Surface(mean=np.column_stack([mu0, mu0 + tau]))


make = feature_template(SparseSignal)
