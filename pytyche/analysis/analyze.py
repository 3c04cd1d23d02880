"""``pt.analyze``: from observed data (or a posterior) to what an operator acts on.

``analyze_posterior`` runs the whole analysis layer on one posterior: per-visitor CATEs, the
policy tree and its segments (stability, Thompson allocation), a recommendation per non-control
treatment for the whole population and for every segment, and the treatment comparison. The
posterior's outcome draws are averaged over the segments once; the population averages are the
share-weighted sums of the segment averages (the segments partition the visitors), so no second
pass over the draws is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytyche._validation import InstanceOf, wrong_type
from pytyche.compare._draws import claim_level
from pytyche.analysis.capabilities import remember_stability
from pytyche.analysis.policy_tree import POLICY_TREE_CONSTRAINTS, _check_params, _fit
from pytyche.compare.variants import LIFT_LEVEL, comparison_from_draws, lift_for_decision, summarize_draws
from pytyche.contracts.observed import ObservedExperimentData
from pytyche.contracts.results import AnalysisResult, DecisionThresholds

_DEFAULT_TREE = (3, 0.10, 50, 0)


#: the settings of :func:`analyze` and :func:`analyze_posterior` (the policy tree's, and the
#: decision thresholds), checked before any fit
ANALYZE_CONSTRAINTS: dict[str, Any] = {
    **POLICY_TREE_CONSTRAINTS,
    "thresholds": [None, InstanceOf(DecisionThresholds, "a DecisionThresholds")],
}


def _check_settings(
    max_depth: Any, min_segment_share: Any, n_bootstrap: Any, bootstrap_seed: Any, stability_method: Any, thresholds: Any
) -> DecisionThresholds:
    _check_params(max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method,
                  where="analyze", table=ANALYZE_CONSTRAINTS, thresholds=thresholds)
    return DecisionThresholds() if thresholds is None else thresholds


def analyze_posterior(
    posterior: Any,
    *,
    max_depth: int = 3,
    min_segment_share: float = 0.10,
    n_bootstrap: int = 50,
    bootstrap_seed: int = 0,
    stability_method: str = "posterior",
    thresholds: DecisionThresholds | None = None,
) -> AnalysisResult:
    """Analyse a fitted posterior.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``).
    max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method
        Policy-tree settings (see :func:`pytyche.analysis.policy_tree.fit_policy_tree`;
        ``stability_method`` is ``"posterior"``, the default (docs/concepts.md, *Stability*), or
        ``"means"``).
    thresholds
        Decision thresholds of every recommendation (default ``DecisionThresholds()``).

    Returns
    -------
    AnalysisResult
        ``cate_per_visitor``: ``observed.aligned(posterior.cate_mean())`` ``(n, K-1)``;
        ``segments`` and ``policy_tree``; ``recommendations[t]`` over all visitors;
        ``segment_recommendations[leaf_id][t]`` per segment; ``comparison`` over all visitors;
        ``claim_level`` from the posterior's calibration (``CALIBRATED`` iff a correction is
        applied).

    Raises
    ------
    ValueError, TypeError
        On bad settings or a posterior without the fit-result interface.
    """
    th = _check_settings(max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method, thresholds)
    fit = _fit(posterior, max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method)
    tree = fit.result
    treatments = tree.treatments
    claim = claim_level(posterior)
    group = fit.group_draws  # (L, S, K)
    population = np.tensordot(fit.shares, group, axes=1)  # (S, K)


    def summary(draws: np.ndarray, a: int, family: str, segment_id: int | None = None) -> Any:
        lift, lift_claim = lift_for_decision(posterior, draws, a, family)
        return summarize_draws(draws, a, treatments, th, lift, segment_id=segment_id, claim=lift_claim)

    recommendations = {t: summary(population, a, "ate") for a, t in enumerate(treatments) if a > 0}
    seg_family = "ate" if len(tree.segments) == 1 else "gate"
    segment_recommendations = {
        seg.id: {t: summary(group[j], a, seg_family, seg.id) for a, t in enumerate(treatments) if a > 0}
        for j, seg in enumerate(tree.segments)
    }
    settings = _check_params(max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method)
    if settings[:4] == _DEFAULT_TREE:  # the tree has_credible_segments() reads, under either score
        remember_stability(posterior, [s.stability_score for s in tree.segments], settings[4])
    return AnalysisResult(
        cate_per_visitor=posterior.observed.aligned(fit.cate_mean),
        segments=tree.segments,
        posterior=posterior,
        recommendations=recommendations,
        policy_tree=tree,
        segment_recommendations=segment_recommendations,
        comparison=comparison_from_draws(population, treatments, LIFT_LEVEL),
        claim_level=claim,
        thresholds=th,
    )


def analyze(
    observed: ObservedExperimentData,
    *,
    max_depth: int = 3,
    min_segment_share: float = 0.10,
    n_bootstrap: int = 50,
    bootstrap_seed: int = 0,
    stability_method: str = "posterior",
    thresholds: DecisionThresholds | None = None,
    **fit_kwargs: Any,
) -> AnalysisResult:
    """``pt.analyze``: fit with ``pt.fit`` and analyse the posterior, single-shot.

    Parameters
    ----------
    observed
        The experiment's data.
    max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method, thresholds
        Analysis settings (see :func:`analyze_posterior`); validated before fitting.
    **fit_kwargs
        Forwarded verbatim to ``pt.fit`` (``config``, ``observed_copy``, ``progress``,
        ``pooling``, ``calibration``, ...).

    Returns
    -------
    AnalysisResult
        ``result.posterior`` is the fit; ``result.observed`` its stashed data.

    Raises
    ------
    ValueError, TypeError
        On bad settings (before any fit) and whatever ``pt.fit`` raises.
    """
    th = _check_settings(max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method, thresholds)
    if not isinstance(observed, ObservedExperimentData):
        raise wrong_type("observed", "analyze", "an ObservedExperimentData", observed)
    from pytyche.bcf.dispatch import fit

    posterior = fit(observed, **fit_kwargs)
    return analyze_posterior(
        posterior,
        max_depth=max_depth,
        min_segment_share=min_segment_share,
        n_bootstrap=n_bootstrap,
        bootstrap_seed=bootstrap_seed,
        stability_method=stability_method,
        thresholds=th,
    )
