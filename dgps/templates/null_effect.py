"""``null_effect``: no treatment effect anywhere (a zero-inflated revenue metric).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`). Every treatment has the same
conversion probability and basket as control for every visitor: ``p = BASE_P[cluster] ·
engagement(visits) · conversion_scale`` (the ``clustered_realistic`` control surface) and
``m = BASE_M[cluster]``; metric ``revenue_per_visitor`` (hurdle). The true CATE is exactly 0,
every policy is oracle-optimal (oracle gap 0 for any policy), and no SHIP decision is correct.
Treatments default to ``("control", "treatment")``; any K >= 2 names may be given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, engagement, RevenueTemplate, SimGenerator, Surface
from dgps.templates.clustered_realistic import BASE_M, BASE_P
from pytyche._validation import invalid


@dataclass(frozen=True)
class NullEffect(RevenueTemplate, ArchetypeTemplate):
    """See the module docstring."""

    treatments: tuple[str, ...] = field(default=("control", "treatment"))

    name = "null_effect"

    def __post_init__(self) -> None:
        t = tuple(self.treatments)
        if len(t) < 2 or len(set(t)) != len(t) or any(not isinstance(x, str) or not x for x in t):
            raise invalid("treatments", "null_effect", "at least 2 unique non-empty names, control first", list(t))
        object.__setattr__(self, "treatments", t)
        super().__post_init__()

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        k = len(self.treatments)
        p = np.clip(BASE_P[clusters] * engagement(visitors) * self.conversion_scale, 0.0, 0.95)
        return Surface(p=np.repeat(p[:, None], k, axis=1), m=np.repeat(BASE_M[clusters][:, None], k, axis=1))


def make(
    *,
    seed: int = 0,
    n_visitors: int | None = None,
    experiment_id: str | None = None,
    treatments: Sequence[str] = ("control", "treatment"),
    conversion_scale: float = 1.0,
    severity_sigma: float = 0.6,
) -> SimGenerator:
    """A ``null_effect`` generator (truth in the module docstring)."""
    template = NullEffect(treatments=tuple(treatments), conversion_scale=conversion_scale, severity_sigma=severity_sigma)
    return SimGenerator(template, seed=seed, n_visitors=n_visitors, experiment_id=experiment_id)
