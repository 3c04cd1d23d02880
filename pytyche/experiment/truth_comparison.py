"""Sim mode: a round's posterior and recommended policy scored against the planted truth.

The scoring itself is :func:`pytyche.calibrate.sbc.evaluate_decisions`, the one truth evaluator;
this module picks the recommended arm per visitor and adds the omniscient reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytyche.calibrate.sbc import evaluate_decisions
from pytyche.contracts.results import PolicyTreeResult
from pytyche.contracts.truth import CalibrationTruth

__all__ = ["TruthComparison", "compare_to_truth", "recommended_arms"]


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
