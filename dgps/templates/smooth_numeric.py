"""``smooth_numeric``: a discount whose effect is a smooth function of a numeric feature (age).

Truth
-----
No latent cluster: every quantity is a deterministic function of the observed features, so the
truth ``E[. | x]`` is the surface itself. Features: ``age`` (integer, uniform 18-75),
``tenure_months`` (gamma, shape 2, mean 12, rounded to 0.1), ``device`` (desktop 40% / mobile 50%
/ tablet 10%) and ``n_noise`` irrelevant ``noise_j ~ N(0, 1)``. Treatments ``control``,
``discount``; metric ``revenue_per_visitor`` (hurdle, lognormal basket with log-sd
``severity_sigma``).

- control conversion ``p0 = 0.04 · conversion_scale · (1 + 0.3 tanh((tenure - 12) / 12)) ·
  (0.8 if mobile else 1)``; basket ``m0 = 40 + 1.2 · age``;
- discount: ``p1 = p0 · (1 + 0.8 s · exp(-((age - 25) / 12)²))``, ``m1 = m0 · (1 - 0.15 s)``
  with ``s = effect_scale``.

Revenue-per-visitor CATE ``p0 m0 [(1 + 0.8 s e(age))(1 - 0.15 s) - 1]``: at ``s = 1`` about
+53% for 25-year-olds, turning negative past age ~40 (the basket loss wins), -15% for the old.
The oracle gives the discount to visitors younger than about 40; the boundary moves smoothly
with ``effect_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import feature_template, FeatureTemplate, param, real, RevenueTemplate, Surface

_DEVICES = ("desktop", "mobile", "tablet")


@dataclass(frozen=True)
class SmoothNumeric(FeatureTemplate, RevenueTemplate):
    """See the module docstring."""

    effect_scale: float = param(1.0, real(low=0.0))

    name = "smooth_numeric"
    treatments = ("control", "discount")

    features = {"age": "numeric", "tenure_months": "numeric", "device": "categorical"}

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "age": rng.integers(18, 76, size=n).astype(np.float64),
                "tenure_months": np.round(rng.gamma(2.0, 6.0, size=n), 1),
                "device": np.asarray(_DEVICES, dtype=object)[rng.choice(3, size=n, p=[0.4, 0.5, 0.1])],
            }
        )

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        s = self.effect_scale
        age = visitors["age"].to_numpy(dtype=np.float64)
        tenure = visitors["tenure_months"].to_numpy(dtype=np.float64)
        mobile = visitors["device"].to_numpy() == "mobile"
        p0 = 0.04 * self.conversion_scale * (1.0 + 0.3 * np.tanh((tenure - 12.0) / 12.0)) * np.where(mobile, 0.8, 1.0)
        p1 = p0 * (1.0 + 0.8 * s * np.exp(-(((age - 25.0) / 12.0) ** 2)))
        m0 = 40.0 + 1.2 * age
        p = np.clip(np.column_stack([p0, p1]), 0.0, 0.95)
        return Surface(p=p, m=np.column_stack([m0, m0 * (1.0 - 0.15 * s)]))


make = feature_template(SmoothNumeric)
