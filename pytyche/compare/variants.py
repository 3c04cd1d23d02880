"""Treatment-versus-baseline comparison and the SHIP / CONTINUE / STOP recommendation.

Concepts (docs/concepts.md): SHIP / CONTINUE / STOP. Every quantity comes from the joint posterior draws
of the (population- or segment-) average outcome of each arm, so the lift of a treatment is one
draw-by-draw difference against the baseline (control) in the same state of the world.

Units (``DecisionThresholds``): ``tolerance`` and ``min_effect`` are relative to the baseline's
posterior-mean average outcome ``c``. With lift draws ``d``:

- ``expected_loss = E[max(0, -d)] / |c|`` (what shipping loses, on average, if it is worse),
- ``p_positive = P(d > 0)``,
- ``p_better = P(d > min_effect * |c|)``,
- ``p_harmful = P(d < -min_effect * |c|)``.

When ``c == 0`` (a continuous metric centred at zero) there is no relative scale and the
thresholds are read in the metric's own units.

One story per decision: the lift draws ``d`` are the posterior's, moved by its calibration where
the calibration applies to the family (``"ate"`` over everyone, ``"gate"`` over a segment;
:meth:`~pytyche.calibrate.Calibration.decision_draws`), and every probability, the expected loss
and the 90% ``lift_ci`` come from those same draws. The interval's bounds are read so that they
agree exactly with the probabilities (:func:`decision_interval`): the lower bound of the 90% lift
interval is above 0 exactly when ``p_positive > 0.95``, and the upper bound is below 0 exactly
when ``P(d < 0) > 0.95``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from pytyche._validation import InstanceOf, Interval, invalid, validate
from pytyche.compare._draws import check_posterior, decision_draws, group_means, p_best, resolve_mask
from pytyche.contracts.enums import ClaimLevel, Decision
from pytyche.contracts.results import ComparisonResult, DecisionThresholds, RecommendationSummary

#: level of the lift interval carried by a recommendation summary
LIFT_LEVEL = 0.90


def decide(
    expected_loss: float, p_positive: float, p_better: float, p_harmful: float, thresholds: DecisionThresholds
) -> tuple[Decision, str]:
    """The five thresholds in three branches (docs/concepts.md, *SHIP / CONTINUE / STOP*).

    Returns the decision and the branch that fired: ``"ship"`` (``expected_loss < tolerance`` and
    ``p_positive > p_positive_min`` and ``p_better > p_better_min``), ``"harm"``
    (``p_harmful > p_harmful_min``), ``"futility"`` (``p_better < p_futility_max``) or
    ``"continue"`` (no gate fires). All comparisons are strict.
    """
    th = thresholds
    if expected_loss < th.tolerance and p_positive > th.p_positive_min and p_better > th.p_better_min:
        return Decision.SHIP, "ship"
    if p_harmful > th.p_harmful_min:
        return Decision.STOP, "harm"
    if p_better < th.p_futility_max:
        return Decision.STOP, "futility"
    return Decision.CONTINUE, "continue"


def _amount(value: float, relative: bool) -> str:
    return f"{value:.2%} of the baseline mean" if relative else f"{value:.4g} (metric units)"


def _rationale(
    branch: str, treatment: str, baseline: str, segment_id: int | None, relative: bool,
    el: float, pp: float, pb: float, ph: float, th: DecisionThresholds,
) -> str:
    where = f" in segment {segment_id}" if segment_id is not None else ""
    eff = f"{th.min_effect:.2%}" if relative else f"{th.min_effect:.4g}"
    who = f"{treatment!r} vs {baseline!r}{where}"
    if branch == "ship":
        return (
            f"SHIP {who}: expected loss {_amount(el, relative)} is below the tolerance "
            f"{_amount(th.tolerance, relative)}, P(lift > 0) = {pp:.3f} > {th.p_positive_min:g} and "
            f"P(lift > {eff}) = {pb:.3f} > {th.p_better_min:g}."
        )
    if branch == "harm":
        return f"STOP {who}: the treatment is probably harmful, P(lift < -{eff}) = {ph:.3f} > {th.p_harmful_min:g}."
    if branch == "futility":
        return (
            f"STOP {who}: the treatment is unlikely to beat the baseline by the minimum effect, "
            f"P(lift > {eff}) = {pb:.3f} < {th.p_futility_max:g}."
        )
    return (
        f"CONTINUE {who}: no gate fires yet (P(lift > 0) = {pp:.3f}, SHIP needs > {th.p_positive_min:g}; P(lift > {eff}) = {pb:.3f}, "
        f"P(lift < -{eff}) = {ph:.3f}, expected loss {_amount(el, relative)}), so collect more data."
    )


def decision_interval(lift: np.ndarray, level: float = LIFT_LEVEL) -> tuple[float, float]:
    """The equal-tailed interval of ``(S,)`` lift draws at ``level``, read so that its bounds agree
    exactly with the tail probabilities :func:`decide` compares (``p = (1 + level) / 2``):

    - ``lo`` is the smallest draw ``x`` with ``P(d > x) <= p``, so ``lo > 0`` iff ``P(d > 0) > p``;
    - ``hi`` is the largest draw ``x`` with ``P(d < x) <= p``, so ``hi < 0`` iff ``P(d < 0) > p``.

    Probabilities are draw counts over ``S``, computed as ``p_positive`` is. At the default
    ``level = 0.90``, ``p = 0.95 = DecisionThresholds().p_positive_min``.
    """
    s = np.sort(np.asarray(lift, dtype=np.float64))
    n = s.size
    p = (1.0 + level) / 2.0
    above = (n - np.searchsorted(s, s, side="right")) / n
    below = np.searchsorted(s, s, side="left") / n
    return float(s[np.flatnonzero(above <= p)[0]]), float(s[np.flatnonzero(below <= p)[-1]])


def summarize_draws(
    group: np.ndarray,
    arm: int,
    treatments: tuple[str, ...],
    thresholds: DecisionThresholds,
    lift_draws: np.ndarray | None = None,
    *,
    segment_id: int | None = None,
    claim: ClaimLevel = ClaimLevel.UNCALIBRATED,
) -> RecommendationSummary:
    """A :class:`RecommendationSummary` from ``(S, K)`` joint draws of group-average outcomes.

    ``lift_draws``: the ``(S,)`` lift draws the decision reads (the raw lift ``group[:, arm] -
    group[:, 0]`` moved by the calibration, :func:`lift_for_decision`); ``None``: the raw lift.
    Probabilities, expected loss and ``lift_ci`` come from them; ``lift_mean`` from the raw lift.
    """
    base = group[:, 0]
    raw_lift = group[:, arm] - base
    lift = raw_lift if lift_draws is None else np.asarray(lift_draws, dtype=np.float64)
    c = float(np.mean(base))
    relative = c != 0.0
    scale = abs(c) if relative else 1.0
    el = float(np.mean(np.maximum(0.0, -lift))) / scale
    pp = float(np.mean(lift > 0))
    pb = float(np.mean(lift > thresholds.min_effect * scale))
    ph = float(np.mean(lift < -thresholds.min_effect * scale))
    decision, branch = decide(el, pp, pb, ph, thresholds)
    lift_mean = float(np.mean(raw_lift))
    return RecommendationSummary(
        treatment=treatments[arm],
        baseline=treatments[0],
        decision=decision,
        expected_loss=el,
        p_positive=pp,
        p_better=pb,
        p_harmful=ph,
        lift_mean=lift_mean,
        lift_ci=decision_interval(lift, LIFT_LEVEL),
        relative_lift_mean=lift_mean / scale,
        thresholds=thresholds,
        rationale=_rationale(branch, treatments[arm], treatments[0], segment_id, relative, el, pp, pb, ph, thresholds),
        segment_id=segment_id,
        claim_level=claim,
    )


def lift_for_decision(posterior: Any, group: np.ndarray, arm: int, family: str) -> tuple[np.ndarray, ClaimLevel]:
    """The lift draws a decision reads and their claim level: the arm's raw lift over
    ``group`` moved by the posterior's calibration for ``family`` (``"ate"`` or ``"gate"``)."""
    lift = group[:, arm] - group[:, 0]
    return decision_draws(posterior, lift, family), ClaimLevel.of_family(getattr(posterior, "calibration", None), family, LIFT_LEVEL)


