"""``multi_arm_conversion``: an A/B/N conversion test (binary metric, K >= 3) with per-arm lifts.

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`). Metric ``conversion_rate``,
outcome ``1[converted]``. Control conversion ``p0 = base_rate[cluster] · engagement(visits)``
with ``base_rate = (0.08, 0.14, 0.11, 0.06)``; treatment ``a`` adds ``lifts[a - 1][cluster]``
(additive, clipped to [0.001, 0.999]). Treatments are ``control, B, C, ...`` (one letter per row
of ``lifts``). Default ``lifts`` (K = 3):

=========  =======  =======
cluster    B        C
=========  =======  =======
0          +0.02    +0.08
1          +0.05    -0.01
2          +0.01    +0.06
3          +0.01    +0.03
=========  =======  =======

``C`` wins on average (about +0.04 against about +0.02 for ``B``, cluster weights 0.30, 0.25,
0.20, 0.25); per cluster the oracle picks ``C`` for clusters 0, 2 and 3 and ``B`` for the loyal
regulars (cluster 1), where ``C`` hurts. The scored truth is conditional on the features,
``E[p_a - p0 | x] = sum_c P(c | x) (p_a - p0)_c`` with the exact cluster posterior (see
:mod:`dgps.base`); the cluster-level table above is the data's law.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, ConversionTemplate, SimGenerator, Surface, engagement
from pytyche._validation import invalid

BASE_RATE = np.array([0.08, 0.14, 0.11, 0.06])
DEFAULT_LIFTS = ((0.02, 0.05, 0.01, 0.01), (0.08, -0.01, 0.06, 0.03))


@dataclass(frozen=True)
class MultiArmConversion(ConversionTemplate, ArchetypeTemplate):
    """See the module docstring."""

    lifts: tuple[tuple[float, float, float, float], ...] = DEFAULT_LIFTS

    name = "multi_arm_conversion"

    def __post_init__(self) -> None:
        where = "multi_arm_conversion"
        expected = "one row of 4 finite additive lifts in (-1, 1) (one per cluster) per non-control arm, 1 to 25 rows"
        try:
            lifts = tuple(tuple(float(v) for v in row) for row in self.lifts)
        except (TypeError, ValueError):
            raise invalid("lifts", where, expected, self.lifts) from None
        if not 1 <= len(lifts) <= 25 or any(len(r) != 4 or any(not np.isfinite(v) or abs(v) >= 1 for v in r) for r in lifts):
            raise invalid("lifts", where, expected, self.lifts)
        object.__setattr__(self, "lifts", lifts)

    @property
    def treatments(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("control",) + tuple(string.ascii_uppercase[1 : 1 + len(self.lifts)])

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        p0 = BASE_RATE[clusters] * engagement(visitors)
        lift = np.asarray(self.lifts)[:, clusters].T  # (n, K-1)
        return Surface(p=np.clip(np.column_stack([p0, p0[:, None] + lift]), 0.001, 0.999))


def make(
    *,
    seed: int = 0,
    n_visitors: int | None = None,
    experiment_id: str | None = None,
    lifts: Sequence[Sequence[float]] = DEFAULT_LIFTS,
) -> SimGenerator:
    """A ``multi_arm_conversion`` generator (truth in the module docstring)."""
    template = MultiArmConversion(lifts=tuple(tuple(r) for r in lifts))  # type: ignore[arg-type]
    return SimGenerator(template, seed=seed, n_visitors=n_visitors, experiment_id=experiment_id)
