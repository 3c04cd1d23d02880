"""One GPU check: hurdle and continuous BCF at scale (issue 16 item 5), batched fits and lockstep
sweeps (issue 23 item 4), and sweep actors sharing a GPU.

Runs, on whatever JAX backend is present (an H100/H200-class GPU is the target), one section
after another, each in its own process under its own time budget (an overrun section's whole
process tree is ended and the next one starts), so one slow section cannot eat the rest:

1. ``hurdle_k3_n1000000``: the joint hurdle BCF (probit conversion x log-normal severity,
   shared bivariate trees) at K = 3, n = 1M, 700 iterations (600 burn-in + 100 kept draws,
   1 chain, 200 mu-trees, 50 tau-trees per arm);
2. ``batched_fits``: datasets per hour, one fit at a time (`run_bcf`) against batched fits
   (`run_bcf_batch`), at the default ``GPUBCFConfig()``: the cells of ``bench/bench_batch.py``
   (one fresh process each, persistent JAX cache off, so ``cold`` = compile + first group and
   ``warm`` = the later groups), in priority order: the joint hurdle K = 2 at n = 2k (one at a
   time, B = 8, B = 32), binary K = 2 at n = 2k (one at a time, B = 32), then n = 20k (hurdle
   and binary, one at a time and B = 8), then the rest of B = 8 / 32; each cell under its own
   cap, and the cells the section's budget cannot reach are recorded as skipped;
3. ``lockstep``: ``bench/bench_lockstep.py`` on one GPU actor (embedded Ray, ``--num-gpus 1``):
   16 single-round clustered_realistic experiments of 2,000 visitors at the default config, as a
   coverage sweep runs them (``experiment.skip_analysis: [stability, policy_value]``),
   ``batch_size`` 1 then 8 (two groups: the first compiles); tasks per hour (end to
   end and warm), per-task seconds, compiles, peak RSS and GPU memory of the actor, and whether
   both runs wrote the same calibration, truth and decision rows;
4. ``continuous_n1000000``: the continuous BCF (K = 2) at n = 1M, 700 iterations, same trees;
5. ``sweep_actors``: a sweep (``bench/bench_sweep.py``) with 1 actor and with 2 actors sharing
   one GPU (``num_gpus = 0.5`` each), on whatever time is left (skipped with under 60 s).

Each fit of 1 and 4 is preceded by a 50-iteration fit of the same shape, which compiles every
program (the chunked MCMC program has a traced iteration count), so the reported 700-iteration
time is warm; the compile time is reported beside it. Only 100 draws are kept because at 1M rows
each kept draw is ``(K-1) * k * n`` floats per surface on the host. (Trimmed for the issue 23
sections: the hurdle at n = 100k, formerly run before the 1M one, now only with ``--sections
hurdle_k3_n100000``, and the actor sweep runs last on the time left.)

Writes ``device_check.json`` into ``--out`` (default ``$OUT`` or ``.``) after every section, the
child logs beside it, and prints a table. ``--smoke`` runs the same code at tiny sizes on CPU.

Usage::

    bash bench/device_check.sh            # on the GPU machine, under 8 minutes
    bash bench/device_check.sh --smoke    # anywhere, a few minutes on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._proc import end_tree  # noqa: E402

#: seconds from the start of this script by which every section must have ended (the shell
#: script's ``timeout`` is 470 s: the rest is for writing and for interpreter start-up)
DEADLINE_S = 455.0
#: GPU budgets, seconds per section, in running order (``sweep_actors``: whatever is left)
BUDGETS = {"hurdle_k3_n1000000": 100.0, "batched_fits": 110.0, "lockstep": 130.0, "continuous_n1000000": 70.0,
           "sweep_actors": None}
DEFAULT_SECTIONS = tuple(BUDGETS)
#: a section (or a batched-fit cell) is not started with less than this many seconds for it
MIN_START_S = {"sweep_actors": 60.0, "cell": 20.0}
#: the most one batched-fit cell may take on the GPU
CELL_CAP_S = 75.0


# --------------------------------------------------------------------------- fits at scale


def hurdle_data(n: int, k_arms: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float64)
    arm = rng.integers(0, k_arms, n)
    latent = -1.5 + 0.3 * x[:, 0] + np.where(arm == 1, 0.2 + 0.2 * x[:, 1], 0.0) + np.where(arm == 2, 0.1, 0.0)
    conv = rng.uniform(size=n) < norm.cdf(latent)
    logsev = 3.5 + 0.2 * x[:, 1] + np.where(arm == 2, 0.15, 0.0) + rng.normal(scale=0.6, size=n)
    y = np.vstack([conv.astype(float), np.where(conv, logsev, 0.0)])
    return {"x": x, "arm": arm, "y": y, "missing": np.vstack([np.zeros(n, bool), ~conv]),
            "types": ("binary", "continuous"), "n_arms": k_arms}


def continuous_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    arm = rng.integers(0, 2, n)
    y = 1.0 + x[:, 0] * np.abs(x[:, 2] - 1) + (1.0 + 2.0 * x[:, 1] * (x[:, 4] > 0)) * arm + rng.normal(size=n)
    return {"x": x, "arm": arm, "y": y[None, :], "missing": None, "types": ("continuous",), "n_arms": 2}


def timed_fit(d: dict, trees: tuple[int, int], burnin: int, draws: int, warm_iters: int) -> dict:
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    def cfg(b: int, s: int) -> GPUBCFConfig:
        return GPUBCFConfig(num_trees_mu=trees[0], num_trees_tau=trees[1], num_burnin=b, num_draws=s, num_chains=1, seed=1)

    kw = dict(outcome_types=d["types"], n_arms=d["n_arms"])
    t0 = time.perf_counter()
    first = run_bcf(d["x"], d["arm"], d["y"], d["missing"], config=cfg(warm_iters // 2, warm_iters - warm_iters // 2), **kw)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run_bcf(d["x"], d["arm"], d["y"], d["missing"], config=cfg(burnin, draws), **kw)
    wall = time.perf_counter() - t0
    return {"n": len(d["arm"]), "iterations": burnin + draws, "first_fit_s": round(compile_s, 2),
            "first_fit_compilations": first.n_compilations, "wall_s": round(wall, 2),
            "ms_per_iteration": round(1000 * wall / (burnin + draws), 2), "compilations": out.n_compilations,
            "finite": bool(np.isfinite(out.tau).all())}


def fit_section(name: str, smoke: bool) -> dict:
    """Run one at-scale fit section in this process (the child side of :func:`run_fit`)."""
    family, _, n = name.rpartition("_n")
    if smoke:
        trees, burnin, draws, warm, n = (20, 10), 10, 10, 6, 2000
    else:
        trees, burnin, draws, warm, n = (200, 50), 600, 100, 50, int(n)
    data = hurdle_data(n, 3) if family == "hurdle_k3" else continuous_data(n)
    return timed_fit(data, trees, burnin, draws, warm)


def backend_info() -> dict:
    """JAX's version, backend and devices (the child side of the probe)."""
    import jax

    return {"jax": jax.__version__, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}


