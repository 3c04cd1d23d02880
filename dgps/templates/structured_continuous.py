"""``structured_continuous``: a continuous metric whose effect takes one of the structures of :mod:`dgps.structured`.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features ``x1``, ``x2``, ``x3`` (``N(0, 1)``
rounded to 0.01), ``tier`` (bronze 50% / silver 35% / gold 15%) and ``n_noise`` irrelevant
``noise_j``. Treatments ``control``, ``treatment`` (and ``treatment_b`` at ``n_arms = 3``); metric
``session_minutes`` (continuous, noise sd ``outcome_sd``, default 2).

- control mean ``mu0 = 5 + 1.5 x1 + 0.5 x2² + 0 / 0.5 / 1.0`` by tier;
- arm ``a``: ``mu_a = mu0 + 0.5 s h_a · outcome_sd`` with ``h_a`` the conversion shape of its
  structure and ``s = effect_scale`` in [0, 3]: the effect-to-noise ratio is ``0.5 s |h_a|``, from
  0 to 1.5 (3 on the sparse segment). ``opposing`` is a mild harm here (-0.5).

The continuous member of the structured fit populations (issue 24); see ``structured_revenue``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ContinuousTemplate, feature_template, param, POSITIVE, real, Surface
from dgps.structured import StructuredTemplate, tier_values

_TIER_OFFSET = {"bronze": 0.0, "silver": 0.5, "gold": 1.0}


@dataclass(frozen=True)
class StructuredContinuous(StructuredTemplate, ContinuousTemplate):
    """See the module docstring."""

    effect_scale: float = param(1.0, real(low=0.0, high=3.0))
    outcome_sd: float = param(2.0, POSITIVE)

    name = "structured_continuous"
    metric = "session_minutes"

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        s = self.effect_scale
        x1 = visitors["x1"].to_numpy(dtype=np.float64)
        x2 = visitors["x2"].to_numpy(dtype=np.float64)
        mu0 = 5.0 + 1.5 * x1 + 0.5 * x2**2 + tier_values(visitors, _TIER_OFFSET)
        mu = [mu0] + [mu0 + 0.5 * s * h * self.outcome_sd for h, _ in self.arm_shapes(visitors)]
        return Surface(mean=np.column_stack(mu))


make = feature_template(StructuredContinuous)
