"""``clustered_realistic``: four customer archetypes, zero-inflated revenue, three treatments.

Truth
-----
Visitors come from the four-archetype mixture of :func:`dgps.base.archetype_visitors`
(shares 30/25/20/25%; features ``device``, ``tenure_months``, ``visits_30d``, and an
uninformative ``channel``). Treatments: ``control``, ``low_promo``, ``free_ship``.
Metric ``revenue_per_visitor`` (hurdle): conversion ``p`` and expected basket given conversion
``m`` (lognormal basket, log-sd ``severity_sigma``), ``E[Y] = p·m``.

=========  ======================  =======  =======  ====================  ====================
cluster    archetype               base p   base m   low_promo (p×, m×)    free_ship (p×, m×)
=========  ======================  =======  =======  ====================  ====================
0          bargain hunters         3.0%     $35      1.80, 0.90            1.20, 1.00
1          loyal regulars          5.0%     $80      1.05, 0.85            1.00, 0.97
2          big-basket browsers     4.0%     $140     1.10, 0.90            1.60, 1.05
3          casual visitors         2.0%     $50      1.30, 0.90            1.15, 1.00
=========  ======================  =======  =======  ====================  ====================

Base ``p`` is further scaled by an engagement modifier in about [0.8, 1.25] rising with
``visits_30d`` (so conversion spans roughly 2-6%), then by ``conversion_scale``; multipliers are
raised to the power ``effect_scale`` (0 = no effect anywhere, 1 = the table). Revenue per
visitor at ``effect_scale=1``: cluster 0 -> ``low_promo`` wins (+62%), cluster 1 -> ``control``
wins (promotions cannibalise margin), cluster 2 -> ``free_ship`` wins (+68%), cluster 3 ->
``low_promo`` narrowly (+17% vs +15% for ``free_ship``). Different arms win in different
clusters; the oracle policy assigns per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import ArchetypeTemplate, engagement, feature_template, param, real, RevenueTemplate, Surface

BASE_P = np.array([0.030, 0.050, 0.040, 0.020])
BASE_M = np.array([35.0, 80.0, 140.0, 50.0])
# (arm, cluster) multipliers; arm 0 (control) is 1
LIFT_P = np.array([[1.0, 1.0, 1.0, 1.0], [1.80, 1.05, 1.10, 1.30], [1.20, 1.00, 1.60, 1.15]])
LIFT_M = np.array([[1.0, 1.0, 1.0, 1.0], [0.90, 0.85, 0.90, 0.90], [1.00, 0.97, 1.05, 1.00]])


@dataclass(frozen=True)
class ClusteredRealistic(RevenueTemplate, ArchetypeTemplate):
    """See the module docstring.

    Parameters
    ----------
    effect_scale
        Exponent on the treatment multipliers (0: no effects; 1: the documented table).
    conversion_scale, severity_sigma
        See :class:`~dgps.base.RevenueTemplate` (``conversion_scale=1``: the realistic 2-6%).
    """

    effect_scale: float = param(1.0, real(low=0.0))

    name = "clustered_realistic"
    treatments = ("control", "low_promo", "free_ship")

    #: (arm, cluster) multipliers of conversion and basket; subclasses (``many_arms``) swap them
    lift_p = LIFT_P
    lift_m = LIFT_M

    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        base_p = BASE_P[clusters] * engagement(visitors) * self.conversion_scale
        p = np.clip(base_p[:, None] * (self.lift_p[:, clusters].T ** self.effect_scale), 0.0, 0.95)
        m = BASE_M[clusters][:, None] * (self.lift_m[:, clusters].T ** self.effect_scale)
        return Surface(p=p, m=m)


make = feature_template(ClusteredRealistic)
