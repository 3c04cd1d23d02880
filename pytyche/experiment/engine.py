"""The recommendation engine: from one round's posterior and analysis to the next round's plan.

Rules (deterministic given the posterior and analysis):

- **Cold start** (round 0, no data): Control 50% (:class:`BaselinePolicy`) and Explore 50%
  (:class:`UniformPolicy` over the active treatments).
- **Dropping.** A non-control treatment is *dominated everywhere* when its posterior probability
  of being best is below :data:`DROP_THRESHOLD` (0.01) on the whole population and in every
  policy-tree segment. Dominated treatments leave the active list (and so the Explore and Optimized
  cells). Drops are recomputed every round from the cumulative posterior, so a treatment the
  evidence turns back toward returns. Control is never dropped; a universe treatment with no data
  yet keeps its current status.
- **Optimized cell.** Once a posterior exists, an Optimized cell routes visitors with a
  :class:`TreePolicy`: the round's policy tree, each leaf's Thompson allocation restricted to the
  active treatments and renormalised (a :class:`ThompsonPolicy` when the analysis has no tree).
- **Weights.** The evidence strength ``q`` in [0, 1] is the population-share-weighted mean over
  segments of ``stability × (max_a P(a best) − 1/K) / (1 − 1/K)`` (P(best) over the K active
  treatments; a NaN stability counts as 0.5). The Optimized cell gets ``0.2 + 0.7·q``; Control
  and Explore split the rest equally, each raised to its floor (``min_control_weight``,
  ``min_explore_weight``) at the Optimized cell's expense. Floors apply only to these engine
  proposals, never to operator overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytyche.compare._draws import p_best as _p_best
from pytyche.contracts.results import AnalysisResult, PolicyTreeResult
from pytyche.experiment.cells import Cell
from pytyche.experiment.graduation import ShipSignal
from pytyche.experiment.plan import NextRoundPlan
from pytyche.experiment.policies import BaselinePolicy, ThompsonPolicy, TreePolicy, UniformPolicy

__all__ = [
    "cold_start_plan",
    "recommend",
    "p_best",
    "dominated_treatments",
    "evidence_strength",
    "cell_weights",
    "DROP_THRESHOLD",
    "OPTIMIZED_MIN",
    "OPTIMIZED_MAX",
    "CONTROL_CELL",
    "EXPLORE_CELL",
    "OPTIMIZED_CELL",
]

DROP_THRESHOLD = 0.01
OPTIMIZED_MIN = 0.2
OPTIMIZED_MAX = 0.9
CONTROL_CELL = "control"
EXPLORE_CELL = "explore"
OPTIMIZED_CELL = "optimized"


def cold_start_plan(treatments: Sequence[str], round_idx: int = 0, n_visitors: int | None = None) -> NextRoundPlan:
    """The default round-0 structure: Control/Explore at 50/50 over every treatment."""
    treatments = tuple(treatments)
    cells = (
        Cell(CONTROL_CELL, BaselinePolicy(), 0.5),
        Cell(EXPLORE_CELL, UniformPolicy(over=treatments), 0.5),
    )
    rationale = (
        f"Cold start: no data yet, so round {round_idx} splits traffic 50/50 between a Control cell "
        f"(always {treatments[0]}) and an Explore cell (uniform over {', '.join(treatments)})."
    )
    return NextRoundPlan(cells, treatments, (), rationale, round_idx, n_visitors, treatments)


def p_best(posterior: Any) -> dict[str, float]:
    """Posterior probability each treatment has the highest population-mean outcome.

    :func:`pytyche.compare._draws.p_best` with ``ties="first"`` (a tied draw counts for the
    first of the tied treatments).
    """
    draws = np.asarray(posterior.outcome_samples, dtype=np.float64).mean(axis=0)  # (S, K)
    probs = _p_best(draws, np.ones(draws.shape[1], dtype=bool), ties="first")
    return {t: float(c) for t, c in zip(posterior.treatments, probs)}


def dominated_treatments(
    overall: Mapping[str, float],
    tree: PolicyTreeResult | None,
    control: str,
    threshold: float = DROP_THRESHOLD,
) -> list[str]:
    """Non-control treatments below ``threshold`` P(best) overall and in every segment."""
    out = []
    segments = tree.segments if tree is not None else ()
    for t, p in overall.items():
        if t == control or p >= threshold:
            continue
        if any(float(s.arm_best_probabilities.get(t, 0.0)) >= threshold for s in segments):
            continue
        out.append(t)
    return out


def evidence_strength(tree: PolicyTreeResult | None, active: Sequence[str]) -> float:
    """The ``q`` of the module docstring (0 without a tree or with one active treatment)."""
    if tree is None or not tree.segments or len(active) < 2:
        return 0.0
    k = len(active)
    num = den = 0.0
    for s in tree.segments:
        probs = np.array([float(s.arm_best_probabilities.get(t, 0.0)) for t in active])
        total = probs.sum()
        probs = probs / total if total > 0 else np.full(k, 1.0 / k)
        conf = (probs.max() - 1.0 / k) / (1.0 - 1.0 / k)
        stab = float(s.stability_score)
        stab = 0.5 if math.isnan(stab) else stab
        share = float(s.population_share)
        num += share * stab * conf
        den += share
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def cell_weights(q: float, min_control_weight: float, min_explore_weight: float) -> tuple[float, float, float]:
    """``(control, explore, optimized)`` weights for evidence strength ``q`` (sum to 1)."""
    opt = OPTIMIZED_MIN + (OPTIMIZED_MAX - OPTIMIZED_MIN) * float(np.clip(q, 0.0, 1.0))
    rest = 1.0 - opt
    control = max(rest / 2.0, min_control_weight)
    explore = max(rest / 2.0, min_explore_weight)
    return control, explore, 1.0 - control - explore


def _restricted_allocation(tree: PolicyTreeResult, active: Sequence[str]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for leaf, alloc in tree.allocation_map.items():
        w = {t: float(alloc.get(t, 0.0)) for t in active}
        total = sum(w.values())
        out[int(leaf)] = {t: v / total for t, v in w.items()} if total > 0 else {t: 1.0 / len(active) for t in active}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def recommend(
    *,
    posterior: Any,
    analysis: AnalysisResult,
    treatments: Sequence[str],
    active: Sequence[str],
    round_idx: int,
    min_control_weight: float,
    min_explore_weight: float,
    n_visitors: int | None = None,
    ship_signals: Sequence[ShipSignal] = (),
) -> NextRoundPlan:
    """Propose the plan for round ``round_idx`` from the previous round's posterior and analysis.

    Parameters
    ----------
    posterior
        The (calibrated) posterior on the cumulative data.
    analysis
        Its analysis (policy tree, segments, recommendations).
    treatments
        The treatments universe, control first.
    active
        The active treatments of the plan just run.
    round_idx
        The round the plan is for.
    min_control_weight, min_explore_weight
        Floors on the Control and Explore cells.
    n_visitors
        The round's size when known.
    ship_signals
        This round's SHIP signals (mentioned in the rationale).
    """
    treatments = tuple(treatments)
    control = treatments[0]
    fitted = tuple(posterior.treatments)
    tree = analysis.policy_tree
    overall = p_best(posterior)
    dominated = set(dominated_treatments(overall, tree, control))
    new_active = tuple(t for t in treatments if (t in dominated) is False and (t in fitted or t in active))
    if control not in new_active:
        new_active = (control, *new_active)
    if len(new_active) < 2:
        # an experiment compares at least two arms: when every treatment looks dominated, keep the
        # strongest one running beside control (the decisions already say STOP for the rest)
        candidates = [t for t in treatments[1:] if t in fitted or t in active]
        if candidates:
            means = dict(zip(fitted, np.asarray(posterior.outcome_samples, dtype=np.float64).mean(axis=(0, 1))))
            keep = max(candidates, key=lambda t: (overall.get(t, 0.0), means.get(t, -np.inf)))
            new_active = tuple(t for t in treatments if t == control or t == keep)
    dropped = tuple(t for t in treatments if t not in new_active)
    opt_active = tuple(t for t in new_active if t in fitted)

    q = evidence_strength(tree, opt_active)
    w_c, w_e, w_o = cell_weights(q, min_control_weight, min_explore_weight)
    if tree is not None and len(opt_active) >= 1:
        opt_policy: Any = TreePolicy(tree, _restricted_allocation(tree, opt_active))
        opt_text = f"a policy tree with {len(tree.segments)} segment(s) and per-segment Thompson allocation"
    else:
        opt_policy = ThompsonPolicy.from_posterior(posterior, active=opt_active)
        opt_text = "a population-wide Thompson allocation (no policy tree was available)"
    cells = (
        Cell(CONTROL_CELL, BaselinePolicy(), w_c),
        Cell(EXPLORE_CELL, UniformPolicy(over=new_active), w_e),
        Cell(OPTIMIZED_CELL, opt_policy, w_o),
    )

    lines = [
        f"Round {round_idx} plan: Control {_pct(w_c)}, Explore {_pct(w_e)} (uniform over "
        f"{', '.join(new_active)}), Optimized {_pct(w_o)} routed by {opt_text}.",
        f"Evidence strength q = {q:.2f} (stability-weighted confidence of the segments' best "
        f"treatment) sets the Optimized share to {_pct(OPTIMIZED_MIN)} + {_pct(OPTIMIZED_MAX - OPTIMIZED_MIN)} x q; "
        f"Control and Explore keep at least {_pct(min_control_weight)} and {_pct(min_explore_weight)}.",
        "Posterior probability of being best overall: "
        + ", ".join(f"{t} {overall[t]:.2f}" for t in fitted)
        + ".",
    ]
    newly = [t for t in dropped if t in active]
    if newly:
        lines.append(
            f"Dropped {', '.join(newly)}: below {DROP_THRESHOLD:.0%} probability of being best overall "
            "and in every segment."
        )
    revived = [t for t in new_active if t not in active]
    if revived:
        lines.append(f"Reinstated {', '.join(revived)}: the cumulative posterior no longer rules it out.")
    if dropped and not newly:
        lines.append(f"Still dropped: {', '.join(dropped)}.")
    if tree is not None and tree.segments:
        for s in tree.segments:
            best = max(s.arm_best_probabilities.items(), key=lambda kv: kv[1]) if s.arm_best_probabilities else (None, 0.0)
            stab = "n/a" if math.isnan(float(s.stability_score)) else f"{float(s.stability_score):.2f}"
            lines.append(
                f"Segment {s.id} [{s.rule}] ({_pct(float(s.population_share))} of visitors): best "
                f"{best[0]} with P = {float(best[1]):.2f}, stability {stab}."
            )
    if ship_signals:
        lines.append(
            "SHIP fired this round for: "
            + "; ".join(f"{s.treatment} in [{s.rule_text}] ({s.rounds_sustained} round(s) running)" for s in ship_signals)
            + "."
        )
    return NextRoundPlan(cells, new_active, dropped, "\n".join(lines), round_idx, n_visitors, treatments)
