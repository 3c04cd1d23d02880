"""``binary_conversion``: a binary conversion metric with cluster-specific effects (K = 2).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`). Metric ``conversion_rate``,
outcome ``1[converted]``. Control conversion ``p0 = base_rate[cluster] · engagement(visits)``
with ``base_rate = (0.08, 0.14, 0.11, 0.06)``; the ``treatment`` adds ``lift[cluster]``
percentage points (default ``(+0.08, -0.03, +0.04, 0.00)``: helps bargain hunters and big-basket
browsers, hurts loyal regulars, nothing for casual visitors), clipped to [0.001, 0.999].
The true CATE is ``p1 - p0``; the oracle treats clusters 0 and 2 only (cluster 3 is a tie).
Pass e.g. ``lift=(0.15, 0.15, 0.15, 0.15)`` for a clear, homogeneous winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, ConversionTemplate, engagement, SimGenerator, Surface
from pytyche._validation import invalid

BASE_RATE = np.array([0.08, 0.14, 0.11, 0.06])


@dataclass(frozen=True)
class BinaryConversion(ConversionTemplate, ArchetypeTemplate):
    """See the module docstring."""

    lift: tuple[float, float, float, float] = (0.08, -0.03, 0.04, 0.0)

    name = "binary_conversion"
    treatments = ("control", "treatment")

    def __post_init__(self) -> None:
        lift = tuple(float(x) for x in self.lift)
        if len(lift) != 4 or any(not np.isfinite(x) or abs(x) >= 1 for x in lift):
            raise invalid("lift", "binary_conversion", "4 finite additive lifts in (-1, 1), one per cluster", list(self.lift))
        object.__setattr__(self, "lift", lift)

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = BASE_RATE[clusters] * engagement(visitors)
        p1 = p0 + np.asarray(self.lift)[clusters]
        return Surface(p=np.clip(np.column_stack([p0, p1]), 0.001, 0.999))


def make(
    *,
    seed: int = 0,
    n_visitors: int | None = None,
    experiment_id: str | None = None,
    lift: Sequence[float] = (0.08, -0.03, 0.04, 0.0),
) -> SimGenerator:
    """A ``binary_conversion`` generator (truth in the module docstring)."""
    template = BinaryConversion(lift=tuple(lift))  # type: ignore[arg-type]
    return SimGenerator(template, seed=seed, n_visitors=n_visitors, experiment_id=experiment_id)
