"""``harmful_arm``: one helpful and one harmful treatment, homogeneous effects (revenue metric).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`), control surface as in
``clustered_realistic`` (``p = BASE_P[cluster] · engagement · conversion_scale``,
``m = BASE_M[cluster]``), metric ``revenue_per_visitor`` (hurdle). Treatments:

- ``good``: conversion × ``1 + good_lift`` (default +25%) for every visitor, basket unchanged,
- ``harmful``: conversion × ``1 - harm`` (default −50%) and basket × 0.9 for every visitor.

So ``good`` is optimal everywhere, ``harmful`` worst everywhere (it should be STOPped and dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, engagement, feature_template, param, real, RevenueTemplate, Surface
from dgps.templates.clustered_realistic import BASE_M, BASE_P


@dataclass(frozen=True)
class HarmfulArm(RevenueTemplate, ArchetypeTemplate):
    """See the module docstring."""

    good_lift: float = param(0.25, real(low=0.0))
    harm: float = param(0.5, real(low=0.0, high=1.0, high_open=True))

    name = "harmful_arm"
    treatments = ("control", "good", "harmful")

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = BASE_P[clusters] * engagement(visitors) * self.conversion_scale
        p = np.clip(np.column_stack([p0, p0 * (1 + self.good_lift), p0 * (1 - self.harm)]), 0.0, 0.95)
        m0 = BASE_M[clusters]
        m = np.column_stack([m0, m0, 0.9 * m0])
        return Surface(p=p, m=m)


make = feature_template(HarmfulArm)
