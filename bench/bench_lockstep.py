"""Benchmark: sweep throughput with replications in lockstep (``batch_size: B``) against one at a time.

The real sweep path, as ``pytyche-sweep run SPEC --num-cpus C --num-gpus G --no-tracking`` takes
it: :func:`sweeps.driver.run_sweep` with ``ray_init`` built from ``--num-cpus`` / ``--num-gpus``
as :mod:`sweeps.cli` builds it, an embedded local Ray started (and shut down) by each run, the
default task runner (:func:`sweeps.task.run_task`; with ``batch_size`` > 1 the lockstep runner,
:mod:`sweeps.lockstep`), Parquet shards, no MLflow. One small spec is run once per batch size
(``batch_size: 1`` first, then each ``B``), each into a fresh temporary output directory, with
the same actor layout and the same tasks (ids do not depend on ``batch_size``).

Per run (one JSON record each):

- ``tasks_per_hour_e2e``: tasks / wall of the whole ``run_sweep`` call (Ray and actor start,
  compiles, every task);
- ``tasks_per_hour_steady``: the tasks finished after the last unit (a task, or a lockstep group)
  that compiled anything, over the time they took: the rate once the actors are warm
  (``null`` when no task finishes after it);
- ``task_seconds_mean``: the mean of the shards' timing rows (a task's wall time in its worker;
  in lockstep its own steps plus an equal share of each batched fit);
- ``compiles``: JAX compilations per finished task (:attr:`sweeps.task.TaskResult.compiles`; in
  lockstep the group's count sits on its first task), their sum, and ``compiling_units``;
- ``actor_peak_rss_mib``: each actor process's peak resident set size (``VmHWM``, read from
  ``/proc`` while it runs; Linux, embedded Ray only), and ``actor_gpu_mib``: the most GPU memory
  ``nvidia-smi`` showed per actor process (only with ``nvidia-smi``; it includes XLA's
  preallocation unless ``--no-preallocate``).

Then, for each ``B``, whether its calibration, truth and decision rows are the ``batch_size: 1``
rows (as multisets of rows, every column compared exactly; batching must not change results),
and the steady and end-to-end speedups.

Every actor runs with pytyche's persistent JAX cache off (``PYTYCHE_JAX_CACHE=off``, unless
``--jax-cache`` says otherwise), so each run compiles its own programs and the compile counts
are real. Use a template whose replications share a batch key at every round (the default:
``clustered_realistic`` at ``conversion_scale: 8``, a fixed schedule, so every replication has
the same cumulative sizes); with several actors, make ``replications`` a multiple of
``B * actors``, so every actor gets whole groups. Results go to ``--json`` (rewritten after each
run, so a run cut short still leaves what finished) and a table on stdout.

Usage::

    python bench/bench_lockstep.py --gpus-per-actor 1 --num-gpus 1 --json lockstep.json   # GPU actor
    python bench/bench_lockstep.py --quick                                                # CPU smoke
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench._proc import descendants, peak_rss_mib, process_title  # noqa: E402

#: the toy BCF of ``--quick`` (``experiments/tiny_sweep.yaml``'s)
QUICK_BCF = {"num_trees_mu": 10, "num_trees_tau": 5, "num_burnin": 20, "num_draws": 20, "num_chains": 1}
#: the row kinds that must not depend on ``batch_size``
COMPARED_KINDS = ("calibration", "truth", "decision")
ACTOR_TITLE = "ray::SweepWorker"


# --------------------------------------------------------------------------- the spec


def build_spec(args: argparse.Namespace, batch_size: int, out_dir: Path) -> Any:
    """The benchmark's sweep spec at ``batch_size``, writing into ``out_dir``."""
    from sweeps.spec import parse_spec

    experiment = {"skip_analysis": list(args.skip_analysis)} if args.skip_analysis else {}
    return parse_spec({
        "name": "bench_lockstep",  # one name: the shards stamp it on every row
        "templates": [{"name": t, "params": args.template_params} for t in args.templates],
        "replications": args.replications,
        "seed": args.seed,
        "schedule": {"kind": "fixed", "args": {"per_round": args.n, "n_rounds": args.rounds}},
        "bcf": args.bcf,
        "experiment": experiment,
        "calibration": False,
        "levels": [0.5, 0.8, 0.9, 0.95],
        "families": list(args.families),
        "actors": {"count": args.actors, "num_gpus": args.gpus_per_actor, "num_cpus": args.cpus_per_actor},
        "output_dir": str(out_dir),
        "batch_size": batch_size,
    })


