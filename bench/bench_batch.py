"""Benchmark: datasets per hour, one fit at a time (`run_bcf`) against batched fits (`run_bcf_batch`).

What a sweep pays to fit many small simulated datasets. For each outcome family (the joint
hurdle and binary, K = 2 arms), each row count ``n`` and each batch size ``B``, one fresh Python
process (the same layout for every cell: one process, one device, run one after another) fits
``B * (1 + --reps)`` datasets in groups of ``B`` with `run_bcf_batch`; the baseline process for
``(family, n)`` fits ``1 + --baseline-fits`` datasets one at a time with `run_bcf`. Every process
starts with JAX's persistent compilation cache off, so:

- ``cold``: the first group (compiles its programs): seconds and compilations;
- ``warm``: every later group (compiles nothing): seconds, datasets, datasets per hour.

Memory per process: peak resident set size (``ru_maxrss``) and, where the backend reports it,
the device's peak bytes in use. Datasets are drawn at the run_bcf level as the fits pass them
(binary: one probit component; hurdle: ``(conversion, log-severity)`` with the severity missing
at non-converters, as `pytyche.bcf.hurdle.model.joint_channels` does), 4 covariates and one
prognostic-only propensity column, arms balanced exactly so every dataset of a cell shares one
`pytyche.bcf.batch.BatchKey` (checked). Not for recording on a busy machine.

Usage::

    python bench/bench_batch.py --out bench/results/bench_batch.json     # default config
    python bench/bench_batch.py --quick                                  # tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("hurdle", "binary")
TYPES = {"hurdle": ("binary", "continuous"), "binary": ("binary",)}
N_ARMS = 2


# --------------------------------------------------------------------------- child process


def make_dataset(family: str, n: int, seed: int):  # noqa: ANN201
    """One simulated dataset at the run_bcf level: ``BCFData`` with a propensity column."""
    import numpy as np

    from pytyche.bcf.batch import BCFData

    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 4))
    arm = rng.permutation(np.arange(n) % N_ARMS)  # balanced: the tau bucket is the same for every seed
    propensity = np.full((n, 1), 1.0 / N_ARMS)
    lin = -0.8 + x[:, 0] + 0.3 * arm * x[:, 1]
    conv = lin + rng.normal(size=n) > 0
    if family == "binary":
        return BCFData(x, arm, conv.astype(float)[None], mu_covariates=propensity)
    log_sev = np.where(conv, 3.0 + 0.5 * x[:, 2] + 0.2 * arm + 0.5 * rng.normal(size=n), 0.0)
    missing = np.stack([np.zeros(n, bool), ~conv])
    return BCFData(x, arm, np.stack([conv.astype(float), log_sev]), missing, mu_covariates=propensity)


def _config(quick: bool):  # noqa: ANN202
    from pytyche.bcf.config import GPUBCFConfig

    if quick:
        return GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_burnin=10, num_draws=10, num_chains=1, bucket_min=512)
    return GPUBCFConfig()


def _memory() -> dict:
    import resource

    import jax

    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # a backend without memory statistics
        stats = {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    return out


def child(spec: dict) -> dict:
    """Fit one cell's datasets in this process and measure it (see the module docstring)."""
    import jax

    from pytyche.bcf.batch import batch_key, run_bcf_batch
    from pytyche.bcf.sampler import run_bcf

    family, n, mode, size = spec["family"], spec["n"], spec["mode"], spec["batch"]
    cfg = _config(spec["quick"])
    types = TYPES[family]
    count = size * (1 + spec["reps"]) if mode == "batched" else 1 + spec["baseline_fits"]
    data = [make_dataset(family, n, seed) for seed in range(count)]
    keys = {batch_key(d, outcome_types=types, n_arms=N_ARMS, config=cfg) for d in data}
    assert len(keys) == 1, keys
    group = size if mode == "batched" else 1
    groups = [list(range(i, i + group)) for i in range(0, count, group)]

    def fit(idx: list[int]) -> int:
        if mode == "batched":
            draws = run_bcf_batch([data[i] for i in idx], outcome_types=types, n_arms=N_ARMS, config=cfg, seeds=idx)
            return draws[0].n_compilations
        d = data[idx[0]]
        cfg_i = type(cfg)(**{**cfg.to_dict(), "seed": idx[0]})
        return run_bcf(d.x, d.arm, d.y, d.missing, outcome_types=types, n_arms=N_ARMS, config=cfg_i,
                       mu_covariates=d.mu_covariates).n_compilations

    t0 = time.perf_counter()
    cold_compilations = fit(groups[0])
    cold_s = time.perf_counter() - t0
    warm_compilations = 0
    t0 = time.perf_counter()
    for idx in groups[1:]:
        warm_compilations += fit(idx)
    warm_s = time.perf_counter() - t0
    warm_datasets = count - len(groups[0])
    return {
        **spec,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "cold_s": cold_s,
        "cold_datasets": len(groups[0]),
        "cold_compilations": cold_compilations,
        "warm_s": warm_s,
        "warm_datasets": warm_datasets,
        "warm_compilations": warm_compilations,
        "warm_datasets_per_hour": 3600.0 * warm_datasets / warm_s if warm_s > 0 else None,
        **_memory(),
    }


# --------------------------------------------------------------------------- driver


def run_cell(spec: dict, timeout: float) -> dict:
    """Run one cell in a fresh interpreter (persistent JAX cache off) and return its record."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    # ROOT first, and whatever the caller had after it (the device machine's wheels in /tmp/site)
    env.update(PYTYCHE_JAX_CACHE="off", PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:g} s"}
    wall = time.perf_counter() - t0
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        return {**spec, "error": f"exit {out.returncode}: {out.stderr.strip()[-2000:]}"}
    return {**json.loads(line[len("RESULT "):]), "process_wall_s": wall}


def cells(families: list[str], ns: list[int], batches: list[int], *, reps: int, baseline_fits: int, quick: bool) -> list[dict]:
    """Every measurement: per (family, n) the baseline, then each batch size."""
    out = []
    for family in families:
        for n in ns:
            common = {"family": family, "n": n, "reps": reps, "baseline_fits": baseline_fits, "quick": quick}
            out.append({**common, "mode": "baseline", "batch": 1})
            out.extend({**common, "mode": "batched", "batch": b} for b in batches)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="tiny config, n=300, B=2, one warm group: a smoke run")
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000, 20000], help="row counts (default %(default)s)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16], help="batch sizes (default %(default)s)")
    ap.add_argument("--reps", type=int, default=2, help="warm groups per batched cell (default %(default)s)")
    ap.add_argument("--baseline-fits", type=int, default=16, help="warm one-at-a-time fits per baseline cell (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per cell process (default %(default)s)")
    ap.add_argument("--out", default=None, help="JSON output path (default: print only)")
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.quick:
        args.n, args.batch, args.reps, args.baseline_fits = [300], [2], 1, 2
    records = []
    for spec in cells(args.families, args.n, args.batch, reps=args.reps, baseline_fits=args.baseline_fits, quick=args.quick):
        rec = run_cell(spec, args.timeout)
        records.append(rec)
        print(json.dumps(rec), flush=True)
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "config": "quick" if args.quick else "default GPUBCFConfig()",
        "records": records,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    failed = [r for r in records if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
