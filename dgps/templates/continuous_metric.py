"""``continuous_metric``: a Gaussian continuous metric with a smooth heterogeneous effect (K = 2).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`). Metric ``session_minutes``:
``Y = mean + outcome_sd · N(0, 1)`` with control mean
``10 + 0.15 · min(tenure_months, 60) + 2 · 1[device = desktop]`` and the ``treatment`` adding
``effect_scale · (2.0 · 1[device = mobile] − 1.0 · 1[device = desktop] + 0.5 · 1[device = tablet]
+ 0.05 · (visits_30d − 5))`` minutes. No zeros (so ``pt.fit`` picks the continuous BCF).
The oracle treats mobile and tablet visitors (and desktop visitors with visits_30d > 25).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ARCHETYPE_SCHEMA, archetype_visitors, ContinuousTemplate, feature_template, param, POSITIVE, Surface


@dataclass(frozen=True)
class ContinuousMetric(ContinuousTemplate):
    """See the module docstring."""

    outcome_sd: float = param(4.0, POSITIVE)

    name = "continuous_metric"
    metric = "session_minutes"
    treatments = ("control", "treatment")
    schema = ARCHETYPE_SCHEMA

    def draw_visitors(self, rng: np.random.Generator, n: int, round_idx: int) -> tuple[pd.DataFrame, np.ndarray]:
        return archetype_visitors(rng, n)

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        dev = visitors["device"].to_numpy()
        tenure = visitors["tenure_months"].to_numpy(dtype=np.float64)
        visits = visitors["visits_30d"].to_numpy(dtype=np.float64)
        mu0 = 10.0 + 0.15 * np.minimum(tenure, 60.0) + 2.0 * (dev == "desktop")
        tau = 2.0 * (dev == "mobile") - 1.0 * (dev == "desktop") + 0.5 * (dev == "tablet") + 0.05 * (visits - 5.0)
        return Surface(mean=np.column_stack([mu0, mu0 + self.effect_scale * tau]))


make = feature_template(ContinuousMetric)
