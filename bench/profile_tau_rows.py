"""Profile one warm MCMC step of the joint hurdle, and its tau phase, with and without own-row tau forests.

Builds the kernel state exactly as `run_bcf` does (`_validate`, `_prepare`, `kernel.init` through
`sampler._init_kwargs` when present), on `bench/bench_hurdle.py`'s data, then times jitted loops of
``--iters`` calls of: the whole `kernel.step`, the mu phase alone (bartz's `step`), the tau phase
alone (`kernel._tau_phase` over the chains) and the per-draw evaluation
(`kernel.evaluate_from_resid`). Reports wall and CPU (`time.process_time`, all threads)
milliseconds per call, best of ``--reps`` rounds; each round runs every path's piece in turn, so
the paths share the machine's load.

    python bench/profile_tau_rows.py --cases 3:5000 3:20000 --paths own all

``--paths``: ``own`` = tau forests on their own arm's rows (the default since issue 16),
``all`` = every tau forest over all rows with zero precision outside its arm (the older path,
kept selectable as `pytyche.bcf.sampler._TAU_OWN_ROWS`). Code without the flag runs one path
(``--paths default``), e.g. for a paired run against another checkout through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from jax import lax, random

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hurdle import make_data  # noqa: E402

from pytyche.bcf import kernel, sampler  # noqa: E402
from pytyche.bcf._inputs import _validate  # noqa: E402
from pytyche.bcf._priors import _prepare  # noqa: E402
from pytyche.bcf.config import GPUBCFConfig  # noqa: E402


def build_state(d: dict, k_arms: int, cfg: GPUBCFConfig) -> kernel.BCFKernelState:
    y = np.vstack([d["conv"].astype(float), d["logsev"]])
    missing = np.vstack([np.zeros(len(d["arm"]), bool), ~d["conv"]])
    xa, arma, ya, miss, types, n_arms, mu_cov = _validate(
        d["x"], d["arm"], y, missing, ("binary", "continuous"), k_arms, cfg, None, False
    )
    prep = _prepare(xa, arma, ya, miss, types, n_arms, mu_cov, cfg)
    if hasattr(sampler, "_init_kwargs"):
        return kernel.init(**sampler._init_kwargs(prep, types, n_arms, cfg, arma))
    return kernel.init(
        X=prep.X, y=prep.y, missing=prep.missing, arm=prep.arm, n_arms=n_arms, outcome_type=list(types),
        offset=prep.offset, max_split_mu=prep.max_split_mu, max_split_tau=prep.max_split_tau,
        num_trees_mu=cfg.num_trees_mu, num_trees_tau=cfg.num_trees_tau,
        p_nonterminal_mu=sampler.make_p_nonterminal(cfg.max_depth_mu, cfg.alpha_mu, cfg.beta_mu),
        p_nonterminal_tau=sampler.make_p_nonterminal(cfg.max_depth_tau, cfg.alpha_tau, cfg.beta_tau),
        leaf_prior_cov_inv_mu=prep.leaf_mu, leaf_prior_cov_inv_tau=prep.leaf_tau, error_cov_inv=prep.error,
        min_points_per_leaf=cfg.min_points_per_leaf or None, num_chains=cfg.num_chains,
        tau0_prior_sd=prep.tau0_prior_sd, tau_coding=cfg.tau_coding,
    )


def programs(state: kernel.BCFKernelState, iters: int) -> dict:
    """Jitted loops of `iters` calls of each piece, on `state` moved 30 steps off the all-stump start."""
    key = random.key(0)

    @jax.jit
    def steps(s):
        return lax.fori_loop(0, iters, lambda i, s: kernel.step(random.fold_in(key, i), s), s)

    @jax.jit
    def mus(s):
        return lax.fori_loop(0, iters, lambda i, s: kernel.bartz.step(random.fold_in(key, i), s), s)

    def tau_once(i, s):
        keys = random.split(random.fold_in(key, i), (s.num_tau_forests, s.num_chains()))
        return kernel.bartz.vmap_chains(kernel._tau_phase)(keys.T, s)

    @jax.jit
    def taus(s):
        return lax.fori_loop(0, iters, tau_once, s)

    ev = jax.jit(kernel.evaluate_from_resid)

    def evals(s):
        # separate calls: inside one loop the (loop-invariant) evaluation would be hoisted
        return [ev(s) for _ in range(iters)]

    state = jax.jit(lambda s: lax.fori_loop(0, 30, lambda i, s: kernel.step(random.fold_in(key, 10**6 + i), s), s))(state)
    fns = {"step": steps, "mu_phase": mus, "tau_phase": taus, "evaluate": evals}
    for fn in fns.values():
        jax.block_until_ready(fn(state))  # compile and warm
    return {"state": state, "fns": fns}


def profile(progs: dict, iters: int, reps: int) -> dict:
    """Best wall and CPU ms per call over `reps` rounds; in each round every path runs each piece
    once, interleaved, so the paths see the same load."""
    best = {path: {name: [float("inf"), float("inf")] for name in p["fns"]} for path, p in progs.items()}
    for _ in range(reps):
        for name in next(iter(progs.values()))["fns"]:
            for path, p in progs.items():
                w0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(p["fns"][name](p["state"]))
                b = best[path][name]
                b[0] = min(b[0], time.perf_counter() - w0)
                b[1] = min(b[1], time.process_time() - c0)
    out = {}
    for path, pieces in best.items():
        res = {name: {"wall_ms": round(1000 * w / iters, 2), "cpu_ms": round(1000 * c / iters, 2)}
               for name, (w, c) in pieces.items()}
        res["tau_share_cpu"] = round(res["tau_phase"]["cpu_ms"] / res["step"]["cpu_ms"], 3)
        out[path] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["3:5000", "3:20000"])
    ap.add_argument("--paths", nargs="+", default=["default"], choices=["default", "own", "all"])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = GPUBCFConfig(num_trees_mu=200, num_trees_tau=50, num_burnin=1, num_draws=1, num_chains=1, seed=1)
    rows = []
    for case in args.cases:
        k_arms, n = (int(v) for v in case.split(":"))
        d = make_data(n, k_arms)
        progs = {}
        for path in args.paths:
            if path != "default":
                sampler._TAU_OWN_ROWS = path == "own"
            progs[path] = programs(build_state(d, k_arms, cfg), args.iters)
        load = round(os.getloadavg()[0], 2)
        for path, res in profile(progs, args.iters, args.reps).items():
            res = {"K": k_arms, "n": n, "path": path, "load_avg": load,
                   "pythonpath": os.environ.get("PYTHONPATH", ""), **res}
            print(json.dumps(res), flush=True)
            rows.append(res)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
