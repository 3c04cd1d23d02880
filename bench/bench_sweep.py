#!/usr/bin/env python
"""Sweep throughput: tasks per minute with 1 and with 2 actors on this machine.

Workload: ``experiments/tiny_sweep.yaml`` (the real task runner: a full 2-round sequential
experiment on clustered_realistic per task, toy BCF) with ``--replications`` tasks, run by
:func:`sweeps.driver.run_sweep` on an embedded local Ray with CPU actors, no MLflow, no progress
bar. Every configuration starts fresh actors in a fresh output directory. Before timing, one
warm-up task fills JAX's persistent compilation cache (``.jax_cache/``, as the tests use), so
both configurations load rather than compile the BCF programs.

Reported per actor count:

- ``wall``: seconds of the whole ``run_sweep`` call (actor start, program loading, all tasks);
- ``tasks/min (end to end)``: tasks / wall;
- ``all warm at s``: when the last actor finished its first task (the one that loaded the
  compiled BCF programs into it);
- ``tasks/min (steady)``: tasks finished after that moment / the time they took: the rate once
  every actor is warm.

Usage::

    .venv/bin/python bench/bench_sweep.py                 # 1 and 2 actors, 12 tasks, writes bench/RESULTS.md
    .venv/bin/python bench/bench_sweep.py --replications 6 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

START = "<!-- bench_sweep:start -->"
END = "<!-- bench_sweep:end -->"


def run_config(spec, n_actors: int, out: Path) -> dict:
    from sweeps.driver import run_sweep

    s = spec.replace(actors={**spec.actors.to_dict(), "count": n_actors}, output_dir=str(out))
    report = run_sweep(s, tracking=False, progress=False)
    if not report.complete:
        raise RuntimeError(f"sweep incomplete: {report.failures}")
    # an actor's first task is the one that compiled (loaded) the BCF programs: compiles > 0
    first = [t for t, c in zip(report.finish_times, report.compiles) if c > 0]
    warm_start = max(first) if first else 0.0
    after = [t for t in report.finish_times if t > warm_start]
    steady = 60.0 * len(after) / (report.finish_times[-1] - warm_start) if len(after) >= 2 else float("nan")
    return {
        "actors": n_actors,
        "tasks": report.n_completed,
        "wall": report.seconds,
        "e2e": report.tasks_per_minute,
        "warm_at": warm_start,
        "n_steady": len(after),
        "steady": steady,
    }


def machine() -> str:
    import jax
    import ray

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{os.cpu_count()} CPU cores ({cpu}){mem}, no GPU; Python {platform.python_version()}, "
            f"JAX {jax.__version__} ({jax.default_backend()}), Ray {ray.__version__}")


def write_section(text: str, path: Path) -> None:
    body = f"{START}\n{text.rstrip()}\n{END}\n"
    if path.is_file():
        old = path.read_text()
        if START in old and END in old:
            new = old[: old.index(START)] + body + old[old.index(END) + len(END) + 1 :]
        else:
            new = old.rstrip() + "\n\n" + body
    else:
        new = "# Benchmark results\n\n" + body
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=12, help="tasks per configuration (default %(default)s)")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor counts (default 1 2)")
    ap.add_argument("--spec", default=str(ROOT / "experiments" / "tiny_sweep.yaml"))
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--actor-env", action="append", default=[], metavar="KEY=VALUE", help="environment variable of the actors (repeatable)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)

    import ray

    from sweeps.driver import run_sweep
    from sweeps.spec import load_spec

    env = dict(kv.split("=", 1) for kv in args.actor_env)
    spec = load_spec(args.spec).replace(replications=args.replications, seed=0)
    if env:
        spec = spec.replace(actors={**spec.actors.to_dict(), "env": env})
    load = os.getloadavg()[0]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            warm = spec.replace(replications=1, seed=10_000, actors={**spec.actors.to_dict(), "count": 1}, output_dir=f"{tmp}/warmup")
            run_sweep(warm, tracking=False, progress=False)
            print(f"warm-up (persistent cache fill): {time.perf_counter() - t0:.1f} s", flush=True)
            for n in args.actors:
                row = run_config(spec, n, Path(tmp) / f"a{n}")
                rows.append(row)
                print(row, flush=True)
    finally:
        ray.shutdown()

    cmd = " ".join([".venv/bin/python bench/bench_sweep.py", *(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))]).strip()
    lines = [
        "## Sweep throughput (bench/bench_sweep.py)",
        "",
        f"Machine: {machine()}.",
        f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}).",
        f"Workload: `{Path(args.spec).relative_to(ROOT) if Path(args.spec).is_relative_to(ROOT) else args.spec}` with "
        f"{args.replications} tasks (real `run_task`: 2-round sequential experiment on clustered_realistic, 250 visitors "
        "per round, toy BCF: 10/5 trees, 20 burn-in + 20 draws, 1 chain); embedded local Ray, CPU actors, "
        "MLflow off, JAX persistent cache warm" + (f", actor env {env}." if env else "."),
        "",
        "| actors | tasks | wall s | tasks/min (end to end) | all actors warm at s | tasks after that | tasks/min (steady) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['actors']} | {r['tasks']} | {r['wall']:.1f} | {r['e2e']:.1f} | {r['warm_at']:.1f} | {r['n_steady']} | {r['steady']:.1f} |"
        )
    lines += [
        "",
        "End to end includes starting the actors and loading the compiled BCF programs into each (the "
        "first task of an actor); steady is the rate once every actor is warm. Load average when the run "
        f"started: {load:.1f} (other jobs shared the machine; numbers from a busier machine are lower and noisier).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, Path(args.results))
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
