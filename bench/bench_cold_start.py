"""Benchmark: a fresh Python process's first fit, with and without pytyche's persistent JAX cache.

Each measurement starts a new interpreter that imports pytyche, builds a small dataset and runs
one ``pt.fit``; it reports the wall time from interpreter start to fit done, the fit's own
``fit_seconds`` and ``fit_info["n_compilations"]``. Three settings, ``--repeats`` processes each:

- ``off``: ``PYTYCHE_JAX_CACHE=off`` -- every process compiles (the behaviour before the cache);
- ``first``: an empty cache directory -- the first process ever (compiles, writes the cache);
- ``warm``: the same directory again -- a later process (loads every program from disk).

The JAX cache variables the test suite sets (``JAX_COMPILATION_CACHE_DIR`` ...) are removed from
the children's environment so pytyche's own default applies.

Usage::

    python bench/bench_cold_start.py --family continuous --n 2000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import time
t_start = time.perf_counter()
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from _data import observed_from_arrays
import pytyche as pt
from pytyche.bcf import GPUBCFConfig
family, n, k = {family!r}, {n}, {k}
rng = np.random.default_rng(0)
x = rng.uniform(size=(n, 4))
arm = rng.permutation(np.arange(n) % k)
lift = np.linspace(0.0, 0.5, k)[arm]
if family == "binary":
    y = (rng.uniform(size=n) < 0.2 + 0.2 * lift).astype(float)
elif family == "hurdle":
    y = np.where(rng.uniform(size=n) < 0.3 + 0.2 * lift, np.exp(3 + lift + 0.5 * rng.normal(size=n)), 0.0)
else:
    y = np.sin(3 * x[:, 0]) + lift * (1 + x[:, 1]) + rng.normal(size=n)
obs, _ = observed_from_arrays(x, arm, y)
cfg = GPUBCFConfig(num_burnin={burnin}, num_draws={draws})
t_fit = time.perf_counter()
post = pt.fit(obs, config=cfg)
t_end = time.perf_counter()
print("RESULT " + json.dumps({{"import_and_data_s": t_fit - t_start, "fit_s": t_end - t_fit,
    "total_s": t_end - t_start, "n_compilations": post.fit_info["n_compilations"]}}))
"""


def run_child(code: str, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE") and not k.startswith("JAX_PERSISTENT_CACHE")}
    env.update(PYTYCHE_JAX_CACHE=cache, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    res["process_wall_s"] = wall
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="continuous", choices=["continuous", "binary", "hurdle"])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--burnin", type=int, default=200)
    ap.add_argument("--draws", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    code = CHILD.format(tests=str(ROOT / "tests"), family=args.family, n=args.n, k=args.k, burnin=args.burnin, draws=args.draws)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pytyche-jax-cache-") as cache:
        for setting, target in [("off", "off")] * args.repeats + [("first", cache)] + [("warm", cache)] * args.repeats:
            res = run_child(code, target)
            res["setting"] = setting
            rows.append(res)
            print(json.dumps(res), flush=True)
        size = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version(), "family": args.family, "n": args.n,
                      "k": args.k, "burnin": args.burnin, "draws": args.draws, "cache_mb": round(size / 2**20, 1)}))


if __name__ == "__main__":
    main()