def _population_draws(posterior: Any, draws: np.ndarray, mask: Any, where: str) -> tuple[np.ndarray, bool]:
    """``(S, K)`` average-outcome draws over the selected visitors, and whether that is everyone."""
    m = resolve_mask(mask, posterior.observed, "mask", where)
    everyone = m is None or bool(m.all())
    labels = np.zeros(draws.shape[0], dtype=np.int64) if m is None else np.where(m, 0, -1)
    return group_means(draws, labels, 1)[0], everyone


#: the settings of :func:`compare_variants` (the posterior and mask are checked by hand)
COMPARE_CONSTRAINTS: dict[str, Any] = {"level": Interval(numbers.Real, 0.0, 1.0, closed="neither", loose=True)}

#: the settings of :func:`recommendation_summary` (the treatment, posterior and mask are checked by hand)
SUMMARY_CONSTRAINTS: dict[str, Any] = {
    "thresholds": InstanceOf(DecisionThresholds, "a DecisionThresholds"),
    "segment_id": [None, Interval(numbers.Integral, 0, None, loose=True)],
}


def compare_variants(posterior: Any, mask: Any = None, level: float = 0.90) -> ComparisonResult:
    """Compare every treatment with the baseline from the joint posterior draws.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``).
    mask
        Visitors to compare over: ``None`` (all), a boolean array over visitors (variant-major)
        or a segment rule evaluated on ``posterior.observed.features_frame()``.
    level
        Default level of :meth:`ComparisonResult.lift_interval`.

    Returns
    -------
    ComparisonResult
        ``lift_draws[t]``: ``(S,)`` draws of the average lift of ``t`` over the selected
        visitors; ``baseline_mean``: posterior mean of the baseline's average outcome;
        ``p_best``: probability each arm (baseline included) has the highest average outcome.

    Raises
    ------
    ValueError, TypeError
        On a posterior without the fit-result interface, a malformed or empty mask, or a level
        outside ``(0, 1)``.
    """
    where = "compare_variants"
    lv = validate({"level": level}, COMPARE_CONSTRAINTS, where)["level"]
    draws = check_posterior(posterior, where)
    group, _ = _population_draws(posterior, draws, mask, where)
    return comparison_from_draws(group, tuple(posterior.treatments), lv)


