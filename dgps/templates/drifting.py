"""``drifting``: a promotion whose effect decays across rounds (novelty wear-off; revenue metric).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`), control surface as in
``clustered_realistic`` (``p = BASE_P[cluster] · engagement · conversion_scale``,
``m = BASE_M[cluster]``), metric ``revenue_per_visitor`` (hurdle). Treatments ``control``,
``promo``. In round ``r`` the promo multiplies conversion by
``max(0.05, 1 + (initial_lift - drift_per_round · r) · sensitivity[cluster])`` with
``sensitivity = (1.5, 0.5, 1.0, 1.0)`` (bargain hunters react most), basket unchanged.
Defaults ``initial_lift = 0.6``, ``drift_per_round = 0.3``: round 0 +60% (cluster-scaled),
round 1 +30%, round 2 no effect, round 3 −30%. The truth is round-specific: a visitor's
expected outcome is the one of the round they arrived in, so the cumulative truth mixes rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, engagement, feature_template, param, real, RevenueTemplate, Surface
from dgps.templates.clustered_realistic import BASE_M, BASE_P

SENSITIVITY = np.array([1.5, 0.5, 1.0, 1.0])


@dataclass(frozen=True)
class Drifting(RevenueTemplate, ArchetypeTemplate):
    """See the module docstring."""

    initial_lift: float = param(0.6, real(low=-0.9))
    drift_per_round: float = param(0.3, real())

    name = "drifting"
    treatments = ("control", "promo")

    def lift(self, round_idx: int) -> float:
        """The population-level promo lift (before cluster sensitivity) in round ``round_idx``."""
        return self.initial_lift - self.drift_per_round * round_idx

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = BASE_P[clusters] * engagement(visitors) * self.conversion_scale
        mult = np.maximum(0.05, 1.0 + self.lift(round_idx) * SENSITIVITY[clusters])
        p = np.clip(np.column_stack([p0, p0 * mult]), 0.0, 0.95)
        m0 = BASE_M[clusters]
        return Surface(p=p, m=np.column_stack([m0, m0]))


make = feature_template(Drifting)
