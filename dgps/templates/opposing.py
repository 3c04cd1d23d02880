"""``opposing``: a bundle offer whose conversion and basket effects pull in opposite directions.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features: ``visits_30d`` (Poisson, mean
4), ``basket_history`` (the visitor's past average order, lognormal with median ~$67, rounded to
whole dollars), ``device`` (desktop 45% / mobile 45% / tablet 10%) and ``n_noise`` irrelevant
``noise_j ~ N(0, 1)``. Treatments ``control``, ``bundle``; metric ``revenue_per_visitor`` (hurdle).

- control ``p0 = 0.05 · conversion_scale · (1 + 0.3 tanh((visits - 4) / 4))``,
  ``m0 = 20 + 0.8 · basket_history``;
- bundle: conversion falls, ``p1 = p0 · (1 - 0.3 s)``; basket rises for big spenders,
  ``m1 = m0 · (1 + 0.6 s · sigmoid((basket_history - 80) / 20))``, ``s = effect_scale`` in [0, 3].

So ``conversion_effect < 0`` everywhere while ``severity_effect > 0`` everywhere; revenue per
visitor rises only where the basket gain outweighs the lost conversions: at ``s = 1`` for
``basket_history`` above about $98 (~22% of visitors, up to +12%), and falls to -30% for small
baskets. A model that gets the decomposition's signs right can still get RPV wrong, and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import feature_template, FeatureTemplate, param, real, RevenueTemplate, Surface

_DEVICES = ("desktop", "mobile", "tablet")


@dataclass(frozen=True)
class Opposing(FeatureTemplate, RevenueTemplate):
    """See the module docstring."""

    effect_scale: float = param(1.0, real(low=0.0, high=3.0))

    name = "opposing"
    treatments = ("control", "bundle")

    features = {"visits_30d": "numeric", "basket_history": "numeric", "device": "categorical"}

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "visits_30d": rng.poisson(4.0, size=n).astype(np.float64),
                "basket_history": np.round(np.exp(rng.normal(4.2, 0.5, size=n))),
                "device": np.asarray(_DEVICES, dtype=object)[rng.choice(3, size=n, p=[0.45, 0.45, 0.10])],
            }
        )

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        s = self.effect_scale
        visits = visitors["visits_30d"].to_numpy(dtype=np.float64)
        hist = visitors["basket_history"].to_numpy(dtype=np.float64)
        p0 = 0.05 * self.conversion_scale * (1.0 + 0.3 * np.tanh((visits - 4.0) / 4.0))
        m0 = 20.0 + 0.8 * hist
        gain = 1.0 / (1.0 + np.exp(-(hist - 80.0) / 20.0))
        p = np.clip(np.column_stack([p0, p0 * (1.0 - 0.3 * s)]), 0.0, 0.95)
        return Surface(p=p, m=np.column_stack([m0, m0 * (1.0 + 0.6 * s * gain)]))


make = feature_template(Opposing)
