"""The policy tree: one sklearn ``DecisionTreeClassifier`` partitioning the per-visitor CATEs.

Glossary: policy tree, segment, PolicyTreeResult. The tree is fitted on the posterior-mean CATE of
every visitor: the label is the visitor's best arm (``argmax`` over ``[0, cate_mean]``, control
first) and the sample weight is what is at stake for that visitor (see :func:`policy_weights`).
Its leaves are the segments; each carries an exact :class:`~pytyche.contracts.AllOf` rule, the
group-average treatment effects with 80% intervals, the probability that each arm is best on the
segment average, a bootstrap stability score and a Thompson allocation.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytyche._validation import Interval, Options, check, invalid, validate
from pytyche.compare._draws import check_posterior, group_means, intervals, p_best
from pytyche.analysis.stability import bootstrap_stability, policy_tree_estimator, posterior_stability
from pytyche.analysis.thompson import EPSILON, thompson_allocation
from pytyche.contracts.results import DEFAULT_STABILITY_METHOD, DiscoveredSegment, PolicyTreeResult
from pytyche.contracts.rules import AllOf, BetweenRule, ComparisonRule, EqRule, InRule

#: level of the per-segment group-average treatment effect intervals (docs/concepts.md, *GATE*: 80%)
GATE_LEVEL = 0.80
#: how a segment's stability score is computed: "posterior" (the default, DEFAULT_STABILITY_METHOD:
#: each bootstrap tree refitted on one posterior draw) or "means" (bootstrap of the posterior-mean CATEs)
STABILITY_METHODS = ("means", "posterior")
_WHERE = "fit_policy_tree"


def policy_labels(cate_mean: np.ndarray) -> np.ndarray:
    """Best arm of each visitor: ``argmax`` over ``[0, cate_mean]`` (ties go to the lower arm)."""
    scores = np.concatenate([np.zeros((cate_mean.shape[0], 1)), cate_mean], axis=1)
    return np.argmax(scores, axis=1)


def policy_weights(cate_mean: np.ndarray) -> np.ndarray:
    """Sample weight of each visitor: the regret of giving them their second-best arm.

    With ``s = [0, cate_mean]`` the weight is ``max(s) - second_max(s)``. At K = 2 this is
    ``|CATE|``, and weighted classification with label ``1[CATE > 0]`` and weight ``|CATE|`` is
    exactly the policy-learning objective (maximise the summed CATE of the visitors the tree
    treats: the outcome-weighted-learning reduction). At K >= 3 it is the smallest regret a
    misrouted visitor can incur, so visitors whose best arm is clear by a wide margin pull the
    boundaries hardest and visitors indifferent between their top two arms barely count. A floor
    of ``1e-9 * max`` keeps every visitor in the fit (scikit-learn drops zero-weight rows, which
    would make leaves smaller than ``min_segment_share``); with no effect anywhere the weights
    are uniform.
    """
    scores = np.concatenate([np.zeros((cate_mean.shape[0], 1)), cate_mean], axis=1)
    top2 = np.sort(scores, axis=1)[:, -2:]
    gap = np.asarray(top2[:, 1] - top2[:, 0], dtype=np.float64)
    peak = float(gap.max()) if gap.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return np.ones_like(gap)
    return np.maximum(gap, 1e-9 * peak)


def exact_threshold(threshold: float) -> float:
    """A float64 ``t'`` with ``x <= t'`` iff ``float32(x) <= threshold`` for every float64 ``x``.

    scikit-learn compares ``float32(x)`` with the float64 split threshold. The float64 values
    rounding to a float32 at or below ``threshold`` are those up to the midpoint between the
    largest such float32 ``f`` and the next float32; the midpoint itself rounds (ties-to-even) to
    ``f`` only when ``f``'s significand is even. So a rule ``x <= t'`` (or ``x > t'``) over the raw
    column reproduces the tree's routing exactly.
    """
    t = float(threshold)
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    up = np.nextafter(f, np.float32(np.inf))
    if not np.isfinite(up):
        return float(f)
    mid = (float(f) + float(up)) / 2.0
    even = (int(np.asarray(f).view(np.uint32)) & 1) == 0
    return mid if even else float(np.nextafter(mid, -np.inf))


def _leaf_paths(tree: Any) -> dict[int, list[tuple[int, bool, float]]]:
    """Root-to-leaf path of every leaf: ``[(feature, went_left, threshold), ...]``."""
    t = tree.tree_
    paths: dict[int, list[tuple[int, bool, float]]] = {}
    stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        left, right = int(t.children_left[node]), int(t.children_right[node])
        if left == -1:
            paths[node] = path
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        stack.append((left, [*path, (f, True, thr)]))
        stack.append((right, [*path, (f, False, thr)]))
    return paths


def leaf_rule(path: list[tuple[int, bool, float]], feature_names: tuple[str, ...], categories: dict[str, list]) -> AllOf:
    """The :class:`AllOf` rule selecting exactly the rows a leaf receives.

    Repeated splits on one feature merge into one interval ``lo < x <= hi``: a
    :class:`ComparisonRule` when one end is open, a :class:`BetweenRule` when both are bounded.
    Categorical features (integer codes) render as :class:`EqRule` / :class:`InRule` over the
    category names whose codes fall in the interval. Features appear in the order the path first
    splits on them.
    """
    order: list[int] = []
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for f, went_left, thr in path:
        if f not in order:
            order.append(f)
        if went_left:
            hi[f] = min(hi.get(f, math.inf), thr)
        else:
            lo[f] = max(lo.get(f, -math.inf), thr)
    rules: list[Any] = []
    for f in order:
        name = feature_names[f]
        low, high = lo.get(f, -math.inf), hi.get(f, math.inf)
        if name in categories:
            cats = categories[name]
            codes = np.arange(len(cats), dtype=np.float32)
            keep = (codes > low) & (codes <= high)
            members = tuple(c for c, k in zip(cats, keep) if k)
            rules.append(EqRule(name, members[0]) if len(members) == 1 else InRule(name, members))
            continue
        if math.isinf(low):
            rules.append(ComparisonRule(name, "<=", exact_threshold(high)))
        elif math.isinf(high):
            rules.append(ComparisonRule(name, ">", exact_threshold(low)))
        else:
            rules.append(BetweenRule(name, exact_threshold(low), exact_threshold(high), closed="right"))
    return AllOf(tuple(rules))


@dataclass(frozen=True)
class _TreeFit:
    """What :func:`analyze_posterior` reuses from the policy-tree fit (internal)."""

    result: PolicyTreeResult
    cate_mean: np.ndarray  # (n, K-1)
    segment_of: np.ndarray  # (n,) segment index, segments ordered by leaf id
    group_draws: np.ndarray  # (L, S, K) segment-average outcome draws
    shares: np.ndarray  # (L,)


#: the constraint on each setting of `fit_policy_tree` (and `analyze`), checked in this order
POLICY_TREE_CONSTRAINTS: dict[str, Any] = {
    "max_depth": Interval(numbers.Integral, 1, None, loose=True),
    "min_segment_share": Interval(numbers.Real, 0.0, 1.0, closed="right", loose=True),
    "n_bootstrap": Interval(numbers.Integral, 0, None, loose=True),
    "bootstrap_seed": Interval(numbers.Integral, 0, None, loose=True),
    "stability_method": Options(STABILITY_METHODS),
}


def _check_params(
    max_depth: Any, min_segment_share: Any, n_bootstrap: Any, bootstrap_seed: Any,
    stability_method: Any = DEFAULT_STABILITY_METHOD,
    *, where: str = _WHERE, table: dict[str, Any] = POLICY_TREE_CONSTRAINTS, **extra: Any,
) -> tuple[int, float, int, int, str]:
    """The tree settings, checked against ``table`` (with ``extra`` settings of the caller's) for ``where``."""
    params = dict(
        max_depth=max_depth,
        min_segment_share=min_segment_share,
        n_bootstrap=n_bootstrap,
        bootstrap_seed=bootstrap_seed,
        stability_method=stability_method,
        **extra,
    )
    validate(params, table, where)
    return int(max_depth), float(min_segment_share), int(n_bootstrap), int(bootstrap_seed), stability_method


def check_stability_method(value: Any, where: str) -> str:
    """Validate a ``stability_method`` (one of :data:`STABILITY_METHODS`)."""
    return check(value, "stability_method", where, POLICY_TREE_CONSTRAINTS["stability_method"])


def _fit(
    posterior: Any,
    max_depth: Any = 3,
    min_segment_share: Any = 0.10,
    n_bootstrap: Any = 50,
    bootstrap_seed: Any = 0,
    stability_method: Any = DEFAULT_STABILITY_METHOD,
) -> _TreeFit:
    depth, share, boots, seed, method = _check_params(max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method)
    draws = check_posterior(posterior, _WHERE)
    observed = posterior.observed
    treatments = tuple(posterior.treatments)
    n, k = observed.n_visitors, len(treatments)
    cate_mean = np.asarray(posterior.cate_mean(), dtype=np.float64).reshape(n, k - 1)
    if not np.all(np.isfinite(cate_mean)):
        raise invalid("posterior", _WHERE, "a fit with finite CATE means", "NaN or infinite CATE means", show=False)

    categories = observed.categories()
    x, names = observed.feature_matrix(categories)
    if x.shape[1] == 0:
        raise invalid("posterior", _WHERE, "a fit on data with at least one schema feature", "no features", show=False)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    labels = policy_labels(cate_mean)
    weights = policy_weights(cate_mean)
    min_leaf = max(1, math.ceil(share * n))
    tree = policy_tree_estimator(depth, min_leaf, 0).fit(x32, labels, sample_weight=weights)

    leaf_ids = np.flatnonzero(tree.tree_.children_left == -1)
    index_of = np.full(tree.tree_.node_count, -1, dtype=np.int64)
    index_of[leaf_ids] = np.arange(leaf_ids.size)
    segment_of = index_of[tree.apply(x32)]
    n_leaves = leaf_ids.size
    counts = np.bincount(segment_of, minlength=n_leaves)

    group = group_means(draws, segment_of, n_leaves)  # (L, S, K)
    gate = group[..., 1:] - group[..., :1]  # (L, S, K-1)
    gate_lo, gate_hi = intervals(posterior, np.moveaxis(gate, 1, -1), GATE_LEVEL, "gate")  # (L, K-1)
    if method == "posterior":
        scores = posterior_stability(
            x32, draws, segment_of, n_leaves,
            max_depth=depth, min_samples_leaf=min_leaf, n_bootstrap=boots, seed=seed,
        )
    else:
        scores = bootstrap_stability(
            x32, labels, weights, segment_of, n_leaves,
            max_depth=depth, min_samples_leaf=min_leaf, n_bootstrap=boots, seed=seed,
        )
    paths = _leaf_paths(tree)
    active = np.ones(k, dtype=bool)
    segments, allocation, stability = [], {}, {}
    for j, leaf in enumerate(int(v) for v in leaf_ids):
        mean_outcome = group[j].mean(axis=0)
        best_p = p_best(group[j], active)
        alloc = thompson_allocation(group[j], active, EPSILON)
        treated = treatments[1:]
        segments.append(
            DiscoveredSegment(
                id=leaf,
                rule=leaf_rule(paths[leaf], names, categories),
                population_share=float(counts[j] / n),
                gate_estimate={t: float(gate[j, :, a].mean()) for a, t in enumerate(treated)},
                gate_ci={t: (float(gate_lo[j, a]), float(gate_hi[j, a])) for a, t in enumerate(treated)},
                stability_score=float(scores[j]),
                arm_best_probabilities={t: float(best_p[a]) for a, t in enumerate(treatments)},
                n_visitors=int(counts[j]),
                best_treatment=treatments[int(np.argmax(mean_outcome))],
            )
        )
        allocation[leaf] = {t: float(alloc[a]) for a, t in enumerate(treatments)}
        stability[leaf] = float(scores[j])

    result = PolicyTreeResult(
        tree=tree,
        segments=tuple(segments),
        allocation_map=allocation,
        stability_scores=stability,
        observed=observed,
        treatments=treatments,
        feature_names=tuple(names),
        categories=categories,
        stability_method=method,
    )
    return _TreeFit(result, cate_mean, segment_of, group, counts / n)


def fit_policy_tree(
    posterior: Any,
    max_depth: int = 3,
    min_segment_share: float = 0.10,
    n_bootstrap: int = 50,
    bootstrap_seed: int = 0,
    stability_method: str = DEFAULT_STABILITY_METHOD,
) -> PolicyTreeResult:
    """Fit the policy tree on a posterior's per-visitor CATEs and describe its segments.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``): reads ``observed``, ``treatments``, ``outcome_samples``,
        ``cate_mean()`` and ``interval(...)``.
    max_depth
        Depth of the tree (at most ``2 ** max_depth`` segments).
    min_segment_share
        Smallest share of visitors a segment may hold, in ``(0, 1]``
        (``min_samples_leaf = ceil(min_segment_share * n)``).
    n_bootstrap
        Bootstrap trees behind each stability score; ``0`` skips them and sets every score to NaN.
    bootstrap_seed
        Seed of the bootstrap resampling.
    stability_method
        How each segment's stability score is computed (docs/concepts.md's *Stability*).
        ``"posterior"`` (default): every bootstrap tree is refitted on a resample of the
        visitors' CATEs under one posterior draw (a different draw per tree), so boundaries the
        posterior cannot tell apart from noise score low (see
        :func:`pytyche.analysis.stability.posterior_stability`). ``"means"``: every bootstrap tree
        is refitted on a resample of the visitors' posterior-mean CATEs; on data with no effect
        anywhere it scores spurious segments close to 1 (75% of null runs split and score a
        segment credible, against 7% under ``"posterior"``: ``bench/RESULTS.md``, null
        decisions). Both use the same ``n_bootstrap``, seed and Jaccard >= 0.5 criterion.

    Returns
    -------
    PolicyTreeResult
        ``tree``: the ``DecisionTreeClassifier`` over ``observed.feature_matrix()`` (categoricals
        integer-coded by ``observed.categories()``, labels = arm indices, control 0);
        ``segments``: one :class:`~pytyche.contracts.DiscoveredSegment` per leaf ordered by leaf
        id, whose ``rule`` selects exactly the rows the tree routes to that leaf on any frame
        whose categorical values are among the fitted categories, ``gate_estimate`` /
        ``gate_ci`` the posterior mean and 80% interval (``posterior.interval(...,
        family="gate")``) of the segment-average effect of each non-control treatment,
        ``arm_best_probabilities`` the probability each arm has the highest segment-average
        outcome (joint draws), ``best_treatment`` the arm with the highest posterior-mean
        segment-average outcome; ``allocation_map``: the Thompson allocation (ε-clip) of each
        leaf; ``stability_scores``; ``observed`` (the posterior's, by identity);
        ``stability_method``.

    Raises
    ------
    ValueError, TypeError
        On bad parameters, a posterior without the fit-result interface, or data without features.

    Notes
    -----
    Deterministic given the posterior and the parameters. The labels and weights are
    :func:`policy_labels` and :func:`policy_weights`.
    """
    return _fit(posterior, max_depth, min_segment_share, n_bootstrap, bootstrap_seed, stability_method).result
