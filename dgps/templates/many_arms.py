"""``many_arms``: five treatments, each non-control arm best in a different archetype (revenue).

Truth
-----
Four-archetype visitors (:func:`dgps.base.archetype_visitors`), control surface as in
``clustered_realistic`` (``p = BASE_P[cluster] · engagement · conversion_scale``,
``m = BASE_M[cluster]``), metric ``revenue_per_visitor`` (hurdle). Treatments ``control``,
``promo_5``, ``promo_10``, ``free_ship``, ``bundle`` multiply conversion (``p×``) and basket
(``m×``) per cluster; multipliers are raised to ``effect_scale``:

=========  ============  ============  ============  ============
cluster    promo_5       promo_10      free_ship     bundle
=========  ============  ============  ============  ============
0          1.30, 0.95    1.70, 0.90    1.10, 1.00    1.00, 1.05
1          1.05, 0.95    1.05, 0.90    1.00, 1.00    1.10, 1.25
2          1.05, 0.95    1.10, 0.90    1.60, 1.05    1.10, 1.10
3          1.35, 0.95    1.20, 0.90    1.15, 1.00    1.05, 1.00
=========  ============  ============  ============  ============

Best arm per cluster (revenue per visitor): 0 -> ``promo_10`` (+53%), 1 -> ``bundle`` (+38%),
2 -> ``free_ship`` (+68%), 3 -> ``promo_5`` (+28%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgps.base import feature_template
from dgps.templates.clustered_realistic import ClusteredRealistic

# (arm, cluster)
LIFT_P = np.array(
    [
        [1.00, 1.00, 1.00, 1.00],
        [1.30, 1.05, 1.05, 1.35],
        [1.70, 1.05, 1.10, 1.20],
        [1.10, 1.00, 1.60, 1.15],
        [1.00, 1.10, 1.10, 1.05],
    ]
)
LIFT_M = np.array(
    [
        [1.00, 1.00, 1.00, 1.00],
        [0.95, 0.95, 0.95, 0.95],
        [0.90, 0.90, 0.90, 0.90],
        [1.00, 1.00, 1.05, 1.00],
        [1.05, 1.25, 1.10, 1.00],
    ]
)


@dataclass(frozen=True)
class ManyArms(ClusteredRealistic):
    """K = 5 variant of :class:`ClusteredRealistic`: same visitors and control surface, own lifts."""

    name = "many_arms"
    treatments = ("control", "promo_5", "promo_10", "free_ship", "bundle")
    lift_p = LIFT_P
    lift_m = LIFT_M


make = feature_template(ManyArms)