# --------------------------------------------------------------------------- child processes


def run_child(cmd: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` in its own session for at most ``timeout`` seconds; end its whole process tree
    (a Ray head and actors included) if it overruns. Output goes to ``log``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        end_tree(proc.pid)
        stdout, stderr = proc.communicate()
    except BaseException:  # this script is being ended (SIGTERM from the shell's timeout, Ctrl-C): its child too
        end_tree(proc.pid)
        raise
    log.write_text(stdout + "\n--- stderr ---\n" + stderr[-20000:])
    return {"returncode": None if timed_out else proc.returncode, "timed_out": timed_out,
            "wall_s": round(time.perf_counter() - t0, 1), "stdout": stdout, "stderr": stderr}


def _result_line(stdout: str) -> dict | None:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    return None if line is None else json.loads(line[len("RESULT "):])


def run_fit(name: str, smoke: bool, timeout: float, out_dir: Path) -> dict:
    """An at-scale fit section in a fresh process under ``timeout``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--fit-section", name, *(["--smoke"] if smoke else [])]
    child = run_child(cmd, timeout, out_dir / f"{name}.log")
    rec = _result_line(child["stdout"])
    if rec is None:
        why = f"timed out after {timeout:.0f} s" if child["timed_out"] else f"exit {child['returncode']}: {child['stderr'][-1500:]}"
        return {"error": why, "timed_out": child["timed_out"]}
    return rec


# --------------------------------------------------------------------------- batched fits


def batched_cells(smoke: bool) -> list[dict]:
    """The batched-fit matrix in priority order (``bench/bench_batch.py`` cell specs)."""
    if smoke:
        order = [("hurdle", 300, "baseline", 1), ("hurdle", 300, "batched", 2)]
        reps, fits = 1, 1
    else:
        order = [("hurdle", 2000, "baseline", 1), ("hurdle", 2000, "batched", 8), ("hurdle", 2000, "batched", 32),
                 ("binary", 2000, "baseline", 1), ("binary", 2000, "batched", 32),
                 ("hurdle", 20000, "baseline", 1), ("hurdle", 20000, "batched", 8),
                 ("binary", 20000, "baseline", 1), ("binary", 20000, "batched", 8),
                 ("binary", 2000, "batched", 8), ("hurdle", 20000, "batched", 32), ("binary", 20000, "batched", 32)]
        reps, fits = 1, 2
    return [{"family": f, "n": n, "mode": m, "batch": b, "reps": reps, "baseline_fits": fits, "quick": smoke}
            for f, n, m, b in order]


def batched_fits(smoke: bool, budget: float) -> dict:
    """bench_batch.py's cells within ``budget`` seconds: each under its own cap, the rest skipped."""
    from bench.bench_batch import run_cell

    end = time.perf_counter() + budget
    records = []
    for spec in batched_cells(smoke):
        left = end - time.perf_counter()
        if left < (0.0 if smoke else MIN_START_S["cell"]):
            records.append({**spec, "skipped": f"section budget spent ({budget:.0f} s)"})
            continue
        rec = run_cell(spec, min(left, 600.0 if smoke else CELL_CAP_S))
        records.append(rec)
        print(f"  batched cell: {_cell_line(rec)}", flush=True)
    return {"budget_s": budget, "cells": records}


def _cell_line(r: dict) -> str:
    head = f"{r['family']} n={r['n']} {r['mode']} B={r['batch']}"
    if "skipped" in r:
        return f"{head}: skipped ({r['skipped']})"
    if "error" in r:
        return f"{head}: {r['error'].splitlines()[0][:200]}"
    rate = r.get("warm_datasets_per_hour")
    return (f"{head}: cold {r['cold_s']:.1f} s ({r['cold_compilations']} compiles), warm {r['warm_datasets']} datasets "
            f"in {r['warm_s']:.1f} s = {rate:.0f}/h, peak RSS {r['peak_rss_mib']:.0f} MiB"
            + (f", device peak {r['device_peak_mib']:.0f} MiB" if "device_peak_mib" in r else ""))


# --------------------------------------------------------------------------- sweeps


def lockstep(smoke: bool, timeout: float, out_dir: Path) -> dict:
    """bench_lockstep.py: batch_size 1 then 8 on one GPU actor (smoke: --quick on a CPU actor)."""
    json_path = out_dir / "device_lockstep.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_lockstep.py"), "--json", str(json_path)]
    if smoke:  # the per-user JAX cache: a smoke run checks the script, it measures nothing
        cmd += ["--quick", "--num-cpus", "2", "--jax-cache", ""]
    else:
        cmd += ["--n", "2000", "--rounds", "1", "--replications", "16", "--batch", "8",
                "--skip-analysis", "stability", "policy_value", "--actors", "1", "--gpus-per-actor", "1", "--num-gpus", "1",
                "--num-cpus", str(os.cpu_count() or 1), "--no-preallocate"]
    env = {**os.environ}
    if not smoke:
        env.pop("JAX_PLATFORMS", None)  # the actor must see the GPU
    child = run_child(cmd, timeout, out_dir / "device_lockstep.log", env)
    rec: dict[str, Any] = {"returncode": child["returncode"], "timed_out": child["timed_out"], "wall_s": child["wall_s"]}
    if json_path.is_file():
        rec["report"] = json.loads(json_path.read_text())
    return rec


def sweep_actors(smoke: bool, timeout: float, out_dir: Path) -> dict:
    """bench_sweep.py with 1 and 2 actors on one GPU (0.5 GPU each), or CPU actors in smoke mode."""
    spec_src = (ROOT / "experiments" / "tiny_sweep.yaml").read_text()
    if not smoke:
        spec_src = spec_src.replace("actors: {count: 1, num_gpus: 0}", "actors: {count: 1, num_gpus: 0.5}")
        spec_src = spec_src.replace(
            "bcf: {num_trees_mu: 10, num_trees_tau: 5, num_burnin: 20, num_draws: 20, num_chains: 1}",
            "bcf: {num_trees_mu: 200, num_trees_tau: 50, num_burnin: 100, num_draws: 100, num_chains: 1}",
        )
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "device_sweep.yaml"
        spec.write_text(spec_src)
        env = {**os.environ}
        if not smoke:
            env.pop("JAX_PLATFORMS", None)  # bench_sweep defaults it to cpu
            env["JAX_PLATFORMS"] = ""
            # two actors share the GPU: neither may preallocate most of its memory
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        cmd = [sys.executable, str(ROOT / "bench" / "bench_sweep.py"), "--spec", str(spec), "--no-write",
               "--replications", "4" if smoke else "8", "--actors", "1", "2"]
        if not smoke:
            cmd += ["--actor-env", "XLA_PYTHON_CLIENT_PREALLOCATE=false", "--actor-env", "JAX_PLATFORMS="]
        child = run_child(cmd, timeout, out_dir / "device_sweep.log", env)
    rows = [line for line in child["stdout"].splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    return {"returncode": child["returncode"], "timed_out": child["timed_out"], "wall_s": child["wall_s"], "table_rows": rows}


# --------------------------------------------------------------------------- driver


def section_runner(name: str, smoke: bool, out_dir: Path) -> Callable[[float], dict]:
    """``run(timeout) -> record`` of the section ``name``."""
    if name == "batched_fits":
        return lambda t: batched_fits(smoke, t)
    if name == "lockstep":
        return lambda t: lockstep(smoke, t, out_dir)
    if name == "sweep_actors":
        return lambda t: sweep_actors(smoke, t, out_dir)
    return lambda t: run_fit(name, smoke, t, out_dir)


def section_ok(name: str, rec: dict, smoke: bool) -> bool:
    """Whether a section ran without an error. A time budget running out is not an error (the
    record says so); on the CPU (``smoke``) the lockstep rows must also be identical."""
    if "skipped" in rec:
        return True
    if name == "batched_fits":
        return all("error" not in c or "timed out" in c["error"] for c in rec["cells"])
    if name == "lockstep":
        report = rec.get("report", {})
        runs = report.get("runs", [])
        runs_ok = rec["timed_out"] or (len(runs) >= 2 and all(r["complete"] for r in runs))
        same = all(c["identical"] for c in report.get("comparisons", {}).values())
        return runs_ok and (same or not smoke)
    if name == "sweep_actors":
        return rec["timed_out"] or rec["returncode"] == 0
    if "error" in rec:
        return rec.get("timed_out", False)
    return rec["finite"] and rec["compilations"] == 0


def print_summary(res: dict) -> None:
    print("\n| check | n | iterations | first fit s (compile) | warm wall s | ms / iteration |")
    print("|---|---|---|---|---|---|")
    for key, v in res.items():
        if isinstance(v, dict) and "ms_per_iteration" in v:
            print(f"| {key} | {v['n']:,} | {v['iterations']} | {v['first_fit_s']} | {v['wall_s']} | {v['ms_per_iteration']} |")
    for c in res.get("batched_fits", {}).get("cells", []):
        print(f"batched: {_cell_line(c)}")
    report = res.get("lockstep", {}).get("report")
    if report:
        for r in report["runs"]:
            print(f"lockstep batch_size={r['batch_size']}: {r['tasks']} tasks, wall {r['wall_s']:.1f} s, "
                  f"steady {r['tasks_per_hour_steady'] or float('nan'):.0f} tasks/h, e2e {r['tasks_per_hour_e2e']:.0f} tasks/h, "
                  f"compiles {r['compiles_total']}, actor RSS {r['actor_peak_rss_mib']} MiB, GPU {r['actor_gpu_mib']} MiB")
        for b, c in report["comparisons"].items():
            print(f"lockstep rows batch_size={b} vs 1: identical={c['identical']}")
    for row in res.get("sweep_actors", {}).get("table_rows", []):
        print(f"sweep actors: {row}")
    for key, v in res.items():
        if isinstance(v, dict) and (v.get("timed_out") or "skipped" in v):
            print(f"{key}: {'timed out (its budget ran out)' if v.get('timed_out') else 'skipped: ' + v['skipped']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script end to end")
    ap.add_argument("--out", default=os.environ.get("OUT") or ".")
    ap.add_argument("--sections", nargs="+", default=list(DEFAULT_SECTIONS), choices=[*DEFAULT_SECTIONS, "hurdle_k3_n100000"],
                    help=f"sections to run, in order (default {' '.join(DEFAULT_SECTIONS)}; also hurdle_k3_n100000)")
    ap.add_argument("--skip-sweep", action="store_true", help="leave out sweep_actors")
    ap.add_argument("--fit-section", help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_section:
        print("RESULT " + json.dumps(fit_section(args.fit_section, args.smoke)), flush=True)
        return 0
    if args.probe:
        print("RESULT " + json.dumps(backend_info()), flush=True)
        return 0
    started = time.perf_counter()
    # the shell's `timeout` ends this process with SIGTERM: exit through run_child's cleanup
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [s for s in args.sections if not (args.skip_sweep and s == "sweep_actors")]

    # this process never starts a JAX backend: on a GPU it would hold most of the memory the
    # sections' processes need (XLA preallocates), so a short child reports the devices
    probe = run_child([sys.executable, str(Path(__file__).resolve()), "--probe"], 120.0, out_dir / "device_probe.log")
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "smoke": args.smoke, "python": platform.python_version(),
                 **(_result_line(probe["stdout"]) or {"probe_error": probe["stderr"][-1500:]}), "sections": sections}
    ok = True
    for name in sections:
        left = (3600.0 if args.smoke else DEADLINE_S) - (time.perf_counter() - started)
        budget = BUDGETS.get(name, 100.0)
        timeout = left if args.smoke or budget is None else min(budget, left)
        if timeout < (0.0 if args.smoke else MIN_START_S.get(name, 15.0)):
            res[name] = {"skipped": f"{left:.0f} s left of the {DEADLINE_S:.0f} s deadline"}
        else:
            t0 = time.perf_counter()
            res[name] = section_runner(name, args.smoke, out_dir)(timeout)
            res[name]["section_s"] = round(time.perf_counter() - t0, 1)
        good = section_ok(name, res[name], args.smoke)
        ok = ok and good
        print(f"{name}: {'ok' if good else 'FAILED'} {json.dumps(res[name], default=str)[:1500]}", flush=True)
        (out_dir / "device_check.json").write_text(json.dumps(res, indent=1))
    print_summary(res)
    print("device check", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
