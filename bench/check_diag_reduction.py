"""Statistical check: the hurdle kernel's diagonal-channel reduction against bartz's full one.

Both fit the same K = 2 joint hurdle data set with the same trees and draws, one with
`pytyche.bcf.kernel._DiagChannels` (the default now), one with bartz's default (k, k)
reductions. The two are different (equally exact) float orderings of the same model, so
their chains differ draw by draw but must agree in distribution: the difference of the
posterior-mean average effects, per component, must lie within a few Monte-Carlo
standard errors (batch means over 10 batches of each chain), and the per-row posterior
means must differ by far less than the posterior sd.

Usage::

    python bench/check_diag_reduction.py --n 2000 --burnin 200 --draws 300
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import norm


def make_hurdle(n: int, k_arms: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    arm = rng.integers(0, k_arms, n)
    latent = -1.2 + 0.4 * x[:, 0] + np.where(arm == 1, 0.3 + 0.3 * x[:, 1], 0.0) + np.where(arm == 2, 0.15, 0.0)
    conv = rng.uniform(size=n) < norm.cdf(latent)
    logsev = 3.5 + 0.3 * x[:, 2] + np.where(arm == 1, 0.2 * (x[:, 3] > 0), 0.0) + rng.normal(scale=0.6, size=n)
    y = np.vstack([conv.astype(float), np.where(conv, logsev, 0.0)])
    missing = np.vstack([np.zeros(n, bool), ~conv])
    return {"x": x, "arm": arm, "y": y, "missing": missing}


def batch_se(series: np.ndarray, batches: int = 10) -> float:
    """Monte-Carlo standard error of the mean of a chain by batch means."""
    m = len(series) // batches
    means = series[: m * batches].reshape(batches, m).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(batches))


def fit(d: dict, burnin: int, draws: int, diag: bool) -> np.ndarray:
    from pytyche.bcf import kernel
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    import jax

    jax.clear_caches()  # the jitted init would otherwise reuse the other variant's program
    saved = kernel._reduction_configs  # noqa: SLF001
    if not diag:
        kernel._reduction_configs = lambda *a: {}  # noqa: SLF001
    try:
        cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=burnin, num_draws=draws, num_chains=1, seed=3)
        out = run_bcf(d["x"], d["arm"], d["y"], d["missing"], outcome_types=("binary", "continuous"), n_arms=2, config=cfg)
    finally:
        kernel._reduction_configs = saved  # noqa: SLF001
    return out.tau[0, :, 0]  # (draws, k, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--burnin", type=int, default=200)
    ap.add_argument("--draws", type=int, default=300)
    args = ap.parse_args()
    d = make_hurdle(args.n, 2)
    new = fit(d, args.burnin, args.draws, diag=True)
    old = fit(d, args.burnin, args.draws, diag=False)
    res = {}
    for c, name in enumerate(("conversion (probit)", "log-severity")):
        a_new, a_old = new[:, c].mean(axis=1), old[:, c].mean(axis=1)
        se = float(np.hypot(batch_se(a_new), batch_se(a_old)))
        diff = float(a_new.mean() - a_old.mean())
        row_diff = new[:, c].mean(0) - old[:, c].mean(0)
        post_sd = 0.5 * (new[:, c].std(0) + old[:, c].std(0))
        res[name] = {"ate_new": float(a_new.mean()), "ate_old": float(a_old.mean()), "diff": diff, "mc_se": se,
                     "z": diff / se, "rms_row_diff_over_post_sd": float(np.sqrt(np.mean((row_diff / post_sd) ** 2)))}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
