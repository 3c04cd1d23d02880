"""Graduation: (treatment, segment) pairs whose recommendation has fired SHIP for N rounds running.

Pytyche surfaces graduation candidates as structured data; the operator (or an agentic caller)
decides whether to promote one to broader rollout. The library never auto-graduates.

A :class:`GraduationRule` looks at one round's posterior and analysis and returns the
(treatment, segment) pairs that fire SHIP *this round* as :class:`ShipSignal` s. The loop chains
them across rounds (:func:`sustain`): a signal continues one from the previous round when it names
the same treatment and the same segment, where "same segment" means the population level for
both, or member sets (evaluated on the current cumulative visitors) with Jaccard overlap >= 0.5,
the criterion the stability score uses. Policy trees are refit every round, so leaf ids and split
thresholds move; matching on membership keeps a segment's identity across refits.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from pytyche._validation import InstanceOf, Interval, validate
from pytyche.contracts.enums import Decision
from pytyche.contracts.results import (
    CREDIBLE_STABILITY,
    AnalysisResult,
    DecisionThresholds,
    RecommendationSummary,
    credible_flags,
)
from pytyche.contracts.rules import AllOf

__all__ = [
    "EXPECTED_LOSS_RULE_CONSTRAINTS",
    "GraduationRule",
    "ExpectedLossRule",
    "GraduationCandidate",
    "ShipSignal",
    "sustain",
    "SEGMENT_MATCH_JACCARD",
]

#: Jaccard overlap at which a segment continues a previous round's segment
SEGMENT_MATCH_JACCARD = 0.5


@dataclass(frozen=True)
class GraduationCandidate:
    """A (treatment, segment) pair whose SHIP has been sustained for ``rounds_sustained`` rounds.

    Attributes
    ----------
    treatment
        The treatment to consider promoting.
    segment_id
        The policy-tree leaf id in the latest round, or ``None`` for the whole population.
    rule
        The segment's rule as text (``"all visitors"`` for the population).
    rounds_sustained
        Consecutive rounds (ending at the latest) the pair has fired SHIP.
    summary
        The latest round's :class:`~pytyche.contracts.RecommendationSummary` for the pair.
    """

    treatment: str
    segment_id: int | None
    rule: str
    rounds_sustained: int
    summary: RecommendationSummary

    def __str__(self) -> str:
        s = self.summary
        return (
            f"{self.treatment} in [{self.rule}]: SHIP for {self.rounds_sustained} consecutive rounds "
            f"(lift {s.lift_mean:+.4g}, P(positive) {s.p_positive:.2f}, P(better) {s.p_better:.2f}, "
            f"expected loss {s.expected_loss:.4g})"
        )


@dataclass(frozen=True)
class ShipSignal:
    """One (treatment, segment) pair firing SHIP in one round.

    ``segment_rule`` is ``None`` for the population level; across rounds, segments are matched
    by evaluating the rules on the current cumulative visitors (see :func:`sustain`).
    ``stability`` is the segment's stability score (NaN for the population level).
    """

    treatment: str
    segment_id: int | None
    segment_rule: AllOf | None
    summary: RecommendationSummary
    stability: float = float("nan")
    rounds_sustained: int = 1

    @property
    def rule_text(self) -> str:
        return "all visitors" if self.segment_rule is None else str(self.segment_rule)

    def candidate(self) -> GraduationCandidate:
        return GraduationCandidate(self.treatment, self.segment_id, self.rule_text, self.rounds_sustained, self.summary)


@runtime_checkable
class GraduationRule(Protocol):
    """Decides which (treatment, segment) pairs fire SHIP in one round.

    Implement ``ship_signals(posterior, analysis)`` returning a list of :class:`ShipSignal`
    (``rounds_sustained`` left at 1: the loop chains rounds).
    """

    def ship_signals(self, posterior: Any, analysis: AnalysisResult) -> list[ShipSignal]:
        ...


def _members(rule: AllOf | None, frame: pd.DataFrame) -> np.ndarray:
    return np.ones(len(frame), dtype=bool) if rule is None else np.asarray(rule.mask(frame), dtype=bool)


#: the settings of :class:`ExpectedLossRule` (checked at construction)
EXPECTED_LOSS_RULE_CONSTRAINTS: dict[str, Any] = {
    "thresholds": [InstanceOf(DecisionThresholds, "a DecisionThresholds"), None],
    "stability_threshold": Interval(numbers.Real, 0.0, 1.0, loose=True),
    "include_population": InstanceOf(bool, "a bool"),
}


class ExpectedLossRule:
    """The default graduation rule: SHIP under the expected-loss gate, on credible segments.

    A (treatment, segment) pair fires when
    :func:`~pytyche.compare.variants.recommendation_summary` decides ``SHIP`` --
    ``expected_loss < tolerance`` and ``p_positive > 0.95`` and ``p_better > 0.80`` (the
    ``thresholds``) -- on the whole population or on a credible policy-tree segment: one whose
    stability score is at least ``stability_threshold``, in a tree of at least two leaves
    (:func:`~pytyche.contracts.results.credible_flags`; a one-leaf tree's segment is the
    population itself). The loop reports a candidate once a pair has fired for
    ``sustained_rounds`` consecutive rounds (default 2, see
    :meth:`SequentialExperiment.graduation_candidates`).

    Parameters
    ----------
    thresholds
        The decision thresholds (default :class:`~pytyche.contracts.DecisionThresholds`).
    stability_threshold
        Minimum segment stability score (default 0.80). Segments with a NaN score (bootstrap
        suppressed) are excluded. The score is the analysis's (``stability_method`` of the
        policy tree: the sequential experiment's ``stability_method``, default ``"posterior"``).
    include_population
        Whether the population level (all visitors) is a candidate segment (default True).
    """

    def __init__(
        self,
        thresholds: DecisionThresholds | None = None,
        stability_threshold: float = CREDIBLE_STABILITY,
        include_population: bool = True,
    ) -> None:
        params = dict(thresholds=thresholds, stability_threshold=stability_threshold, include_population=include_population)
        checked = validate(params, EXPECTED_LOSS_RULE_CONSTRAINTS, "ExpectedLossRule")
        self.thresholds = thresholds if thresholds is not None else DecisionThresholds()
        self.stability_threshold = checked["stability_threshold"]
        self.include_population = include_population

    def __repr__(self) -> str:
        return (
            f"ExpectedLossRule(thresholds={self.thresholds!r}, stability_threshold={self.stability_threshold}, "
            f"include_population={self.include_population})"
        )

    def ship_signals(self, posterior: Any, analysis: AnalysisResult) -> list[ShipSignal]:
        from pytyche.compare.variants import recommendation_summary

        treatments = tuple(posterior.treatments)
        out: list[ShipSignal] = []
        if self.include_population:
            for t in treatments[1:]:
                s = recommendation_summary(posterior, t, thresholds=self.thresholds, mask=None, segment_id=None)
                if s.decision == Decision.SHIP:
                    out.append(ShipSignal(t, None, None, s))
        tree = analysis.policy_tree
        if tree is None:
            return out
        flags = credible_flags((seg.stability_score for seg in tree.segments), self.stability_threshold)
        if not any(flags):
            return out  # no credible segment (a one-leaf tree has none: it is the population itself)
        leaves = np.asarray(tree.leaf_of(posterior.observed.features_frame()))
        for seg, credible in zip(tree.segments, flags):
            if not credible:
                continue
            stab = float(seg.stability_score)
            mask = leaves == seg.id
            if not mask.any():
                continue
            for t in treatments[1:]:
                s = recommendation_summary(posterior, t, thresholds=self.thresholds, mask=mask, segment_id=seg.id)
                if s.decision == Decision.SHIP:
                    out.append(ShipSignal(t, seg.id, seg.rule, s, stab))
        return out


def sustain(
    current: Sequence[ShipSignal],
    previous: Sequence[ShipSignal],
    frame: pd.DataFrame,
) -> tuple[ShipSignal, ...]:
    """Chain this round's signals onto the previous round's (see the module docstring).

    ``frame`` is the current cumulative visitors' features; ``previous`` the previous round's
    signals (already chained). Returns ``current`` with ``rounds_sustained`` set.
    """
    out = []
    prev_masks = [(p, _members(p.segment_rule, frame)) for p in previous]
    for sig in current:
        mine = _members(sig.segment_rule, frame)
        best = 0
        for p, theirs in prev_masks:
            if p.treatment != sig.treatment or (p.segment_rule is None) != (sig.segment_rule is None):
                continue
            union = np.count_nonzero(mine | theirs)
            jac = np.count_nonzero(mine & theirs) / union if union else 0.0
            if jac >= SEGMENT_MATCH_JACCARD:
                best = max(best, p.rounds_sustained)
        out.append(replace(sig, rounds_sustained=best + 1))
    return tuple(out)
