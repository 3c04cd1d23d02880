"""Bootstrap stability of policy-tree segments (docs/concepts.md, *Stability*).

The score of a segment is the fraction of ``B`` bootstrap policy trees in which some leaf has
Jaccard overlap ``>= 0.5`` with the segment's member set. Each bootstrap resamples the visitors'
per-visitor CATEs (posterior means: the tree's labels and weights), not the BCF posterior, refits
a tree with the same depth and the same minimum leaf size, and places the ORIGINAL rows in its
leaves; overlaps are measured on the original rows (:func:`bootstrap_stability`,
``stability_method="means"``).

The means are a deterministic function of the features, so a tree refitted to a resample of them
reproduces its own boundaries whether or not the posterior supports them: on data with no effect
anywhere, spurious segments score close to 1 (``bench/RESULTS.md``, null decisions).
:func:`posterior_stability` (``stability_method="posterior"``) refits each bootstrap tree on one
posterior DRAW of the CATEs (a different draw per tree) over a resample of the visitors, so a
boundary survives only where the posterior is sure which arm is best on either side. It is the
default (``DEFAULT_STABILITY_METHOD`` in :mod:`pytyche.contracts.results`).

Cost. Each bootstrap tree is fitted on a full size-``n`` resample: a smaller ``m``-out-of-``n``
resample would measure the variability of boundaries at sample size ``m``, not at the ``n`` the
segments were found with, and bias the score down. The fits run in a thread pool (scikit-learn's
tree builder releases the GIL), so 50 trees at n = 100 000 take seconds (see ``bench/``). The
overlaps need no per-pair set operations: the intersection sizes of every (segment, bootstrap
leaf) pair are the indicator product ``A^T B`` of the two leaf-membership indicator matrices,
which for two partitions of the same rows is their contingency table, one ``bincount``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.tree import DecisionTreeClassifier

#: Jaccard overlap at which a bootstrap leaf reproduces a segment (docs/concepts.md, *Stability*)
JACCARD_MIN = 0.5
#: smallest weighted impurity decrease a split must bring: with float sample weights a pure
#: node's Gini is rounding noise (~1e-16) rather than 0, and scikit-learn would split it
MIN_IMPURITY_DECREASE = 1e-9


def policy_tree_estimator(max_depth: int, min_samples_leaf: int, random_state: int) -> DecisionTreeClassifier:
    """The policy-tree classifier: same settings for the tree and every bootstrap refit."""
    return DecisionTreeClassifier(
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        min_impurity_decrease=MIN_IMPURITY_DECREASE,
        random_state=random_state,
    )


def jaccard_matrix(segment_of: np.ndarray, leaf_of: np.ndarray, n_segments: int, n_leaves: int) -> np.ndarray:
    """Jaccard overlap of every segment with every leaf of another partition of the same rows.

    Parameters
    ----------
    segment_of, leaf_of
        ``(n,)`` integer labels in ``[0, n_segments)`` and ``[0, n_leaves)``.

    Returns
    -------
    np.ndarray
        ``(n_segments, n_leaves)``; ``|A ∩ B| / |A ∪ B|`` (0 where both are empty).
    """
    inter = np.bincount(segment_of * n_leaves + leaf_of, minlength=n_segments * n_leaves)
    inter = inter.reshape(n_segments, n_leaves).astype(np.float64)
    union = inter.sum(axis=1, keepdims=True) + inter.sum(axis=0, keepdims=True) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _replicate_hits(
    x: np.ndarray,
    segment_of: np.ndarray,
    n_segments: int,
    fit_set: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]],
    *,
    max_depth: int,
    min_samples_leaf: int,
    n_bootstrap: int,
    seed: int,
    n_jobs: int | None,
) -> np.ndarray:
    """Fraction of ``n_bootstrap`` refitted trees reproducing each segment (shared by both methods).

    Each replicate draws its own child of ``np.random.SeedSequence(seed)``: the child seeds the
    visitor resample and the refit, and a grandchild (the child's first spawn) is handed to
    ``fit_set``, which returns that replicate's per-visitor ``(labels, weights)`` over the
    ORIGINAL rows. So replicate ``b`` resamples the same visitors under every method and the
    methods differ only in the labels and weights. The replicate resamples ``n`` visitors with
    replacement, refits the tree on them and places the original rows in its leaves.
    """
    n = x.shape[0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    segment_of = np.asarray(segment_of, dtype=np.int64)
    max_nodes = 2 ** (max_depth + 1) - 1
    children = np.random.SeedSequence(seed).spawn(n_bootstrap)

    def one(child: np.random.SeedSequence) -> np.ndarray:
        rng = np.random.default_rng(child)
        labels, weights = fit_set(np.random.default_rng(child.spawn(1)[0]))
        idx = np.sort(rng.integers(0, n, size=n))
        tree = policy_tree_estimator(max_depth, min_samples_leaf, int(rng.integers(2**31 - 1)))
        tree.fit(x[idx], labels[idx], sample_weight=weights[idx], check_input=False)
        leaf = tree.apply(x, check_input=False)
        jac = jaccard_matrix(segment_of, leaf.astype(np.int64), n_segments, max_nodes)
        return (jac >= JACCARD_MIN).any(axis=1)

    workers = max(1, min(n_bootstrap, n_jobs or os.cpu_count() or 1))
    if workers == 1:
        hits = [one(c) for c in children]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hits = list(pool.map(one, children))
    return np.mean(np.stack(hits), axis=0)


def bootstrap_stability(
    x: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    segment_of: np.ndarray,
    n_segments: int,
    *,
    max_depth: int,
    min_samples_leaf: int,
    n_bootstrap: int,
    seed: int,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Stability score of each segment of a policy tree (``stability_method="means"``).

    Parameters
    ----------
    x
        ``(n, p)`` float32 feature matrix the tree was fitted on.
    labels, weights
        ``(n,)`` the tree's per-visitor labels (best arm) and sample weights.
    segment_of
        ``(n,)`` segment index of each row in ``[0, n_segments)``.
    max_depth, min_samples_leaf
        The policy tree's settings, reused for every refit.
    n_bootstrap
        Number of bootstrap trees ``B``; ``0`` returns NaN scores.
    seed
        Seed of the resampling; each bootstrap draws from its own child of
        ``np.random.SeedSequence(seed)``, so results do not depend on thread scheduling.
    n_jobs
        Threads fitting trees (default: the CPU count).

    Returns
    -------
    np.ndarray
        ``(n_segments,)`` scores in ``[0, 1]`` (NaN when ``n_bootstrap == 0``).
    """
    if n_bootstrap == 0:
        return np.full(n_segments, np.nan)
    return _replicate_hits(
        x, segment_of, n_segments, lambda rng: (labels, weights),
        max_depth=max_depth, min_samples_leaf=min_samples_leaf, n_bootstrap=n_bootstrap, seed=seed, n_jobs=n_jobs,
    )


def posterior_stability(
    x: np.ndarray,
    outcome_draws: np.ndarray,
    segment_of: np.ndarray,
    n_segments: int,
    *,
    max_depth: int,
    min_samples_leaf: int,
    n_bootstrap: int,
    seed: int,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Posterior-aware stability of each segment (``stability_method="posterior"``, the default).

    Replicate ``b`` draws one posterior sample ``s_b`` uniformly (with replacement across
    replicates), labels and weights every visitor from that draw's CATEs ``outcome_draws[:, s_b,
    1:] - outcome_draws[:, s_b, :1]`` exactly as the policy tree does from the posterior means
    (:func:`~pytyche.analysis.policy_tree.policy_labels`, :func:`~pytyche.analysis.policy_tree.policy_weights`),
    resamples the visitors, refits the same tree and scores the overlap as
    :func:`bootstrap_stability` does. A boundary the posterior is sure of (the sign of the best
    arm's advantage holds in most draws) is reproduced by most replicates; a boundary drawn
    through CATEs indistinguishable from zero moves from draw to draw, so its score falls.
    The draws are the fit's raw ``outcome_samples``: a calibration, which rescales intervals, does
    not change them. When the draws carry independent per-visitor noise large enough to flip
    scattered visitors' best arm, the refitted trees split further and can cut a real segment
    into pieces, so the score errs low (``tests/test_stability_methods.py`` pins the size).

    Parameters
    ----------
    x
        ``(n, p)`` float32 feature matrix the tree was fitted on.
    outcome_draws
        ``(n, S, K)`` posterior draws of each visitor's expected outcome under each arm
        (control first): the fit's ``outcome_samples``.
    segment_of, n_segments, max_depth, min_samples_leaf, n_bootstrap, seed, n_jobs
        As for :func:`bootstrap_stability`.

    Returns
    -------
    np.ndarray
        ``(n_segments,)`` scores in ``[0, 1]`` (NaN when ``n_bootstrap == 0``).
    """
    if n_bootstrap == 0:
        return np.full(n_segments, np.nan)
    from pytyche.analysis.policy_tree import policy_labels, policy_weights

    n_draws = outcome_draws.shape[1]

    def fit_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = int(rng.integers(n_draws))
        draw = np.asarray(outcome_draws[:, s, :])
        cate = np.asarray(draw[:, 1:] - draw[:, :1], dtype=np.float64)  # as the fit's cate_samples
        return policy_labels(cate), policy_weights(cate)

    return _replicate_hits(
        x, segment_of, n_segments, fit_set,
        max_depth=max_depth, min_samples_leaf=min_samples_leaf, n_bootstrap=n_bootstrap, seed=seed, n_jobs=n_jobs,
    )
