"""``rare_segment``: a rare, high-value segment that only one of three treatments serves well.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface); ``cluster_ids`` mark the rare segment (1)
versus everyone else (0), a function of ``x``, for segment-recovery evaluation. Features:
``prior_orders`` (geometric: ``P(k) = 0.3 · 0.7^k``, mean 2.3), ``device`` (desktop 40% /
mobile 50% / tablet 10%), ``region`` (north / south / east / west, uniform, irrelevant) and
``n_noise`` irrelevant ``noise_j ~ N(0, 1)``. The rare segment is ``prior_orders >=
vip_threshold`` (default 10: ``0.7^10`` ≈ 2.8% of visitors). Treatments ``control``,
``vip_offer``, ``broad_promo``; metric ``revenue_per_visitor`` (hurdle).

- control ``p0 = 0.03 · conversion_scale · (1 + 0.1 · min(prior_orders, 10))``,
  ``m0 = 60 + 4 · min(prior_orders, 20)``;
- ``vip_offer``: in the segment ``p × (1 + 1.0 s)``, ``m × (1 + 0.3 s)``; elsewhere
  ``p × (1 - 0.1 s)``, basket unchanged;
- ``broad_promo``: ``p × (1 + 0.15 s)``, ``m × (1 - 0.05 s)`` everywhere; ``s = effect_scale``.

At ``s = 1``: ``broad_promo`` wins outside the segment (+9%), ``vip_offer`` wins inside it
(+160%) and loses 10% elsewhere. The oracle is a two-leaf policy; finding the small leaf is the
test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import feature_template, FeatureTemplate, integer, param, real, RevenueTemplate, Surface

_DEVICES = ("desktop", "mobile", "tablet")
_REGIONS = ("north", "south", "east", "west")


@dataclass(frozen=True)
class RareSegment(FeatureTemplate, RevenueTemplate):
    """See the module docstring."""

    effect_scale: float = param(1.0, real(low=0.0, high=5.0))
    vip_threshold: int = param(10, integer(1))

    name = "rare_segment"
    treatments = ("control", "vip_offer", "broad_promo")

    features = {"prior_orders": "numeric", "device": "categorical", "region": "categorical"}

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "prior_orders": (rng.geometric(0.3, size=n) - 1).astype(np.float64),
                "device": np.asarray(_DEVICES, dtype=object)[rng.choice(3, size=n, p=[0.4, 0.5, 0.1])],
                "region": np.asarray(_REGIONS, dtype=object)[rng.integers(0, 4, size=n)],
            }
        )

    def clusters_of(self, features: pd.DataFrame) -> np.ndarray:
        """The latent segment is observable: VIP iff ``prior_orders >= vip_threshold``."""
        return (features["prior_orders"].to_numpy(dtype=np.float64) >= self.vip_threshold).astype(np.int64)

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        s = self.effect_scale
        orders = visitors["prior_orders"].to_numpy(dtype=np.float64)
        vip = orders >= self.vip_threshold
        p0 = 0.03 * self.conversion_scale * (1.0 + 0.1 * np.minimum(orders, 10.0))
        m0 = 60.0 + 4.0 * np.minimum(orders, 20.0)
        p_vip = p0 * np.where(vip, 1.0 + 1.0 * s, np.maximum(1.0 - 0.1 * s, 0.0))
        m_vip = m0 * np.where(vip, 1.0 + 0.3 * s, 1.0)
        p = np.clip(np.column_stack([p0, p_vip, p0 * (1.0 + 0.15 * s)]), 0.0, 0.95)
        m = np.column_stack([m0, m_vip, m0 * (1.0 - 0.05 * s)])
        return Surface(p=p, m=m)


make = feature_template(RareSegment)
