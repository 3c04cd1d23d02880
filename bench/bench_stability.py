"""Time the policy tree's bootstrap stability (B = 50) and the whole ``fit_policy_tree`` at n = 100k.

Run: ``.venv/bin/python bench/bench_stability.py [n] [n_features]``. Prints one line per
measurement; the numbers recorded in the analysis helper's report came from this script.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pandas as pd

from pytyche.analysis.policy_tree import fit_policy_tree, policy_labels, policy_weights
from pytyche.analysis.stability import bootstrap_stability, policy_tree_estimator
from pytyche.contracts import VisitorSchema, make_observed


class _Planted:
    """Minimal fit-result interface over planted draws (as in tests/test_analysis.py)."""

    def __init__(self, observed, draws):
        self.observed, self.outcome_samples, self.calibration = observed, draws, None
        self.treatments = observed.variant_names

    def cate_mean(self):
        o = self.outcome_samples
        return (o[..., 1:] - o[..., :1]).mean(axis=1, dtype=np.float64)

    def interval(self, draws, level=0.9, family="cate", axis=-1):
        q = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=axis)
        return q[0], q[1]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    p = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    s, k, b = 200, 3, 50
    rng = np.random.default_rng(0)
    cols = {f"x{j}": rng.normal(size=n) for j in range(p - 2)}
    cols["device"] = rng.choice(["desktop", "mobile", "tablet"], n)
    cols["returning"] = rng.integers(0, 2, n)
    df = pd.DataFrame(cols)
    types = {c: "numeric" for c in cols}
    types["device"], types["returning"] = "categorical", "binary"
    obs = make_observed(
        df.assign(variant=rng.choice(["control", "a", "b"], n), outcome=rng.exponential(1.0, n)),
        variants=["control", "a", "b"], experiment_id="bench", metric="rpv", schema=VisitorSchema(types),
    )
    x0 = df["x0"].to_numpy()
    truth = np.column_stack([np.ones(n), 1 + np.where(x0 < 0, 0.2, -0.1), 1 + np.where(x0 < 0, -0.1, 0.2)])
    draws = (truth[:, None, :] + rng.normal(0, 0.1, (n, 1, k)) + rng.normal(0, 0.02, (n, s, k))).astype(np.float32)
    post = _Planted(obs, draws)

    x, _ = obs.feature_matrix()
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    cate = post.cate_mean()
    labels, weights = policy_labels(cate), policy_weights(cate)
    min_leaf = math.ceil(0.1 * n)
    tree = policy_tree_estimator(3, min_leaf, 0).fit(x32, labels, sample_weight=weights)
    leaves = np.flatnonzero(tree.tree_.children_left == -1)
    index = np.full(tree.tree_.node_count, -1)
    index[leaves] = np.arange(leaves.size)
    seg = index[tree.apply(x32)]

    print(f"n={n} p={p} S={s} K={k} B={b} cpus={os.cpu_count()}")
    t = time.perf_counter()
    tree1 = policy_tree_estimator(3, min_leaf, 0).fit(x32, labels, sample_weight=weights)
    print(f"one tree fit: {time.perf_counter() - t:.3f}s ({tree1.get_n_leaves()} leaves)")
    for jobs in (1, None):
        t = time.perf_counter()
        scores = bootstrap_stability(x32, labels, weights, seg, leaves.size, max_depth=3, min_samples_leaf=min_leaf,
                                     n_bootstrap=b, seed=0, n_jobs=jobs)
        print(f"bootstrap_stability B={b} n_jobs={jobs or os.cpu_count()}: {time.perf_counter() - t:.2f}s scores={np.round(scores, 2)}")
    t = time.perf_counter()
    res = fit_policy_tree(post, n_bootstrap=0)
    print(f"fit_policy_tree n_bootstrap=0 (tree + segment draws + allocation): {time.perf_counter() - t:.2f}s")
    t = time.perf_counter()
    res = fit_policy_tree(post)
    print(f"fit_policy_tree n_bootstrap=50: {time.perf_counter() - t:.2f}s, {len(res.segments)} segments")


if __name__ == "__main__":
    main()
