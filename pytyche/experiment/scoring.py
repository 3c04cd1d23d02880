"""Cell scoring: each cell's observed mean outcome, standard error and traffic in one round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pytyche.contracts.observed import ObservedExperimentData
from pytyche.experiment.plan import NextRoundPlan

__all__ = ["CellScore", "score_cells"]


@dataclass(frozen=True)
class CellScore:
    """Observed performance of one cell in one round.

    ``mean_outcome`` is the cell's average observed outcome and ``se`` its standard error
    (``sd / sqrt(n)``; NaN for a cell with fewer than 2 visitors); ``weight`` the planned share,
    ``share`` the realised one; ``arm_counts`` visitors per treatment.
    """

    cell_id: str
    n_visitors: int
    mean_outcome: float
    se: float
    weight: float
    share: float
    arm_counts: Mapping[str, int] = field(default_factory=dict)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Normal-approximation interval ``mean ± z·se``."""
        return self.mean_outcome - z * self.se, self.mean_outcome + z * self.se


def score_cells(observed: ObservedExperimentData, plan: NextRoundPlan) -> tuple[CellScore, ...]:
    """Score every cell of ``plan`` on one round's observed data (plan order)."""
    cells = observed.cells()
    y = observed.outcome
    names = np.repeat(np.asarray(observed.variant_names, dtype=object), [v.n for v in observed.variants])
    n_total = len(y)
    out = []
    for c in plan.cells:
        sel = cells == c.id
        n = int(sel.sum())
        ys = y[sel]
        mean = float(ys.mean()) if n else float("nan")
        se = float(ys.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("nan")
        counts = {t: int(np.sum(names[sel] == t)) for t in observed.variant_names if np.any(names[sel] == t)}
        out.append(CellScore(c.id, n, mean, se, c.weight, n / n_total if n_total else 0.0, counts))
    return tuple(out)
