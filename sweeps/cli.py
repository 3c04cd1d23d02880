"""``pytyche-sweep``: run, resume, aggregate, report and tune sweeps from the command line.

::

    pytyche-sweep run experiments/tiny_sweep.yaml                  # embedded local Ray
    pytyche-sweep run SPEC --address auto                          # attach to a cluster (ray up cluster.yaml)
    pytyche-sweep resume SPEC                                      # same as run: finished tasks are skipped
    pytyche-sweep aggregate OUT [--metric revenue_per_visitor --n-treatments 3 --pooling joint] [--artifact PATH]
                                                                   # R(p), artifact, decision error rates
    pytyche-sweep regret OUT
    pytyche-sweep tune SPEC --trials 20
    pytyche-sweep validate ARTIFACT SPEC [--write]                 # held-out raw vs calibrated coverage

``OUT`` is a sweep's output directory (the spec's ``output_dir`` unless ``--out`` was given).
``resume`` also accepts ``OUT`` (it reads ``OUT/spec.yaml``). Exit status: 0 when the sweep is
complete, 1 when tasks failed, 3 when it stopped early (``--max-tasks``), 2 for bad input, 130
when interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "resolve_runner"]


def resolve_runner(text: str | None) -> Any:
    """``"package.module:function"`` -> the function (``None`` -> the default runner)."""
    if text is None:
        return None
    module, sep, name = text.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"The '--runner' option must look like 'package.module:function'. Got {text!r} instead.")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"The '--runner' option names no callable: {text!r}.")
    return fn


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec YAML (for resume: the spec or a sweep output directory)")
    p.add_argument("--address", default=None, help="Ray cluster to attach to ('auto', 'host:6379', 'ray://host:10001'); default: embedded local Ray")
    p.add_argument("--out", default=None, help="output directory (default: the spec's output_dir)")
    p.add_argument("--max-tasks", type=int, default=None, help="stop after this many tasks finish (rerun to continue)")
    p.add_argument("--runner", default=None, help="task runner 'module:function' (default sweeps.task:run_task)")
    p.add_argument("--actors", type=int, default=None, help="override the spec's actors.count")
    p.add_argument("--gpus-per-actor", type=float, default=None, help="override the spec's actors.num_gpus (0 = CPU actors)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray (default: all)")
    p.add_argument("--num-gpus", type=float, default=None, help="GPUs of the embedded local Ray (default: detected)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pytyche-sweep", description="Coverage and regret sweeps of pytyche on Ray.")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_run_args(sub.add_parser("run", help="run a sweep (skips finished tasks)"))
    _add_run_args(sub.add_parser("resume", help="resume a sweep (same as run)"))

    a = sub.add_parser("aggregate", help="R(p) curves, plots, the calibration artifact and the decision error rates of a sweep")
    a.add_argument("out", help="sweep output directory")
    a.add_argument("--metric", default=None, help="regime metric (e.g. revenue_per_visitor)")
    a.add_argument("--n-treatments", type=int, default=None, help="regime K (control included)")
    a.add_argument("--pooling", default=None, choices=("joint", "independent", "none"), help="regime pooling")
    a.add_argument("--artifact", default=None, help="artifact JSON path (default OUT/calibration_<regime>.json)")
    a.add_argument("--min-units", type=int, default=None, help="units a layer needs to be used")
    a.add_argument("--no-fit", action="store_true", help="curves and plots only")
    a.add_argument("--require-clean", action="store_true", help="refuse to fit unless the code is a clean git commit (for artifacts that ship)")
    from pytyche.calibrate.correction import METRIC_FAMILIES

    a.add_argument("--metric-family", default=None, choices=METRIC_FAMILIES,
                   help="the outcome family the artifact serves: it then applies to every metric of that family (default: only --metric)")
    a.add_argument("--beyond-data", default=None, choices=("nearest", "pooled"), help="what serves sample-size bands without data (default nearest)")
    a.add_argument("--no-tracking", action="store_true")
    a.add_argument("--tracking-uri", default=None)

    v = sub.add_parser("validate", help="held-out sweep with an artifact on-path: raw vs calibrated coverage per family and level")
    v.add_argument("artifact", help="artifact JSON (or registry name)")
    v.add_argument("spec", help="held-out sweep spec YAML (its BCF settings must be the artifact's MCMC regime)")
    v.add_argument("--out", default=None, help="output directory (default: the spec's output_dir)")
    v.add_argument("--write", action="store_true", help="write the summary into the artifact's provenance['validation']")
    v.add_argument("--no-run", action="store_true", help="summarise the shards already there without running")
    v.add_argument("--address", default=None)
    v.add_argument("--runner", default=None)
    v.add_argument("--max-tasks", type=int, default=None)
    v.add_argument("--no-progress", action="store_true")
    v.add_argument("--no-tracking", action="store_true")
    v.add_argument("--tracking-uri", default=None)

    r = sub.add_parser("regret", help="regret benchmark report (Markdown + PNG) of a sweep")
    r.add_argument("out", help="sweep output directory")
    r.add_argument("--no-tracking", action="store_true")
    r.add_argument("--tracking-uri", default=None)

    t = sub.add_parser("tune", help="Optuna search over BCF settings (objective in sweeps.tune)")
    t.add_argument("spec", help="base sweep spec YAML")
    t.add_argument("--trials", type=int, required=True, help="trials to run")
    t.add_argument("--storage", default=None, help="Optuna RDB storage URL (default sqlite:///OUT/optuna.db)")
    t.add_argument("--study", default=None, help="study name (default <spec name>-tune)")
    t.add_argument("--level", type=float, default=0.9, help="nominal level of the coverage term")
    t.add_argument("--family", default="cate", help="quantity family of the coverage term")
    t.add_argument("--lam", type=float, default=0.02, help="weight of the compute term, per minute per task")
    t.add_argument("--address", default=None)
    t.add_argument("--out", default=None)
    t.add_argument("--runner", default=None)
    return ap


def _spec_arg(text: str, out: str | None) -> Any:
    from sweeps.spec import load_spec

    p = Path(text)
    if p.is_dir():
        return load_spec(p / "spec.yaml", output_dir=out or str(p))
    return load_spec(p, output_dir=out)


def _cmd_run(args: argparse.Namespace) -> int:
    from sweeps.driver import run_sweep

    spec = _spec_arg(args.spec, args.out)
    actors = spec.actors.to_dict()
    if args.actors is not None:
        actors["count"] = args.actors
    if args.gpus_per_actor is not None:
        actors["num_gpus"] = args.gpus_per_actor
    if actors != spec.actors.to_dict():
        spec = spec.replace(actors=actors)
    ray_init = {k: v for k, v in (("num_cpus", args.num_cpus), ("num_gpus", args.num_gpus)) if v is not None}
    runner = resolve_runner(args.runner)
    # Ray starts inside run_sweep, only when a task is left; the SIGTERM handler goes back on
    # after ray.init, which installs its own (aborting) one
    report = run_sweep(
        spec,
        address=args.address,
        runner=runner,
        max_tasks=args.max_tasks,
        progress=not args.no_progress,
        tracking=not args.no_tracking,
        tracking_uri=args.tracking_uri,
        ray_init=ray_init,
        after_connect=_handle_sigterm,
    )
    for tid, why in report.corrupt:
        print(f"  redone {tid}: {why}", file=sys.stderr)
    print(
        f"{report.name}: {report.n_completed} tasks finished now, {report.n_skipped} already done, "
        f"{len(report.corrupt)} with bad shards redone, "
        f"{report.n_failed} failed, {len(report.refused)} refused by the model, of {report.n_tasks} "
        f"({report.tasks_per_minute:.2f} tasks/min); "
        f"shards in {report.output_dir / 'records'}"
    )
    for tid, err in report.failures:
        print(f"  failed {tid}: {err.splitlines()[0] if err else ''}", file=sys.stderr)
    for tid, why in report.refused:
        print(f"  refused {tid}: {why}", file=sys.stderr)
    if report.complete:
        return 0
    return 1 if report.failures else 3


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from sweeps.aggregate import aggregate

    kw = {} if args.min_units is None else {"min_units": args.min_units}
    if args.beyond_data is not None:
        kw["beyond_data"] = args.beyond_data
    if args.metric_family is not None:
        kw["metric_family"] = args.metric_family
    res = aggregate(
        args.out, metric=args.metric, n_treatments=args.n_treatments, pooling=args.pooling,
        artifact=args.artifact, fit=not args.no_fit, tracking=not args.no_tracking, tracking_uri=args.tracking_uri,
        require_clean=args.require_clean, **kw,
    )
    if len(res.curves):
        print(res.curves.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print("no coverage records")
    print(f"curves: {res.curves_csv}")
    if res.decision_rates_json is not None:
        from sweeps.decision_rates import format_rates

        print(format_rates(res.decision_rates))
        print(f"decision rates: {res.decision_rates_json}")
    for p in res.plots:
        print(f"plot: {p}")
    if res.artifact is not None:
        print(f"artifact: {res.artifact}  (load with pt.Calibration.from_sweep({str(res.artifact)!r}))")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from sweeps.driver import connect_ray
    from sweeps.validate import format_table, validate

    spec = _spec_arg(args.spec, args.out)
    started = False if args.no_run else connect_ray(args.address)
    _handle_sigterm()
    try:
        res = validate(
            args.artifact, spec, write=args.write, run=not args.no_run, address=args.address,
            runner=resolve_runner(args.runner), tracking=not args.no_tracking, tracking_uri=args.tracking_uri,
            progress=not args.no_progress, max_tasks=args.max_tasks,
        )
    finally:
        if started:
            import ray

            ray.shutdown()
    s = res.summary
    print(f"{s['artifact']} on held-out {', '.join(s['templates'])}: {s['n_datasets']} datasets, n {s['sample_sizes'][0]}..{s['sample_sizes'][1]}; {s['ci']}")
    print(format_table(res.table))
    print(f"summary: {res.summary_path}\nplot: {res.plot_path}\nper dataset: {res.per_dataset_path}")
    if res.artifact_written:
        print(f"wrote provenance['validation'] into {args.artifact}")
    if res.report is not None and not res.report.complete:
        return 1 if res.report.failures else 3
    return 0


def _cmd_regret(args: argparse.Namespace) -> int:
    from sweeps.regret import write_regret_report

    rep = write_regret_report(args.out, tracking=not args.no_tracking, tracking_uri=args.tracking_uri)
    print(rep.markdown.read_text())
    for p in rep.plots:
        print(f"plot: {p}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    import ray

    from sweeps.driver import connect_ray
    from sweeps.tune import tune

    spec = _spec_arg(args.spec, args.out)
    runner = resolve_runner(args.runner)
    started = connect_ray(args.address)
    _handle_sigterm()
    try:
        study = tune(
            spec, n_trials=args.trials, storage=args.storage, study_name=args.study,
            level=args.level, family=args.family, lam=args.lam, address=args.address, runner=runner,
        )
    finally:
        if started:
            ray.shutdown()
    done = [t for t in study.trials if t.value is not None]
    if not done:
        print("no trial finished", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"study {study.study_name}: {len(done)} finished trials; best #{best.number}: J={best.value:.4f} {best.params} "
          f"coverage={best.user_attrs.get('coverage')} task_seconds={best.user_attrs.get('task_seconds')}")
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _handle_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt (main thread only; :func:`main` restores the old one)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pytyche-sweep`` console script.

    SIGTERM (a cancelled job, ``kill``) is handled like Ctrl-C: the driver stops its actors,
    marks the MLflow run KILLED and exits with status 130; finished shards stay for ``resume``.
    """
    args = build_parser().parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    _handle_sigterm()
    handlers = {"run": _cmd_run, "resume": _cmd_run, "aggregate": _cmd_aggregate, "regret": _cmd_regret, "tune": _cmd_tune,
                "validate": _cmd_validate}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"pytyche-sweep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pytyche-sweep {args.command}: interrupted; finished tasks are kept (rerun to resume)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
