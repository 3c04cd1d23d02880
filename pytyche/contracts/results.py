"""Result contracts of the analysis layer: segments, policy trees, comparisons, decisions."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pytyche._validation import Interval, invalid, validate, wrong_type
from pytyche.contracts.arrays import AlignedVisitorArray
from pytyche.contracts.enums import ClaimLevel, Decision
from pytyche.contracts.rules import AllOf

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.contracts.observed import ObservedExperimentData


#: the stability score from which a segment counts as credible (see docs/concepts.md, "stability")
CREDIBLE_STABILITY = 0.80
#: how segment stability is scored unless the caller says otherwise (docs/concepts.md, *Stability*):
#: "posterior", each bootstrap tree refitted on one posterior draw of the CATEs. The other method,
#: "means", scores spurious segments of no-effect data as credible (bench/RESULTS.md, null decisions)
DEFAULT_STABILITY_METHOD = "posterior"
#: the fewest leaves a policy tree needs for any of its segments to count as credible
MIN_CREDIBLE_LEAVES = 2


def is_credible(stability_score: float, threshold: float = CREDIBLE_STABILITY) -> bool:
    """Whether a segment's stability score reaches ``threshold``; a NaN score never does.

    This reads one score. Whether a segment of a policy tree counts as a credible discovery also
    depends on the tree: use :func:`credible_flags` / :func:`credible_segments`.
    """
    score = float(stability_score)
    return not math.isnan(score) and score >= threshold


def credible_flags(stability_scores: Iterable[float], threshold: float = CREDIBLE_STABILITY) -> tuple[bool, ...]:
    """Which segments of ONE policy tree are credible, given every leaf's stability score.

    The one home of the rule every caller (``has_credible_segments``, the experiment summary, the
    graduation rule) applies: a segment is credible when its score reaches ``threshold``
    (:func:`is_credible`) AND the tree has at least :data:`MIN_CREDIBLE_LEAVES` (2) leaves. A
    one-leaf tree's only segment is the whole population: the tree found nothing to tell apart,
    so it has no credible segment, whatever its score. (That score is high without meaning much:
    on null data it was 1.0 under ``"means"`` in every run measured, since posterior-mean labels
    the tree could not split do not split on a resample either, and mostly 0.7 to 1.0 under
    ``"posterior"``, the share of draw-refitted trees with a leaf holding half the visitors.)

    Parameters
    ----------
    stability_scores
        The scores of all the tree's leaves (NaN where the bootstrap was skipped).
    threshold
        Score a segment must reach, in ``[0, 1]``.

    Returns
    -------
    tuple[bool, ...]
        One flag per score, in order; all ``False`` for a tree with fewer than 2 leaves.
    """
    scores = tuple(float(s) for s in stability_scores)
    if len(scores) < MIN_CREDIBLE_LEAVES:
        return (False,) * len(scores)
    return tuple(is_credible(s, threshold) for s in scores)


def credible_segments(
    segments: Sequence["DiscoveredSegment"], threshold: float = CREDIBLE_STABILITY
) -> tuple["DiscoveredSegment", ...]:
    """The credible segments of one policy tree (``segments``: all its leaves), by :func:`credible_flags`."""
    flags = credible_flags((s.stability_score for s in segments), threshold)
    return tuple(s for s, ok in zip(segments, flags) if ok)


def _prob(value: Any, name: str, where: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise invalid(name, where, "a probability in [0, 1]", value)
    return v


_PROBABILITY = Interval(numbers.Real, 0.0, 1.0, loose=True, text="a probability in [0, 1]")
_NON_NEGATIVE = Interval(numbers.Real, 0.0, None, loose=True, text="a finite number >= 0")

#: the fields of :class:`DecisionThresholds` (checked at construction)
THRESHOLDS_CONSTRAINTS: dict[str, Any] = {
    "p_positive_min": _PROBABILITY,
    "p_better_min": _PROBABILITY,
    "p_harmful_min": _PROBABILITY,
    "p_futility_max": _PROBABILITY,
    "tolerance": _NON_NEGATIVE,
    "min_effect": _NON_NEGATIVE,
}


@dataclass(frozen=True)
class DecisionThresholds:
    """The five thresholds of the SHIP / CONTINUE / STOP rule (defaults: docs/concepts.md, *SHIP / CONTINUE / STOP*).

    SHIP when ``expected_loss < tolerance`` and ``p_positive > p_positive_min`` and
    ``p_better > p_better_min``; STOP (harm) when ``p_harmful > p_harmful_min``; STOP (futility)
    when ``p_better < p_futility_max``; CONTINUE otherwise.

    ``tolerance`` and ``min_effect`` are relative to the control arm's mean outcome: the expected
    loss of shipping is ``E[max(0, -lift)] / |control mean|``, "better" means a relative lift above
    ``min_effect`` and "harmful" a relative lift below ``-min_effect``.
    """

    tolerance: float = 0.005
    p_positive_min: float = 0.95
    p_better_min: float = 0.80
    p_harmful_min: float = 0.90
    p_futility_max: float = 0.05
    min_effect: float = 0.01

    def __post_init__(self) -> None:
        validate({name: getattr(self, name) for name in THRESHOLDS_CONSTRAINTS}, THRESHOLDS_CONSTRAINTS, "DecisionThresholds")


@dataclass(frozen=True)
class RecommendationSummary:
    """A decision for one treatment versus the baseline, with its evidence."""

    treatment: str
    baseline: str
    decision: Decision
    expected_loss: float
    p_positive: float
    p_better: float
    p_harmful: float
    lift_mean: float
    lift_ci: tuple[float, float]
    relative_lift_mean: float
    thresholds: DecisionThresholds
    rationale: str
    segment_id: int | None = None
    claim_level: ClaimLevel = ClaimLevel.UNCALIBRATED

    def __post_init__(self) -> None:
        if not isinstance(self.decision, Decision):
            raise wrong_type("decision", "RecommendationSummary", "a Decision", self.decision)
        for name in ("p_positive", "p_better", "p_harmful"):
            _prob(getattr(self, name), name, "RecommendationSummary")


@dataclass(frozen=True)
class ComparisonResult:
    """Pairwise comparison of treatments against the baseline from joint posterior draws.

    ``lift_draws[t]`` are the per-draw average lifts of treatment ``t`` versus ``baseline`` over
    the compared population; ``p_best`` the posterior probability each treatment (baseline
    included) has the highest mean outcome.
    """

    baseline: str
    treatments: tuple[str, ...]
    lift_draws: Mapping[str, np.ndarray]
    baseline_mean: float
    p_best: Mapping[str, float]
    level: float = 0.90

    def lift_mean(self, treatment: str) -> float:
        return float(np.mean(self._draws(treatment)))

    def lift_interval(self, treatment: str, level: float | None = None) -> tuple[float, float]:
        lv = self.level if level is None else level
        _prob(lv, "level", "ComparisonResult.lift_interval")
        d = self._draws(treatment)
        return float(np.quantile(d, (1 - lv) / 2)), float(np.quantile(d, (1 + lv) / 2))

    def _draws(self, treatment: str) -> np.ndarray:
        if treatment not in self.lift_draws:
            raise ValueError(f"Unknown treatment {treatment!r}: compared treatments are {list(self.treatments)}.")
        return np.asarray(self.lift_draws[treatment])


@dataclass(frozen=True)
class DiscoveredSegment:
    """One policy-tree leaf: a feature-space region with its effect estimates.

    ``gate_estimate`` / ``gate_ci`` are the group-average treatment effect (per non-control
    treatment, 80% interval by default) over the segment's members; ``arm_best_probabilities``
    the posterior probability each treatment is best on average in the segment.
    """

    id: int
    rule: AllOf
    population_share: float
    gate_estimate: Mapping[str, float]
    gate_ci: Mapping[str, tuple[float, float]]
    stability_score: float
    arm_best_probabilities: Mapping[str, float]
    n_visitors: int = 0
    best_treatment: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rule, AllOf):
            raise wrong_type("rule", "DiscoveredSegment", "an AllOf rule", self.rule)
        _prob(self.population_share, "population_share", "DiscoveredSegment")
        s = float(self.stability_score)
        if not (math.isnan(s) or 0.0 <= s <= 1.0):
            raise invalid("stability_score", "DiscoveredSegment", "in [0, 1] or NaN", s)


@dataclass(frozen=True)
class PolicyTreeResult:
    """The policy tree fitted on per-visitor CATEs, with its segments and allocation.

    ``tree`` is a ``sklearn.tree.DecisionTreeClassifier`` over ``feature_names`` (categoricals
    integer-coded by ``categories``); ``segments`` one per leaf ordered by leaf id;
    ``allocation_map[leaf_id][treatment]`` Thompson weights summing to 1 per leaf;
    ``stability_scores[leaf_id]`` bootstrap replicability, computed by ``stability_method``
    (``"posterior"``, the default :data:`DEFAULT_STABILITY_METHOD`, or ``"means"``); ``observed``
    shared by identity with the posterior it came from. A tree with one leaf has no credible
    segment (:func:`credible_segments`).
    """

    tree: Any
    segments: tuple[DiscoveredSegment, ...]
    allocation_map: Mapping[int, Mapping[str, float]]
    stability_scores: Mapping[int, float]
    observed: "ObservedExperimentData"
    treatments: tuple[str, ...]
    feature_names: tuple[str, ...]
    categories: Mapping[str, list] = field(default_factory=dict)
    stability_method: str = DEFAULT_STABILITY_METHOD

    def leaf_of(self, frame: Any) -> np.ndarray:
        """Leaf id of each row of a visitors frame (uses the schema's feature coding)."""
        import pandas as pd

        cols = []
        for f in self.feature_names:
            if f in self.categories:
                cols.append(pd.Categorical(frame[f], categories=self.categories[f]).codes.astype(np.float64))
            else:
                cols.append(np.asarray(frame[f], dtype=np.float64))
        x = np.column_stack(cols) if cols else np.zeros((len(frame), 0))
        return self.tree.apply(x)

    def segment(self, leaf_id: int) -> DiscoveredSegment:
        for s in self.segments:
            if s.id == leaf_id:
                return s
        raise ValueError(f"Unknown leaf id {leaf_id!r}: leaves are {[s.id for s in self.segments]}.")


@dataclass(frozen=True)
class AnalysisResult:
    """What an operator acts on after one fit.

    ``cate_per_visitor``: ``(n, K-1)`` posterior-mean CATE per visitor (variant-major);
    ``segments``: the policy tree's leaves; ``recommendations``: one summary per non-control
    treatment (population level); ``segment_recommendations[leaf_id][treatment]`` per segment.
    Per-visitor outputs join back to the caller's rows through :meth:`cate_frame`.
    ``cate_summary`` is only set on a result restored from a save without posterior draws
    (``SequentialExperiment.load``): the saved :meth:`cate_frame`. ``thresholds``: the decision
    thresholds every recommendation was decided with (in a sequential run, the round's, with the
    SHIP gate's share of the run's error; :mod:`pytyche.experiment.spending`).
    """

    cate_per_visitor: AlignedVisitorArray
    segments: tuple[DiscoveredSegment, ...]
    posterior: Any
    recommendations: Mapping[str, RecommendationSummary]
    policy_tree: PolicyTreeResult | None = None
    segment_recommendations: Mapping[int, Mapping[str, RecommendationSummary]] = field(default_factory=dict)
    comparison: ComparisonResult | None = None
    claim_level: ClaimLevel = ClaimLevel.UNCALIBRATED
    cate_summary: Any = None
    thresholds: DecisionThresholds | None = None

    @property
    def observed(self) -> "ObservedExperimentData":
        return self.posterior.observed

    def cate_frame(self, level: float = 0.9) -> "Any":
        """Per-visitor CATEs as a long DataFrame that joins to the caller's visitor ids.

        One row per visitor and non-control treatment, visitors in the data's variant-major
        order. Columns: the schema's ``id_column`` (the caller's ids; without one, ``variant`` and
        ``row`` -- the visitor's position in its variant's visitors frame -- identify the visitor),
        ``assigned`` (the treatment the visitor received), ``treatment``, ``cate_mean`` (posterior
        mean CATE versus control), ``cate_lower`` / ``cate_upper`` (the central ``level``
        interval, calibrated when the posterior is). Join on the id, never on position.

        Parameters
        ----------
        level
            Interval coverage in (0, 1).

        Raises
        ------
        ValueError
            When ``level`` is out of range, or on a result restored without posterior draws, for a
            level other than the one saved.
        """
        import pandas as pd

        where = "AnalysisResult.cate_frame"
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
            raise invalid("level", where, "a real number in (0, 1)", level)
        if self.posterior is None:
            saved = self.cate_summary
            if saved is None:
                raise ValueError(f"{where} needs the posterior or a saved CATE summary; this result has neither.")
            saved_level = float(saved.attrs.get("level", 0.9))
            if abs(saved_level - float(level)) > 1e-12:
                raise ValueError(
                    f"The 'level' parameter of {where} must be {saved_level} on an experiment loaded without posterior "
                    f"draws (only that level's intervals were saved). Got {level!r} instead; save with draws=True to "
                    "ask for any level."
                )
            return saved.copy()
        observed = self.posterior.observed
        treatments = tuple(self.posterior.treatments)
        mean = np.asarray(self.cate_per_visitor.values if hasattr(self.cate_per_visitor, "values") else self.cate_per_visitor, dtype=np.float64)
        lo, hi = self.posterior.cate_interval(float(level))
        n, km1 = mean.shape
        ids = observed.visitor_ids()
        assigned = np.repeat(np.asarray(observed.variant_names, dtype=object), [v.n for v in observed.variants])
        cols: dict[str, Any] = {}
        if ids is not None:
            cols[observed.schema.id_column] = np.repeat(ids, km1)
        else:
            cols["variant"] = np.repeat(assigned, km1)
            cols["row"] = np.repeat(np.concatenate([np.arange(v.n) for v in observed.variants]), km1)
        cols["assigned"] = np.repeat(assigned, km1)
        cols["treatment"] = np.tile(np.asarray(treatments[1:], dtype=object), n)
        cols["cate_mean"] = mean.reshape(-1)
        cols["cate_lower"] = np.asarray(lo, dtype=np.float64).reshape(-1)
        cols["cate_upper"] = np.asarray(hi, dtype=np.float64).reshape(-1)
        frame = pd.DataFrame(cols)
        frame.attrs["level"] = float(level)
        return frame
