"""Round-level records: :class:`Round` and :class:`Experiment`.

A *round* is the temporal slot (index, the plan shipped, the data it produced); the *experiment*
is what that round yields: the cumulative data the posterior was fit on, the analysis, the
scored cells, and the recommendation for the next round. ``SequentialExperiment.history`` is a
list of :class:`Experiment`, one per round.

What a record holds is computed elsewhere: cell scores in :mod:`pytyche.experiment.scoring`, the
sim-mode truth comparison in :mod:`pytyche.experiment.truth_comparison` (both re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytyche.contracts.enums import ClaimLevel
from pytyche.contracts.observed import ObservedExperimentData
from pytyche.contracts.results import AnalysisResult, DiscoveredSegment, PolicyTreeResult
from pytyche.contracts.truth import CalibrationTruth
from pytyche.experiment.cells import Cell
from pytyche.experiment.graduation import GraduationCandidate, ShipSignal
from pytyche.experiment.plan import NextRoundPlan
from pytyche.experiment.scoring import CellScore, score_cells
from pytyche.experiment.truth_comparison import TruthComparison, compare_to_truth, recommended_arms

__all__ = [
    "CellScore",
    "Round",
    "Experiment",
    "TruthComparison",
    "score_cells",
    "recommended_arms",
    "compare_to_truth",
]


@dataclass(frozen=True, eq=False)
class Round:
    """One round's slot: its index, the plan shipped, and the data it produced.

    Attributes
    ----------
    round_idx
        Position in the series (0-based).
    plan
        The plan that was shipped (engine proposal or operator override), with ``n_visitors``.
    observed
        This round's own data (its own variant-major order).
    truth
        This round's ground truth (sim mode) aligned to ``observed``'s rows, or ``None``.
    positions
        This round's position map into the cumulative data of the round's own
        :class:`Experiment`: ``positions[i]`` is the cumulative row of round row ``i``. Later
        rounds re-lay the cumulative data out (it stays variant-major), so use
        ``Experiment.positions[r]`` to locate round ``r`` in a later experiment's data.
    overridden
        Whether the operator overrode the cells for this round.
    """

    round_idx: int
    plan: NextRoundPlan
    observed: ObservedExperimentData
    truth: CalibrationTruth | None
    positions: np.ndarray
    overridden: bool = False

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.plan.cells

    @property
    def n_visitors(self) -> int:
        return self.observed.n_visitors

    @property
    def cluster_ids(self) -> np.ndarray | None:
        """The DGP's latent cluster of each visitor (sim mode), else ``None``."""
        return None if self.truth is None else self.truth.cluster_ids


@dataclass(frozen=True, eq=False)
class Experiment:
    """What one round of a sequential experiment produced.

    Attributes
    ----------
    round
        The :class:`Round` (index, shipped plan, the round's own data and truth).
    observed
        The cumulative data the posterior was fit on (variant-major; ``posterior.observed``).
    posterior
        The BCF posterior on the cumulative data (calibrated when a calibration was given).
    analysis
        The :class:`~pytyche.contracts.AnalysisResult` (policy tree, segments, recommendations).
    cell_scores
        Observed outcome of each of this round's cells.
    next_plan
        The recommendation engine's :class:`NextRoundPlan` for the following round.
    truth_comparison
        Sim mode: :class:`TruthComparison` against the cumulative truth; ``None`` in real mode.
    cumulative_truth
        Sim mode: ground truth aligned to ``observed``'s rows; ``None`` in real mode.
    ship_signals
        Every (treatment, segment) the graduation rule fired SHIP for this round, with how many
        consecutive rounds it has been sustained.
    fit_seed
        The seed the fit used (derived from the master seed and the round index).
    positions
        The position map of ``observed``: ``positions[r][i]`` is the cumulative row of round
        ``r``'s row ``i`` (every round up to this one).
    srm
        The round's sample-ratio-mismatch test (:class:`~pytyche.experiment.srm.SRMResult`:
        ``p_value``, ``flagged`` when p < 0.001) of its own data against the plan it shipped.
    policy_value
        Off-policy (cross-fitted AIPW) value of the recommended policy against control and
        uniform allocation, with intervals (:class:`~pytyche.experiment.policy_value.PolicyValue`),
        or ``None`` when the data are too small to cross-fit.
    """

    round: Round
    observed: ObservedExperimentData
    posterior: Any
    analysis: AnalysisResult
    cell_scores: tuple[CellScore, ...]
    next_plan: NextRoundPlan
    truth_comparison: TruthComparison | None
    cumulative_truth: CalibrationTruth | None
    ship_signals: tuple[ShipSignal, ...] = ()
    fit_seed: int = 0
    positions: tuple[np.ndarray, ...] = ()
    srm: Any = None
    policy_value: Any = None

    @property
    def round_idx(self) -> int:
        return self.round.round_idx

    @property
    def cells(self) -> tuple[Cell, ...]:
        """The cells shipped this round."""
        return self.round.plan.cells

    @property
    def recommendation(self) -> NextRoundPlan:
        return self.next_plan

    @property
    def policy_tree(self) -> PolicyTreeResult | None:
        return self.analysis.policy_tree

    @property
    def segments(self) -> tuple[DiscoveredSegment, ...]:
        return tuple(self.analysis.segments)

    @property
    def claim_level(self) -> ClaimLevel:
        return self.analysis.claim_level

    def graduation_candidates(self, sustained_rounds: int = 2) -> list[GraduationCandidate]:
        """This round's SHIP signals sustained for at least ``sustained_rounds`` rounds."""
        return [s.candidate() for s in self.ship_signals if s.rounds_sustained >= sustained_rounds]

    def cell_score(self, cell_id: str) -> CellScore:
        for s in self.cell_scores:
            if s.cell_id == cell_id:
                return s
        raise ValueError(f"Unknown cell id {cell_id!r}: this round's cells are {[s.cell_id for s in self.cell_scores]}.")