def comparison_from_draws(group: np.ndarray, treatments: tuple[str, ...], level: float) -> ComparisonResult:
    """A :class:`ComparisonResult` from ``(S, K)`` joint draws of average outcomes."""
    best_p = p_best(group, np.ones(group.shape[1], dtype=bool))
    lifts = {t: group[:, a] - group[:, 0] for a, t in enumerate(treatments) if a > 0}
    return ComparisonResult(
        baseline=treatments[0],
        treatments=treatments[1:],
        lift_draws=lifts,
        baseline_mean=float(np.mean(group[:, 0])),
        p_best={t: float(best_p[a]) for a, t in enumerate(treatments)},
        level=level,
    )


def recommendation_summary(
    posterior: Any,
    treatment: str,
    thresholds: DecisionThresholds = DecisionThresholds(),
    mask: Any = None,
    segment_id: int | None = None,
) -> RecommendationSummary:
    """SHIP / CONTINUE / STOP for one treatment versus the baseline, with its evidence.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``).
    treatment
        Name of a non-control treatment.
    thresholds
        The five decision thresholds (relative units, see the module docstring).
    mask
        Visitors the decision is about: ``None`` (all), a boolean array over visitors or a
        segment rule.
    segment_id
        Label carried on the summary (the policy-tree leaf the mask selects), or ``None``.

    Returns
    -------
    RecommendationSummary
        ``decision`` from :func:`decide`; ``expected_loss``, ``p_positive``, ``p_better``,
        ``p_harmful``; ``lift_mean`` and the 90% ``lift_ci`` of the average lift, all read from
        the same lift draws (calibrated where the posterior's calibration applies to family
        ``"ate"`` over everyone, ``"gate"`` over a subset; see the module docstring), so
        ``lift_ci[0] > 0`` iff ``p_positive > 0.95``; ``relative_lift_mean``; a one-sentence
        ``rationale``; the claim level of that family at 90%.

    Raises
    ------
    ValueError, TypeError
        On an unknown or control treatment, thresholds that are not ``DecisionThresholds``, a
        malformed or empty mask, or a bad ``segment_id``.
    """
    where = "recommendation_summary"
    segment_id = validate(dict(thresholds=thresholds, segment_id=segment_id), SUMMARY_CONSTRAINTS, where)["segment_id"]
    draws = check_posterior(posterior, where)
    treatments = tuple(posterior.treatments)
    if not isinstance(treatment, str) or treatment not in treatments[1:]:
        raise invalid("treatment", where, f"one of the non-control treatments {list(treatments[1:])}", treatment)
    group, everyone = _population_draws(posterior, draws, mask, where)
    arm = treatments.index(treatment)
    lift, claim = lift_for_decision(posterior, group, arm, "ate" if everyone else "gate")
    return summarize_draws(group, arm, treatments, thresholds, lift, segment_id=segment_id, claim=claim)
