"""``structured_revenue``: a revenue promo whose effect takes one of the structures of :mod:`dgps.structured`.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features ``x1``, ``x2``, ``x3`` (``N(0, 1)``
rounded to 0.01), ``tier`` (bronze 50% / silver 35% / gold 15%) and ``n_noise`` irrelevant
``noise_j``. Treatments ``control``, ``treatment`` (and ``treatment_b`` at ``n_arms = 3``); metric
``revenue_per_visitor`` (hurdle, lognormal basket with log-sd ``severity_sigma``).

- control ``p0 = 0.05 · conversion_scale · (1 + 0.4 tanh(x1 + 0.5 x3)) · t``, ``t`` 0.8 / 1.0 / 1.4
  by tier; basket ``m0 = 30 · exp(0.25 x2) · (1.5 if gold else 1)``;
- arm ``a``: ``p_a = p0 · (1 + 0.3 s h_a)``, ``m_a = m0 · (1 + 0.2 s g_a)`` with ``(h_a, g_a)`` the
  shapes of its structure (``structure`` for arm 1, ``second_structure`` for arm 2) and
  ``s = effect_scale`` in [0, 3].

A fit population drawn over ``structure`` and ``effect_scale`` spans no effect, uniform and harmful
shifts, a sparse segment, broad smooth effects, effects crossing zero and opposing conversion and
basket effects, from no effect to a large one (calibration fit populations, issue 24). The
prognostic surface shares ``x1`` with the sparse segment and ``x2`` with the smooth effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import feature_template, RevenueTemplate, Surface
from dgps.structured import base_conversion, StructuredTemplate


@dataclass(frozen=True)
class StructuredRevenue(StructuredTemplate, RevenueTemplate):
    """See the module docstring."""

    name = "structured_revenue"

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        s = self.effect_scale
        x2 = visitors["x2"].to_numpy(dtype=np.float64)
        p0 = base_conversion(visitors, 0.05 * self.conversion_scale)
        m0 = 30.0 * np.exp(0.25 * x2) * np.where(visitors["tier"].to_numpy() == "gold", 1.5, 1.0)
        p = [p0] + [p0 * (1.0 + 0.3 * s * h) for h, _ in self.arm_shapes(visitors)]
        m = [m0] + [m0 * (1.0 + 0.2 * s * g) for _, g in self.arm_shapes(visitors)]
        return Surface(p=np.clip(np.column_stack(p), 0.0, 0.95), m=np.column_stack(m))


make = feature_template(StructuredRevenue)
