"""Decision rows: every claim a round of a sequential experiment makes, judged against the truth.

:func:`decision_rows` turns one round (the :class:`~pytyche.experiment.Experiment` a
``SequentialExperiment`` yields) into ``kind="decision"`` rows, one per (claim, arm[, segment]),
whether the claim fired this round or not, so error rates, power and rounds-to-decision can be
computed over whole runs (:mod:`sweeps.decision_rates`). The claims (``decision`` column):

``ship_population``
    SHIP for an arm over all visitors: its recommendation summary under the task's
    :class:`~pytyche.contracts.DecisionThresholds` decides ``SHIP``.
``stop_harm`` / ``stop_futility``
    STOP for an arm over all visitors, by the harm gate (``p_harmful > p_harmful_min``) or the
    futility gate (``p_better < p_futility_max``) of :func:`pytyche.compare.variants.decide`.
``ship_segment``
    SHIP for an arm in one segment of a multi-leaf policy tree: the graduation rule's SHIP signal
    for that (arm, segment), i.e. SHIP in a segment whose stability score is credible.
``graduation``
    A graduation candidate: a (arm, population or segment) SHIP sustained for the rounds the loop
    requires (``Experiment.graduation_candidates()`` at its default).
``credible_segment``
    A segment of a multi-leaf policy tree whose stability score is credible
    (:func:`pytyche.contracts.results.credible_flags`, the one rule); one row per segment, no
    arm. A one-leaf tree has no segment rows.

Truth. Every claim is judged against ``E[Y(a) | x]`` (the round's cumulative truth, aligned with
the posterior's visitors), averaged by :func:`true_effect` over the visitors the claim is about:
all cumulative visitors, or a segment's members (the visitors its policy-tree leaf selects among
the cumulative visitors). With ``m`` the ``min_effect`` of the thresholds the rule used and the
relative effect read against the control's true mean over the same visitors (absolute units when
that mean is 0, as in :mod:`pytyche.compare.variants`), a claim is *right* when:

- SHIP (population or segment) and graduation: the true average effect there is > 0;
- STOP harm: the true relative effect is < ``-m``;
- STOP futility: the true relative effect is < ``+m``;
- credible segment: for some non-control arm the segment's true effect differs from the true
  effect over the rest of the visitors by more than ``m`` times the absolute true control mean
  over all visitors (in absolute units when that mean is 0).

``right`` is recorded whether or not the claim fired (it says whether the claim would be right),
and is ``None`` only when the truth cannot judge it (no visitors to average over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.contracts.results import DecisionThresholds

__all__ = ["DECISIONS", "TrueEffect", "credible_segment_truth", "decision_rows", "true_effect"]

#: the claims a decision row records (its ``decision`` column)
DECISIONS = ("ship_population", "ship_segment", "stop_harm", "stop_futility", "graduation", "credible_segment")

#: posterior summary columns of a decision row (``None`` on ``credible_segment`` rows)
SUMMARY_COLUMNS = ("p_positive", "p_better", "p_harmful", "expected_loss", "lift_mean", "lift_ci_lo", "lift_ci_hi")


@dataclass(frozen=True)
class TrueEffect:
    """The true average effect of one arm against control over some visitors.

    Attributes
    ----------
    effect
        ``mean_i (E[Y(a) | x_i] - E[Y(0) | x_i])`` over the visitors (NaN when there are none).
    control_mean
        ``mean_i E[Y(0) | x_i]`` over the same visitors.
    relative
        ``effect / |control_mean|``, or ``effect`` itself when ``control_mean`` is 0 (no relative
        scale: the thresholds are then read in the metric's own units).
    n
        How many visitors were averaged.
    """

    effect: float
    control_mean: float
    relative: float
    n: int


def true_effect(expected_outcome: Any, arm: int, mask: Any = None, *, control: int = 0) -> TrueEffect:
    """The true average effect of ``arm`` against ``control`` over the visitors ``mask`` selects.

    Pure: reads only its arguments.

    Parameters
    ----------
    expected_outcome
        ``(n, K)`` true ``E[Y(a) | x_i]`` of each visitor under each arm.
    arm, control
        Column indices of the arm and of the control.
    mask
        ``(n,)`` booleans selecting the visitors, or ``None`` for all of them.

    Returns
    -------
    TrueEffect
        NaN ``effect``, ``control_mean`` and ``relative`` (and ``n = 0``) when ``mask`` selects
        nobody.

    Examples
    --------
    >>> eo = [[1.0, 1.5], [3.0, 2.5]]
    >>> true_effect(eo, 1)
    TrueEffect(effect=0.0, control_mean=2.0, relative=0.0, n=2)
    >>> true_effect(eo, 1, [True, False])
    TrueEffect(effect=0.5, control_mean=1.0, relative=0.5, n=1)
    """
    eo = np.asarray(expected_outcome, dtype=np.float64)
    if eo.ndim != 2:
        raise ValueError(f"The 'expected_outcome' parameter of true_effect must be an (n, K) array. Got shape {eo.shape} instead.")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (eo.shape[0],):
            raise ValueError(f"The 'mask' parameter of true_effect must be ({eo.shape[0]},) booleans or None. Got shape {m.shape} instead.")
        eo = eo[m]
    n = int(eo.shape[0])
    if n == 0:
        nan = float("nan")
        return TrueEffect(nan, nan, nan, 0)
    effect = float(np.mean(eo[:, arm] - eo[:, control]))
    c = float(np.mean(eo[:, control]))
    relative = effect / abs(c) if c != 0.0 else effect
    return TrueEffect(effect, c, relative, n)


def credible_segment_truth(expected_outcome: Any, mask: Any, min_effect: float) -> tuple[int, float, float, float, bool | None]:
    """Whether a segment really differs: ``(arm, difference, relative, control_mean, right)``.

    For each non-control arm, ``difference`` is the arm's true effect over the segment's members
    minus its true effect over the rest of the visitors (both by :func:`true_effect`); the arm
    returned is the one with the largest absolute difference, ``control_mean`` the control's true
    mean over all visitors, ``relative`` the difference over ``|control_mean|`` (the difference
    itself when that mean is 0), and ``right`` whether that absolute relative difference exceeds
    ``min_effect`` (``None`` when the segment or the rest is empty).
    """
    eo = np.asarray(expected_outcome, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    c = true_effect(eo, 1).control_mean
    scale = abs(c) if c != 0.0 else 1.0
    diffs = np.array([true_effect(eo, a, m).effect - true_effect(eo, a, ~m).effect for a in range(1, eo.shape[1])])
    if not np.all(np.isfinite(diffs)):
        return 1, float("nan"), float("nan"), c, None
    j = int(np.argmax(np.abs(diffs)))
    relative = float(diffs[j]) / scale
    return j + 1, float(diffs[j]), relative, c, bool(abs(relative) > min_effect)


def _judge(value: float, holds: bool) -> bool | None:
    """``holds`` as a bool, or ``None`` when ``value`` (what it was computed from) is not finite."""
    return bool(holds) if math.isfinite(value) else None


def _summary_numbers(s: Any) -> dict[str, float]:
    lo, hi = s.lift_ci
    return {
        "p_positive": float(s.p_positive), "p_better": float(s.p_better), "p_harmful": float(s.p_harmful),
        "expected_loss": float(s.expected_loss), "lift_mean": float(s.lift_mean), "lift_ci_lo": float(lo), "lift_ci_hi": float(hi),
    }


def _truth_numbers(te: TrueEffect) -> dict[str, float]:
    return {"true_effect": te.effect, "true_relative_effect": te.relative, "true_control_mean": te.control_mean}


def _summaries(posterior: Any, analysis: Any, thresholds: "DecisionThresholds", segments: tuple, leaves: Any) -> tuple[dict, dict]:
    """Population and per-segment recommendation summaries under ``thresholds``: the analysis's
    own when it used the same thresholds, recomputed from the posterior otherwise."""
    treatments = tuple(posterior.treatments)[1:]
    recs = analysis.recommendations
    if all(recs[t].thresholds == thresholds for t in treatments):
        return dict(recs), {s.id: analysis.segment_recommendations[s.id] for s in segments}
    from pytyche.compare.variants import recommendation_summary

    pop = {t: recommendation_summary(posterior, t, thresholds) for t in treatments}
    seg = {
        s.id: {t: recommendation_summary(posterior, t, thresholds, mask=leaves == s.id, segment_id=int(s.id)) for t in treatments}
        for s in segments
    }
    return pop, seg


def decision_rows(experiment: Any, thresholds: "DecisionThresholds") -> list[dict[str, Any]]:
    """The ``kind="decision"`` rows of one round (see the module docstring).

    Parameters
    ----------
    experiment
        One round's :class:`~pytyche.experiment.Experiment`, in sim mode (with its cumulative
        truth).
    thresholds
        The decision thresholds of the round (what its SHIP signals and the STOP gates are read
        with): the experiment's graduation rule's, with the SHIP gate's share of the run's error
        (``experiment.analysis.thresholds``).

    Returns
    -------
    list of dict
        Columns ``kind, round_idx, sample_size, decision, treatment, segment_id, segment_rule,
        segment_share, stability_score, fired, right, rounds_sustained, active, min_effect,
        p_positive_min,
        true_effect, true_relative_effect, true_control_mean`` and the posterior summary
        ``p_positive, p_better, p_harmful, expected_loss, lift_mean, lift_ci_lo, lift_ci_hi``
        (``None`` on ``credible_segment`` rows). ``segment_id`` is ``None`` for the population;
        ``active`` says whether the arm is still in the next round's plan (not dropped).
    """
    from pytyche.compare.variants import decide
    from pytyche.contracts.enums import Decision
    from pytyche.contracts.results import MIN_CREDIBLE_LEAVES, credible_flags

    truth = experiment.cumulative_truth
    if truth is None:
        raise ValueError("The 'experiment' parameter of decision_rows must be a sim-mode round (with a cumulative truth).")
    posterior, analysis = experiment.posterior, experiment.analysis
    treatments = tuple(posterior.treatments)
    eo = np.asarray(truth.expected_outcome, dtype=np.float64)[:, [list(truth.treatments).index(t) for t in treatments]]
    m = float(thresholds.min_effect)
    tree = analysis.policy_tree
    segments: tuple = ()
    leaves = None
    credible: dict[int, bool] = {}
    if tree is not None and len(tree.segments) >= MIN_CREDIBLE_LEAVES:  # a one-leaf tree is the population itself
        leaves = np.asarray(tree.leaf_of(posterior.observed.features_frame()))
        segments = tuple(s for s in tree.segments if np.any(leaves == s.id))
        credible = dict(zip((s.id for s in tree.segments), credible_flags(s.stability_score for s in tree.segments)))
    pop, seg = _summaries(posterior, analysis, thresholds, segments, leaves)
    signals = {(s.treatment, s.segment_id): int(s.rounds_sustained) for s in experiment.ship_signals}
    candidates = {(c.treatment, c.segment_id) for c in experiment.graduation_candidates()}
    active = set(experiment.next_plan.active_treatments)
    base = {"kind": "decision", "round_idx": int(experiment.round_idx), "sample_size": int(experiment.observed.n_visitors),
            "min_effect": m, "p_positive_min": float(thresholds.p_positive_min)}
    rows: list[dict[str, Any]] = []

    def add(decision: str, treatment: str, fired: bool, right: bool | None, **extra: Any) -> None:
        row = {**base, "decision": decision, "treatment": treatment, "segment_id": None, "segment_rule": None,
               "segment_share": 1.0, "stability_score": None, "rounds_sustained": None, "active": treatment in active}
        row.update(extra)
        row.update(fired=bool(fired), right=right)
        rows.append(row)

    for a, t in enumerate(treatments):
        if a == 0:
            continue
        te = true_effect(eo, a)
        s = pop[t]
        _, branch = decide(s.expected_loss, s.p_positive, s.p_better, s.p_harmful, thresholds)
        numbers = {**_summary_numbers(s), **_truth_numbers(te)}
        add("ship_population", t, s.decision == Decision.SHIP, _judge(te.effect, te.effect > 0),
            rounds_sustained=signals.get((t, None), 0), **numbers)
        add("stop_harm", t, branch == "harm", _judge(te.relative, te.relative < -m), **numbers)
        add("stop_futility", t, branch == "futility", _judge(te.relative, te.relative < m), **numbers)
        add("graduation", t, (t, None) in candidates, _judge(te.effect, te.effect > 0),
            rounds_sustained=signals.get((t, None), 0), **numbers)

    n = eo.shape[0]
    for sg in segments:
        mask = leaves == sg.id
        where = {"segment_id": int(sg.id), "segment_rule": str(sg.rule), "segment_share": float(np.count_nonzero(mask)) / n,
                 "stability_score": float(sg.stability_score)}
        for a, t in enumerate(treatments):
            if a == 0:
                continue
            te = true_effect(eo, a, mask)
            numbers = {**_summary_numbers(seg[sg.id][t]), **_truth_numbers(te)}
            sustained = signals.get((t, sg.id), 0)
            add("ship_segment", t, (t, sg.id) in signals, _judge(te.effect, te.effect > 0),
                rounds_sustained=sustained, **where, **numbers)
            add("graduation", t, (t, sg.id) in candidates, _judge(te.effect, te.effect > 0),
                rounds_sustained=sustained, **where, **numbers)
        arm, diff, rel, c, right = credible_segment_truth(eo, mask, m)
        add("credible_segment", treatments[arm], credible[sg.id], right, **where,
            true_effect=diff, true_relative_effect=rel, true_control_mean=c, **dict.fromkeys(SUMMARY_COLUMNS))
    return rows
