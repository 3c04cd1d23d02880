"""``structured_conversion``: a conversion test whose effect takes one of the structures of :mod:`dgps.structured`.

Truth
-----
No latent cluster (truth ``E[. | x]`` is the surface). Features ``x1``, ``x2``, ``x3`` (``N(0, 1)``
rounded to 0.01), ``tier`` (bronze 50% / silver 35% / gold 15%) and ``n_noise`` irrelevant
``noise_j``. Treatments ``control``, ``treatment`` (and ``treatment_b`` at ``n_arms = 3``); metric
``conversion_rate`` (binary).

- control ``p0 = 0.10 · conversion_scale · (1 + 0.4 tanh(x1 + 0.5 x3)) · t``, ``t`` 0.8 / 1.0 / 1.4
  by tier;
- arm ``a``: ``p_a = p0 · (1 + 0.3 s h_a)`` with ``h_a`` the conversion shape of its structure and
  ``s = effect_scale`` in [0, 3]. A binary outcome has no basket: ``opposing`` is a mild harm
  here (its conversion shape is -0.5 everywhere). Probabilities are clipped at 0.95: at the spec
  ranges' corners (``conversion_scale`` 3, ``effect_scale`` 2.5) a few percent of treated
  visitors sit at the clip, and the truth is taken after it.

The binary member of the structured fit populations (issue 24); see ``structured_revenue``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ConversionTemplate, feature_template, param, POSITIVE, Surface
from dgps.structured import base_conversion, StructuredTemplate


@dataclass(frozen=True)
class StructuredConversion(StructuredTemplate, ConversionTemplate):
    """See the module docstring."""

    conversion_scale: float = param(1.0, POSITIVE)

    name = "structured_conversion"

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = base_conversion(visitors, 0.10 * self.conversion_scale)
        p = [p0] + [p0 * (1.0 + 0.3 * self.effect_scale * h) for h, _ in self.arm_shapes(visitors)]
        return Surface(p=np.clip(np.column_stack(p), 0.0, 0.95))


make = feature_template(StructuredConversion)
