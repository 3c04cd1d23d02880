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

from dgps.base import ArchetypeTemplate, engagement, SimGenerator, Surface
from dgps.templates.clustered_realistic import BASE_M, BASE_P
from pytyche._validation import check_float


@dataclass(frozen=True)
class HarmfulArm(ArchetypeTemplate):
    """See the module docstring."""

    good_lift: float = 0.25
    harm: float = 0.5
    conversion_scale: float = 1.0
    severity_sigma: float = 0.6

    name = "harmful_arm"
    metric = "revenue_per_visitor"
    family = "hurdle"
    treatments = ("control", "good", "harmful")

    def __post_init__(self) -> None:
        w = "harmful_arm"
        check_float(self.good_lift, "good_lift", w, low=0.0)
        check_float(self.harm, "harm", w, low=0.0, high=1.0, high_open=True)
        check_float(self.conversion_scale, "conversion_scale", w, low=0.0, low_open=True)
        check_float(self.severity_sigma, "severity_sigma", w, low=0.0, low_open=True)

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = BASE_P[clusters] * engagement(visitors) * self.conversion_scale
        p = np.clip(np.column_stack([p0, p0 * (1 + self.good_lift), p0 * (1 - self.harm)]), 0.0, 0.95)
        m0 = BASE_M[clusters]
        m = np.column_stack([m0, m0, 0.9 * m0])
        return Surface(p=p, m=m)


def make(
    *,
    seed: int = 0,
    n_visitors: int | None = None,
    experiment_id: str | None = None,
    good_lift: float = 0.25,
    harm: float = 0.5,
    conversion_scale: float = 1.0,
    severity_sigma: float = 0.6,
) -> SimGenerator:
    """A ``harmful_arm`` generator (truth in the module docstring)."""
    template = HarmfulArm(good_lift=good_lift, harm=harm, conversion_scale=conversion_scale, severity_sigma=severity_sigma)
    return SimGenerator(template, seed=seed, n_visitors=n_visitors, experiment_id=experiment_id)
