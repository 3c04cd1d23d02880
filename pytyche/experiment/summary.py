"""The prose summary of a sequential experiment: ``SequentialExperiment.summary``.

Deterministic text over the series so far: the rounds and their cells, the sample-ratio checks,
the truth comparison in sim mode, the latest decisions, the off-policy value, the credible
segments, graduation candidates, dropped treatments, the confidence label and the next plan.
It reads the experiment only through its public accessors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytyche.contracts.enums import Decision
from pytyche.contracts.results import CREDIBLE_STABILITY, DEFAULT_STABILITY_METHOD, credible_segments

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.experiment.sequential import SequentialExperiment

__all__ = ["render_summary"]


def render_summary(exp: "SequentialExperiment") -> str:
    """Multi-paragraph prose over ``exp``'s completed rounds (see the module docstring)."""
    history = exp.history
    treatments = exp.treatments
    next_plan = exp.next_recommendation
    n_total = exp.schedule.n_rounds
    if not history:
        return (
            f"Sequential experiment over {', '.join(treatments)} (control: {treatments[0]}): "
            f"no rounds completed yet ({'open-ended schedule' if n_total is None else f'{n_total} round(s) scheduled'})."
        )
    latest = history[-1]
    paras = []
    total_visitors = latest.observed.n_visitors
    paras.append(
        f"Sequential experiment {latest.observed.experiment_id!r} on metric {latest.observed.metric!r}: "
        f"{len(history)} round(s) completed"
        f"{'' if n_total is None else f' of {n_total}'}, {total_visitors} visitors in total, "
        f"treatments {', '.join(treatments)} (control: {treatments[0]}). "
        f"Intervals are {latest.claim_level.value}."
    )
    for e in history:
        cells = "; ".join(
            f"{s.cell_id} {s.weight:.0%} -> n={s.n_visitors}, mean {s.mean_outcome:.4g}"
            + ("" if math.isnan(s.se) else f" (se {s.se:.2g})")
            for s in e.cell_scores
        )
        line = f"Round {e.round_idx}{' (operator override)' if e.round.overridden else ''}: {cells}."
        if e.srm is not None:
            line += (
                f" Sample ratio mismatch: FLAGGED (p = {e.srm.p_value:.3g} < {e.srm.alpha:g}); do not trust this round's split."
                if e.srm.flagged
                else f" Sample ratio check passed (p = {e.srm.p_value:.3g})."
            )
        if e.truth_comparison is not None:
            tc = e.truth_comparison
            line += (
                f" Against the truth: policy accuracy {tc.policy_accuracy:.0%}, oracle gap {tc.oracle_gap_rpv:.4g} "
                f"(uniform gap {tc.uniform_gap_rpv:.4g}), CATE RMSE {tc.cate_rmse:.4g}."
            )
        paras.append(line)
    decisions = []
    for t, rec in latest.analysis.recommendations.items():
        decisions.append(
            f"{t}: {rec.decision.value if isinstance(rec.decision, Decision) else rec.decision} "
            f"(lift {rec.lift_mean:+.4g}, P(positive) {rec.p_positive:.2f})"
        )
    if decisions:
        paras.append("Latest population-level decisions versus " + treatments[0] + ": " + "; ".join(decisions) + ".")
    pv = latest.policy_value
    if pv is not None:
        text = f"Off-policy value of the recommended policy (round {latest.round_idx}): {pv}."
        if latest.cumulative_truth is not None:
            tv = pv.true_values(latest.cumulative_truth)
            text += f" Against the truth: vs control {tv['vs_control']:+.4g}, vs uniform {tv['vs_uniform']:+.4g}."
        paras.append(text)
    segs = latest.segments
    credible = credible_segments(segs)  # none in a one-leaf tree
    paras.append(
        f"The latest policy tree has {len(segs)} segment(s), {len(credible)} credible (stability >= {CREDIBLE_STABILITY:.2f}"
        + ("" if exp.stability_method == DEFAULT_STABILITY_METHOD else f", {exp.stability_method} score")
        + ("" if len(segs) >= 2 else "; a one-segment tree, the whole population, has none")
        + ")"
        + (": " + "; ".join(f"[{s.rule}] best {s.best_treatment}" for s in credible) if credible else "")
        + "."
    )
    cands = exp.graduation_candidates()
    if cands:
        paras.append("Graduation candidates (the library never auto-graduates): " + "; ".join(str(c) for c in cands) + ".")
    else:
        paras.append("No graduation candidate yet (SHIP must be sustained for 2 consecutive rounds).")
    dropped = exp.dropped_treatments()
    if dropped:
        paras.append(f"Dropped as dominated everywhere: {', '.join(dropped)}.")
    paras.append(f"Confidence: {exp.confidence}.")
    if next_plan is not None and next_plan.n_visitors is not None:
        paras.append(f"Next round ({next_plan.round_idx}, {next_plan.n_visitors} visitors):\n{next_plan.rationale}")
    return "\n\n".join(paras)
