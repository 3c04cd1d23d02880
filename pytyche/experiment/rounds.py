"""Round-level results: :class:`Round`, :class:`Experiment`, :class:`TruthComparison`, cell scores.

A *round* is the temporal slot (index, the plan shipped, the data it produced); the *experiment*
is what that round yields: the cumulative data the posterior was fit on, the analysis, the
scored cells, and the recommendation for the next round. ``SequentialExperiment.history`` is a
list of :class:`Experiment`, one per round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytyche.calibrate.sbc import evaluate_decisions
from pytyche.contracts.enums import ClaimLevel
from pytyche.contracts.observed import ObservedExperimentData
from pytyche.contracts.results import AnalysisResult, DiscoveredSegment, PolicyTreeResult
from pytyche.contracts.truth import CalibrationTruth
from pytyche.experiment.cells import Cell
from pytyche.experiment.graduation import GraduationCandidate, ShipSignal
from pytyche.experiment.plan import NextRoundPlan

__all__ = [
    "CellScore",
    "Round",
    "Experiment",
    "TruthComparison",
    "score_cells",
    "recommended_arms",
    "compare_to_truth",
]


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


@dataclass(frozen=True)
class TruthComparison:
    """Per-round truth-vs-estimate metrics (sim mode only), over the cumulative visitors.

    Attributes
    ----------
    cate_rmse
        Root mean square error of the posterior-mean CATE against the true CATE, over visitors
        and non-control treatments.
    policy_accuracy
        Fraction of visitors whose recommended treatment is truth-optimal (ties count as a match).
    oracle_gap_rpv
        ``rpv_oracle - rpv_policy``: expected outcome per visitor lost by the recommended policy.
    rpv_policy, rpv_uniform, rpv_oracle
        Mean true expected outcome per visitor under the recommended policy, under uniform random
        allocation over the fitted treatments, and under the oracle policy.
    rpv_omniscient
        Mean expected outcome per visitor of the *omniscient* oracle that also knows each
        visitor's latent cluster (``None`` when the truth carries no latent surface). No policy
        that sees only the features can reach it; it is reported, never scored against.

    The truth is ``E[. | x]`` (see :mod:`pytyche.contracts.truth`); the *oracle policy* is
    ``argmax_a E[Y | x, a]``, which a policy that sees the features can attain. The *recommended
    policy* gives each visitor the treatment with the highest posterior mean outcome in the
    visitor's policy-tree segment (among the next round's active treatments).
    """

    cate_rmse: float
    policy_accuracy: float
    oracle_gap_rpv: float
    rpv_policy: float
    rpv_uniform: float
    rpv_oracle: float
    rpv_omniscient: float | None = None

    @property
    def uniform_gap_rpv(self) -> float:
        """``rpv_oracle - rpv_uniform``: the gap a policy has to beat."""
        return self.rpv_oracle - self.rpv_uniform


def recommended_arms(
    posterior: Any,
    policy_tree: PolicyTreeResult | None,
    active: Sequence[str] | None = None,
) -> np.ndarray:
    """``(N,)`` recommended treatment per cumulative visitor, as an index into ``posterior.treatments``.

    Per policy-tree segment, the treatment (among ``active``) with the highest posterior mean
    outcome over the segment's members; without a tree, per visitor.
    """
    treatments = tuple(posterior.treatments)
    mean = np.asarray(posterior.outcome_samples, dtype=np.float64).mean(axis=1)  # (N, K)
    allowed = np.array([active is None or t in active for t in treatments])
    if not allowed.any():
        allowed[:] = True
    masked = np.where(allowed[None, :], mean, -np.inf)
    if policy_tree is None:
        return np.argmax(masked, axis=1)
    leaves = np.asarray(policy_tree.leaf_of(posterior.observed.features_frame()))
    rec = np.empty(len(leaves), dtype=np.int64)
    for leaf in np.unique(leaves):
        sel = leaves == leaf
        rec[sel] = int(np.argmax(masked[sel].mean(axis=0)))
    return rec


def compare_to_truth(posterior: Any, truth: CalibrationTruth, rec_arm: np.ndarray) -> TruthComparison:
    """Score a posterior and its recommended policy against cumulative ground truth.

    ``truth`` rows must be in the posterior's row order; its arms are matched by name. The
    scoring is :func:`pytyche.calibrate.sbc.evaluate_decisions` (the one truth evaluator) of the
    recommended arms and the posterior-mean CATE; this adds the omniscient reference.
    """
    treatments = tuple(posterior.treatments)
    cols = [truth.treatments.index(t) for t in treatments]
    eo = truth.expected_outcome[:, cols]
    est_cate = np.asarray(posterior.cate_mean(), dtype=np.float64)
    ev = evaluate_decisions(np.asarray(rec_arm, dtype=np.int64), eo, cate_estimate=est_cate)
    lat = truth.latent_expected_outcome
    rpv_omniscient = None if lat is None else float(lat[:, cols].max(axis=1).mean())
    return TruthComparison(
        cate_rmse=ev.cate_rmse,
        policy_accuracy=ev.policy_accuracy,
        oracle_gap_rpv=ev.oracle_gap_rpv,
        rpv_policy=ev.rpv_policy,
        rpv_uniform=ev.rpv_uniform,
        rpv_oracle=ev.rpv_oracle,
        rpv_omniscient=rpv_omniscient,
    )


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
