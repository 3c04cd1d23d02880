"""Bootstrap stability of policy-tree segments (glossary: stability score).

The score of a segment is the fraction of ``B`` bootstrap policy trees in which some leaf has
Jaccard overlap ``>= 0.5`` with the segment's member set. Each bootstrap resamples the visitors'
per-visitor CATEs (posterior means: the tree's labels and weights), not the BCF posterior, refits
a tree with the same depth and the same minimum leaf size, and places the ORIGINAL rows in its
leaves; overlaps are measured on the original rows.

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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.tree import DecisionTreeClassifier

#: Jaccard overlap at which a bootstrap leaf reproduces a segment (glossary)
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
    """Stability score of each segment of a policy tree.

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
    n = x.shape[0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    segment_of = np.asarray(segment_of, dtype=np.int64)
    max_nodes = 2 ** (max_depth + 1) - 1
    children = np.random.SeedSequence(seed).spawn(n_bootstrap)

    def one(child: np.random.SeedSequence) -> np.ndarray:
        rng = np.random.default_rng(child)
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