# --------------------------------------------------------------------------- memory of the actors


def _gpu_mib_by_pid() -> dict[int, float]:
    """GPU memory per process as ``nvidia-smi`` shows it (empty without it)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                found[int(parts[0])] = float(parts[1])
            except ValueError:
                continue
    return found


def watch_actors(stop: threading.Event, rss: dict[int, float], gpu: dict[int, float], every: float = 1.0) -> None:
    """Until ``stop`` is set, record the peak RSS (and GPU memory) of this process's Ray actors.

    Actors are the processes below this one whose title starts with ``ray::SweepWorker``, so a
    Ray instance that another process started on the same machine is never looked at.
    """
    while True:
        actors = [p for p in descendants(os.getpid()) if process_title(p).startswith(ACTOR_TITLE)]
        for pid in actors:
            peak = peak_rss_mib(pid)
            if peak is not None:
                rss[pid] = max(rss.get(pid, 0.0), peak)
        if actors:
            for pid, mib in _gpu_mib_by_pid().items():
                if pid in actors:
                    gpu[pid] = max(gpu.get(pid, 0.0), mib)
        if stop.wait(every):
            return


# --------------------------------------------------------------------------- one run


def steady_rate(finish_times: tuple[float, ...], compiles: tuple[int, ...], batch_size: int) -> tuple[float | None, int, float]:
    """Tasks per hour after the last compiling unit finished: ``(rate, tasks counted, from s)``.

    ``finish_times`` and ``compiles`` are in completion order (:class:`sweeps.driver.SweepReport`).
    A lockstep group's outcomes arrive one after another with its compile count on the first, so
    a compiling task at position ``i`` ends its unit at position ``i + batch_size - 1`` (exact
    when groups are full and none of their tasks failed).
    """
    last = max((i for i, c in enumerate(compiles) if c > 0), default=None)
    if last is None:
        warm_index, warm_at = -1, 0.0
    else:
        warm_index = min(last + batch_size - 1, len(finish_times) - 1)
        warm_at = finish_times[warm_index]
    after = finish_times[warm_index + 1:]
    if not after or (last is None and len(after) < 2):
        return None, len(after), warm_at
    span = after[-1] - warm_at
    return (3600.0 * len(after) / span if span > 0 else None), len(after), warm_at


def task_seconds(out_dir: Path) -> list[float]:
    """Each finished task's wall time in its worker (the shards' timing rows)."""
    from sweeps.shards import read_records

    timing = read_records(out_dir, kinds=["timing"])
    return [float(s) for s in timing["seconds"]] if len(timing) else []


def run_once(args: argparse.Namespace, batch_size: int, out_dir: Path) -> dict[str, Any]:
    """Run the spec at ``batch_size`` into ``out_dir`` through the sweep driver; measure it."""
    from sweeps.driver import run_sweep

    spec = build_spec(args, batch_size, out_dir)
    ray_init = {k: v for k, v in (("num_cpus", args.num_cpus), ("num_gpus", args.num_gpus)) if v is not None}
    rss: dict[int, float] = {}
    gpu: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_actors, args=(stop, rss, gpu), daemon=True)
    watcher.start()
    try:
        report = run_sweep(spec, progress=False, tracking=False, ray_init=ray_init)
    finally:
        stop.set()
        watcher.join(timeout=30)
    rate, n_steady, warm_at = steady_rate(report.finish_times, report.compiles, batch_size)
    seconds = task_seconds(out_dir)
    return {
        "batch_size": batch_size,
        "tasks": report.n_completed,
        "failed": report.n_failed,
        "refused": len(report.refused),
        "complete": report.complete,
        "wall_s": report.seconds,
        "tasks_per_hour_e2e": 3600.0 * report.n_completed / report.seconds if report.seconds > 0 else None,
        "warm_at_s": warm_at,
        "steady_tasks": n_steady,
        "tasks_per_hour_steady": rate,
        "task_seconds_mean": sum(seconds) / len(seconds) if seconds else None,
        "task_seconds_max": max(seconds) if seconds else None,
        "compiles": list(report.compiles),
        "compiles_total": sum(report.compiles),
        "compiling_units": sum(1 for c in report.compiles if c > 0),
        "actor_peak_rss_mib": sorted(round(v, 1) for v in rss.values()),
        "actor_gpu_mib": sorted(round(v, 1) for v in gpu.values()),
        "failures": [f"{tid}: {err.splitlines()[-1] if err else ''}" for tid, err in report.failures],
        "ray_init": ray_init,
    }


# --------------------------------------------------------------------------- results unchanged


def _canonical(row: dict[str, Any]) -> str:
    """A row as sorted JSON without its empty columns (rows of several kinds share one frame)."""

    def plain(v: Any) -> Any:
        return v.tolist() if hasattr(v, "tolist") else v  # numpy scalars and arrays (list-valued columns)

    kept = {}
    for k, v in row.items():
        v = plain(v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        kept[k] = v
    return json.dumps(kept, sort_keys=True, default=str)


def compare_rows(baseline: Path, batched: Path) -> dict[str, Any]:
    """Whether two sweeps wrote the same calibration, truth and decision rows.

    Rows are compared as multisets of exact values (every column, floats bitwise through their
    ``repr``), per kind; ``differing`` counts the rows of either side that the other lacks.
    """
    from sweeps.shards import read_records

    out: dict[str, Any] = {}
    for kind in COMPARED_KINDS:
        a = collections.Counter(_canonical(r) for r in read_records(baseline, kinds=[kind]).to_dict("records"))
        b = collections.Counter(_canonical(r) for r in read_records(batched, kinds=[kind]).to_dict("records"))
        out[kind] = {"rows": sum(a.values()), "rows_batched": sum(b.values()),
                     "differing": sum((a - b).values()) + sum((b - a).values())}
    out["identical"] = all(v["differing"] == 0 and v["rows"] == v["rows_batched"] for v in out.values())
    return out


# --------------------------------------------------------------------------- driver


def _machine() -> dict[str, Any]:
    gpu = ""
    if shutil.which("nvidia-smi"):
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            gpu = ""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "gpu": gpu or None, "load_avg_1m": os.getloadavg()[0]}


def print_table(report: dict[str, Any]) -> None:
    print("\n| batch_size | tasks | wall s | tasks/h e2e | tasks/h steady | task s (mean) | compiles | peak RSS/actor MiB | GPU MiB/actor | rows = B1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        same = report["comparisons"].get(str(r["batch_size"]), {}).get("identical", "-" if r["batch_size"] == 1 else "?")

        def f(v: Any, d: int = 1) -> str:
            return "-" if v is None else f"{v:.{d}f}"

        print(f"| {r['batch_size']} | {r['tasks']} | {f(r['wall_s'])} | {f(r['tasks_per_hour_e2e'], 0)} | "
              f"{f(r['tasks_per_hour_steady'], 0)} | {f(r['task_seconds_mean'], 2)} | {r['compiles_total']} | "
              f"{', '.join(f'{v:.0f}' for v in r['actor_peak_rss_mib']) or '-'} | "
              f"{', '.join(f'{v:.0f}' for v in r['actor_gpu_mib']) or '-'} | {same} |")


def speedups(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each batched run's steady and end-to-end rate over the ``batch_size: 1`` run's."""
    base = next((r for r in runs if r["batch_size"] == 1), None)
    out = {}
    for r in runs:
        if base is None or r["batch_size"] == 1:
            continue
        out[str(r["batch_size"])] = {
            key: (r[key] / base[key] if r[key] and base[key] else None)
            for key in ("tasks_per_hour_steady", "tasks_per_hour_e2e")
        }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="toy BCF, 250 visitors x 2 rounds, 4 replications, B = 2: a CPU smoke run")
    ap.add_argument("--templates", nargs="+", default=["clustered_realistic"], help="DGP templates (default %(default)s)")
    ap.add_argument("--template-params", type=json.loads, default={"conversion_scale": 8.0},
                    help="JSON parameters of every template (default: '{\"conversion_scale\": 8.0}', every arm converts)")
    ap.add_argument("--n", type=int, default=1000, help="visitors per round (fixed schedule; default %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per experiment (default %(default)s)")
    ap.add_argument("--replications", type=int, default=16, help="tasks per template (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, nargs="+", default=[8], help="batch sizes B run after batch_size 1 (default %(default)s)")
    ap.add_argument("--bcf", type=json.loads, default=None, help="JSON GPUBCFConfig fields (default: the library default GPUBCFConfig())")
    ap.add_argument("--families", nargs="+", default=["cate", "ate", "gate", "conversion_effect", "severity_effect"])
    ap.add_argument("--skip-analysis", nargs="*", default=[], metavar="STEP",
                    help="experiment.skip_analysis steps (stability, policy_value); default none")
    ap.add_argument("--actors", type=int, default=1, help="actors (default %(default)s)")
    ap.add_argument("--gpus-per-actor", type=float, default=0.0, help="actors.num_gpus (default 0: CPU actors)")
    ap.add_argument("--cpus-per-actor", type=float, default=1.0, help="actors.num_cpus (default %(default)s)")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded Ray, as pytyche-sweep run takes it (default: all)")
    ap.add_argument("--num-gpus", type=float, default=None, help="GPUs of the embedded Ray, as pytyche-sweep run takes it (default: detected)")
    ap.add_argument("--jax-cache", default="off", help="PYTYCHE_JAX_CACHE of the actors (default off: every run compiles)")
    ap.add_argument("--no-preallocate", action="store_true", help="XLA_PYTHON_CLIENT_PREALLOCATE=false in the actors, so GPU memory per actor is what it uses")
    ap.add_argument("--json", default=None, help="write the report here (rewritten after each run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.replications, args.batch = 250, 2, 4, [2]
        args.bcf = QUICK_BCF if args.bcf is None else args.bcf
    args.bcf = {} if args.bcf is None else args.bcf
    if any(b < 2 for b in args.batch):
        ap.error(f"The '--batch' option takes batch sizes >= 2 (batch_size 1 always runs first). Got {args.batch} instead.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # the actors are children of the Ray each run starts here, so they inherit these
    os.environ["PYTYCHE_JAX_CACHE"] = args.jax_cache
    if args.no_preallocate:
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    report: dict[str, Any] = {
        "machine": _machine(),
        "command": " ".join(["python bench/bench_lockstep.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "config": "quick" if args.quick else ("default GPUBCFConfig()" if not args.bcf else args.bcf),
        "workload": {"templates": args.templates, "template_params": args.template_params, "per_round": args.n,
                     "rounds": args.rounds, "replications": args.replications, "seed": args.seed,
                     "skip_analysis": args.skip_analysis, "actors": args.actors, "gpus_per_actor": args.gpus_per_actor,
                     "cpus_per_actor": args.cpus_per_actor, "jax_cache": args.jax_cache, "preallocate": not args.no_preallocate},
        "runs": [],
        "comparisons": {},
    }

    def save() -> None:
        report["speedup"] = speedups(report["runs"])
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench_lockstep_") as tmp:
        dirs = {b: Path(tmp) / f"b{b}" for b in [1, *args.batch]}
        for b, out_dir in dirs.items():
            run = run_once(args, b, out_dir)
            report["runs"].append(run)
            if b > 1:
                report["comparisons"][str(b)] = compare_rows(dirs[1], out_dir)
            print(json.dumps({**run, "rows_identical": report["comparisons"].get(str(b), {}).get("identical")}), flush=True)
            save()
    print_table(report)
    ok = all(r["complete"] for r in report["runs"]) and all(c["identical"] for c in report["comparisons"].values())
    print("rows identical across batch sizes:", all(c["identical"] for c in report["comparisons"].values()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
