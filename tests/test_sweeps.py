"""The Ray sweep framework: spec, actors, pool, driver (resume, actor death), shards, MLflow,
aggregation into a calibration artifact, regret report, tuning and the CLI.

A real Ray instance is started once for the module (2 logical CPUs worth of actors at a time is
enough; one fake GPU for the scheduling test) and a real MLflow SQLite store in a temporary
directory. Most sweeps use the planted-coverage runner of :mod:`sweeps.synthetic` (milliseconds
per task, known answer); one runs the real :func:`sweeps.task.run_task` on a tiny BCF.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest

from sweeps.shards import finished_ids, read_records, shard_path
from sweeps.spec import parse_spec
from sweeps.synthetic import planted_coverage, run_synthetic_task
from tests import _specs
from tests._ray import local_ray
from tests._specs import minimal_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy, inside MLflow

LEVELS = [0.5, 0.8, 0.9, 0.95]
FAMILIES = ["cate", "ate"]
N_ROUNDS = 2


@pytest.fixture(scope="module")
def ray_cluster():
    # the runners below live in this test module, which workers cannot import by name
    with local_ray(__name__, num_cpus=4, num_gpus=1) as ray:
        yield ray


synthetic_spec = partial(_specs.synthetic_spec, levels=LEVELS, families=FAMILIES, n_rounds=N_ROUNDS, name="synth")


def assert_exactly_once(out, spec):
    """Every task of the grid has its shard and its rows exactly once."""
    tasks, frame, counts = _specs.assert_counts_once(out, spec, calibration_rows=N_ROUNDS * len(FAMILIES) * len(LEVELS), n_rounds=N_ROUNDS)
    assert set(counts.index) == {t.task_id for t in tasks}
    cal = frame[frame["kind"] == "calibration"]
    assert not cal.duplicated(["task_id", "round_idx", "family", "nominal"]).any()


# ---- spec ------------------------------------------------------------------------------------

GOOD = minimal_spec("synthetic")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": "bad name!"}, "'name'"),
        ({"templates": []}, "'templates'"),
        ({"templates": [{"name": "synthetic", "params": {"seed": 3}}]}, "'templates[0].params.seed'"),
        ({"templates": [{"name": "synthetic", "grid": {"a": []}}]}, "'templates[0].grid.a'"),
        ({"replications": 0}, "'replications'"),
        ({"seeds": [1, 2]}, "'seeds'"),  # together with replications
        ({"schedule": {"kind": "weekly", "args": {}}}, "'schedule.kind'"),
        ({"schedule": {"kind": "fixed", "args": {"per_round": 100}}}, "'schedule.args'"),
        ({"schedule": {"kind": "explicit", "args": {"sizes": [100, 0]}}}, "'schedule.args.sizes'"),
        ({"bcf": {"num_trees_tau": 0}}, "'bcf'"),
        ({"bcf": {"num_treez": 5}}, "'bcf'"),
        ({"bcf_grid": {"num_trees_tau": [10, -1]}}, "'bcf_grid'"),
        ({"levels": [0.5, 1.0]}, "'levels'"),
        ({"families": ["cate", "segments"]}, "'families'"),
        ({"treatments": ["control"]}, "'treatments'"),
        ({"calibration": True}, "'calibration'"),
        ({"experiment": {"seed": 3}}, "'experiment'"),
        ({"actors": {"count": 0}}, "'actors.count'"),
        ({"actors": {"num_gpus": 1.5}}, "'actors.num_gpus'"),
        ({"actors": {"memory_fraction": 1.2}}, "'actors.memory_fraction'"),
        ({"actors": {"gpus": 1}}, "'actors'"),
        ({"actors": {"env": {"A": ["x"]}}}, "'actors.env'"),
        ({"outputdir": "x"}, "'outputdir'"),
    ],
)
def test_spec_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match="must be|not a valid") as err:
        parse_spec({**GOOD, **change})
    assert field in str(err.value)


@pytest.mark.parametrize("statement", ["from sweeps.spec_yaml import load_spec", "from sweeps.spec import load_spec, parse_spec"])
def test_the_spec_reader_imports_first_in_a_fresh_process(statement):
    """``sweeps.spec`` re-exports the YAML reader: importing either module first works (no circular import)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", f"{statement}; print(load_spec.__module__)"], capture_output=True, text=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sweeps.spec_yaml"


def test_unknown_template_is_named_when_the_default_runner_needs_it():
    spec = parse_spec({**GOOD, "templates": [{"name": "no_such_dgp"}]})
    with pytest.raises(ValueError, match=r"'templates\[0\].name'.*clustered_realistic"):
        spec.check_templates()


def test_task_ids_are_stable_and_cover_what_changes_results(tmp_path):
    import pickle

    a = synthetic_spec(tmp_path / "a", grid={"scale_ratio": [1.0, 2.0]}, bcf={"num_trees_tau": 7})
    b = synthetic_spec(tmp_path / "b", name="renamed", grid={"scale_ratio": [1.0, 2.0]}, bcf={"num_trees_tau": 7}, actors={"count": 5})
    ta, tb = a.tasks(), b.tasks()
    assert len(ta) == 2 * 3
    # name, actors and output dir do not change ids; the canonical JSON does
    assert [t.task_id for t in ta] == [t.task_id for t in tb]
    assert len({t.task_id for t in ta}) == len(ta)
    assert len({t.cell_id for t in ta}) == 2
    t = ta[0]
    assert pickle.loads(pickle.dumps(t)) == t and pickle.loads(pickle.dumps(t)).task_id == t.task_id
    c = synthetic_spec(tmp_path / "a", grid={"scale_ratio": [1.0, 2.0]}, bcf={"num_trees_tau": 8})
    assert not {x.task_id for x in c.tasks()} & {x.task_id for x in ta}
    assert parse_spec(a.to_dict()) == a  # spec.yaml round trip


# ---- end to end ------------------------------------------------------------------------------


def test_tiny_sweep_end_to_end(ray_cluster, tmp_path, mlflow_uri):
    """Synthetic sweep -> shards -> MLflow -> R(p) -> artifact that Calibration.from_sweep loads
    with the planted width multiplier -> regret report."""
    from mlflow.tracking import MlflowClient

    import pytyche as pt
    from sweeps.aggregate import aggregate
    from sweeps.driver import run_sweep
    from sweeps.regret import write_regret_report

    r = 1.6
    out = tmp_path / "sweep"
    # K=2 cell (the regime we fit) next to a K=3 cell (another regime, ignored by the fit)
    spec = synthetic_spec(out, replications=6, grid={"n_treatments": [2, 3]}, params={"scale_ratio": r, "n_targets": 200})
    report = run_sweep(spec, runner=run_synthetic_task, tracking_uri=mlflow_uri, progress=False)
    assert report.complete and report.n_completed == 12 and report.n_failed == 0 and report.n_skipped == 0
    assert_exactly_once(out, spec)
    assert not list((out / "records").glob(".*.tmp"))

    # MLflow: one parent run with the spec, one child run per grid cell with per-round metrics
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(report.mlflow_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["name"] == "synth"
    assert parent.data.metrics["tasks_done"] == 12
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    hist = client.get_metric_history(children[0].info.run_id, "coverage_cate_90")
    assert sorted(m.step for m in hist) == list(range(N_ROUNDS))
    assert all(0.6 < m.value < 0.8 for m in hist)  # planted R(0.9) = 0.696 at r = 1.6

    # aggregation: curves per regime and the K=2 artifact
    res = aggregate(out, n_treatments=2, tracking_uri=mlflow_uri)
    assert {(m, k, p) for m, k, p in res.curves[["metric", "n_treatments", "pooling"]].itertuples(index=False)} == {
        ("revenue_per_visitor", 2, "joint"), ("revenue_per_visitor", 3, "joint")
    }
    cal = pt.Calibration.from_sweep(str(res.artifact))
    assert (cal.metric, cal.n_treatments, cal.pooling) == ("revenue_per_visitor", 2, "joint")
    prov = cal.provenance
    assert prov["spec"]["content"]["name"] == "synth" and prov["counts"]["tasks_finished"] == 12
    assert "commit" in prov and "date" in prov
    # The planted model has R(p) = 2 Phi(z(p)/r) - 1, so the correction must widen by r. At the
    # level q = R(0.9) the multiplier is z(0.9) / z(R_hat(0.9)); R_hat pools 6 reps x 2 rounds x
    # 200 targets = 2400 Bernoulli draws, so sd(R_hat) = sqrt(R(1-R)/2400) and, by the delta
    # method, sd(w) = w * sd(R_hat) * dz/dR / z(R) with dz/dR = 1 / (2 phi(z(R))).
    from scipy.stats import norm

    big_r = float(planted_coverage(0.9, r))
    z = norm.ppf((1 + big_r) / 2)
    sd_w = r * np.sqrt(big_r * (1 - big_r) / 2400) / (2 * norm.pdf(z)) / z
    for fam in FAMILIES:
        w = cal.correction.multiplier(big_r, fam, 150)
        assert abs(w - r) < 4 * sd_w, (fam, w, r, sd_w)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in res.plots)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "aggregate")}
    assert f"aggregate/{res.artifact.name}" in arts

    # regret report: the planted policy closes 1 - 0.5^(t+1) of the uniform-to-oracle gap
    rep = write_regret_report(out, tracking_uri=mlflow_uri)
    k2 = rep.table[rep.table["dgp"].str.contains("n_treatments=2")].sort_values("round_idx")
    np.testing.assert_allclose(k2["gap_closed_mean"], [0.5, 0.75])
    np.testing.assert_allclose(k2["oracle_gap_rpv_mean"], [0.1, 0.05])
    text = rep.markdown.read_text()
    assert text.count("## synthetic") == 2 and "| round |" in text
    assert len(rep.plots) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in rep.plots)


def crash_once_runner(task):
    """Kill the worker process on the first attempt of the marked task (seed 1)."""
    marker = pathlib.Path(task.params_dict["marker_dir"]) / f"crashed-{task.task_id}"
    if task.seed == 1 and not marker.exists():
        marker.touch()
        time.sleep(0.2)
        os._exit(1)
    return run_synthetic_task(task)


@pytest.mark.parametrize(
    "actors, replaced",
    [
        ({"count": 2, "max_restarts": 2, "max_task_retries": 1}, 0),  # Ray restarts the actor and retries the call
        ({"count": 2, "max_restarts": 0, "max_task_retries": 0, "max_attempts": 2}, 1),  # the pool replaces it
    ],
    ids=["ray-retries", "pool-resubmits"],
)
def test_actor_killed_mid_task(ray_cluster, tmp_path, actors, replaced):
    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=4, actors=actors, params={"marker_dir": str(tmp_path)})
    report = run_sweep(spec, runner=crash_once_runner, tracking=False, progress=False)
    assert list(tmp_path.glob("crashed-*")), "the marked task must have crashed its worker"
    assert report.complete and report.n_failed == 0 and report.n_completed == 4
    assert report.n_replaced == replaced and report.n_resubmitted == replaced
    assert_exactly_once(out, spec)


def test_driver_stopped_then_rerun_skips_finished_tasks(ray_cluster, tmp_path):
    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=5)
    first = run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False, max_tasks=2)
    assert not first.complete and first.n_completed == 2
    done = finished_ids(out)
    assert len(done) == 2
    stamps = {i: shard_path(out, i).stat().st_mtime_ns for i in done}
    stale = out / "records" / ".deadbeef.parquet.x1y2.tmp"  # what a writer killed mid-write leaves
    stale.write_bytes(b"PAR1 half a file")
    second = run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False)
    assert second.complete and second.n_skipped == 2 and second.n_completed == 3
    assert {i: shard_path(out, i).stat().st_mtime_ns for i in done} == stamps  # not rewritten
    assert not stale.exists()
    assert_exactly_once(out, spec)


def test_killed_driver_process_leaves_no_partial_shard(ray_cluster, tmp_path):
    """SIGKILL a `pytyche-sweep run` attached to this cluster mid-sweep; every file left is a
    whole shard, and a rerun finishes the rest exactly once."""
    import pyarrow.parquet as pq

    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=8, params={"sleep_s": 0.4})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "sweeps.cli", "run", str(spec_file), "--address", address,
           "--runner", "sweeps.synthetic:run_synthetic_task", "--no-tracking", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while len(finished_ids(out)) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    n_before = len(finished_ids(out))
    assert 2 <= n_before < 8, n_before
    for p in (out / "records").iterdir():
        if not p.name.startswith("."):
            pq.read_table(p)  # a whole file
    report = run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False)
    assert report.complete and report.n_skipped == n_before and report.n_completed == 8 - n_before
    assert_exactly_once(out, spec)


def test_fractional_gpu_actors_pack_two_per_fake_gpu(ray_cluster):
    """Actors asking num_gpus=0.5 (with a memory fraction) share the one fake GPU two at a time."""
    import ray

    from sweeps.actor import create_worker
    from sweeps.spec import ActorSpec

    layout = ActorSpec(count=3, num_gpus=0.5, num_cpus=0, memory_fraction=0.45, env=(("XLA_PYTHON_CLIENT_PREALLOCATE", "false"),))
    workers = [create_worker(layout, run_synthetic_task) for _ in range(3)]
    try:
        refs = [w.info.remote() for w in workers]
        ready, pending = ray.wait(refs, num_returns=2, timeout=60)
        assert len(ready) == 2
        assert ray.wait(pending, timeout=3)[0] == [], "two actors fill the GPU, the third waits"
        assert ray.available_resources().get("GPU", 0) == 0
        infos = ray.get(ready)
        assert all(i["gpu_ids"] == [0] for i in infos)
        assert all(i["xla_mem_fraction"] == "0.45" for i in infos)
        assert len({i["pid"] for i in infos}) == 2
        assert ray.get(workers[refs.index(ready[0])].getenv.remote("XLA_PYTHON_CLIENT_PREALLOCATE")) == "false"
        ray.kill(workers[refs.index(ready[0])])
        assert ray.get(pending[0], timeout=30)["gpu_ids"] == [0]  # the freed half goes to the third
    finally:
        for w in workers:
            ray.kill(w)


def test_unplaceable_actor_layout_is_an_error_on_a_fixed_cluster(ray_cluster, tmp_path):
    from sweeps.driver import check_resources

    check_resources(synthetic_spec(tmp_path, actors={"num_gpus": 1}), fixed=True)  # the one fake GPU
    with pytest.raises(ValueError, match="'actors.num_gpus'.*has 1 GPU"):
        check_resources(synthetic_spec(tmp_path, actors={"num_gpus": 2}), fixed=True)
    check_resources(synthetic_spec(tmp_path, actors={"num_gpus": 2}), fixed=False)  # autoscaler may add


def test_compile_count_stays_flat_after_first_task(ray_cluster, tmp_path):
    """One warm actor: the first task compiles, later tasks at the same shapes do not, a task at a
    new shape compiles again."""
    import ray

    from sweeps.actor import create_worker
    from sweeps.spec import ActorSpec

    spec = synthetic_spec(tmp_path, replications=3, grid={"n_targets": [64, 96]})
    same, other = spec.tasks()[:3], spec.tasks()[3]
    w = create_worker(ActorSpec(count=1), run_synthetic_task)
    try:
        compiles = [ray.get(w.run.remote(t)).compiles for t in same]
        assert compiles[0] > 0 and compiles[1:] == [0, 0]
        new_shape = ray.get(w.run.remote(other)).compiles
        assert new_shape > 0
        assert ray.get(w.compile_count.remote()) == compiles[0] + new_shape
        assert ray.get(w.info.remote())["tasks_done"] == 4
    finally:
        ray.kill(w)


def test_failing_task_is_reported_and_retried_on_rerun(ray_cluster, tmp_path):
    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    bad = synthetic_spec(out, replications=2, grid={"scale_ratio": [1.5, -1.0]})
    report = run_sweep(bad, runner=run_synthetic_task, tracking=False, progress=False)
    assert not report.complete and report.n_completed == 2 and report.n_failed == 2
    assert all("scale_ratio" in err for _, err in report.failures)
    assert len(list((out / "failures").glob("*.txt"))) == 2
    again = run_sweep(bad, runner=run_synthetic_task, tracking=False, progress=False)
    assert again.n_skipped == 2 and again.n_failed == 2  # failed tasks have no shard: retried


def test_cli_run_aggregate_regret(ray_cluster, tmp_path, capsys):
    from sweeps.cli import main

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=5, params={"scale_ratio": 1.3})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    runner = ["--runner", "sweeps.synthetic:run_synthetic_task", "--no-tracking", "--no-progress"]
    assert main(["run", str(spec_file), *runner, "--max-tasks", "2"]) == 3  # stopped early
    assert main(["resume", str(out), *runner]) == 0
    assert "3 tasks finished now, 2 already done" in capsys.readouterr().out
    assert main(["aggregate", str(out), "--no-tracking"]) == 0
    assert (out / "calibration_revenue_per_visitor_K2_joint.json").is_file()
    assert main(["regret", str(out), "--no-tracking"]) == 0
    assert (out / "regret.md").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntemplates: []\n")
    assert main(["run", str(bad), "--no-tracking"]) == 2
    assert "'templates'" in capsys.readouterr().err


def test_tune_runs_trials_on_the_actors_and_resumes_the_study(ray_cluster, tmp_path):
    import optuna

    from sweeps.tune import objective_value, tune

    out = tmp_path / "tune"
    spec = synthetic_spec(out, replications=2, params={"scale_ratio": 1.2})
    space = {"num_trees_tau": ("int", 5, 40)}
    study = tune(spec, n_trials=2, search_space=space, runner=run_synthetic_task)
    assert (out / "optuna.db").is_file()
    assert len(study.trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # the objective is |R(0.9) - 0.9| + lam * t / 60 with R(0.9) planted at 2 Phi(z(0.9)/1.2) - 1
    for t in study.trials:
        assert abs(t.user_attrs["coverage"] - float(planted_coverage(0.9, 1.2))) < 0.05
        assert t.value >= abs(t.user_attrs["coverage"] - 0.9)
    again = tune(spec, n_trials=1, search_space=space, runner=run_synthetic_task)
    assert len(again.trials) == 3  # same RDB storage: the study continues
    frame = read_records(out)
    value, cov, secs = objective_value(frame, level=0.9, family="cate", lam=0.0)
    assert value == pytest.approx(abs(cov - 0.9))
    with pytest.raises(ValueError, match="no 'gate' coverage"):
        objective_value(frame, family="gate")


# ---- the real task runner --------------------------------------------------------------------


def test_real_run_task_on_tiny_sweep(ray_cluster, tmp_path):
    """The default runner end to end: clustered_realistic, a full 2-round sequential experiment
    per task on a toy BCF in one warm actor (the second task compiles nothing)."""
    from sweeps.driver import run_sweep
    from sweeps.spec import load_spec

    spec = load_spec(ROOT / "experiments" / "tiny_sweep.yaml", output_dir=str(tmp_path / "tiny"))
    report = run_sweep(spec, tracking=False, progress=False)
    assert report.complete and report.n_completed == 2, report.failures
    frame = read_records(tmp_path / "tiny")
    cal = frame[frame["kind"] == "calibration"]
    assert set(cal["family"]) >= {"cate", "ate", "conversion_effect", "severity_effect"}
    assert set(cal["metric"]) == {"revenue_per_visitor"} and set(cal["n_treatments"]) == {3}
    assert set(cal["pooling"]) == {"joint"}
    assert ((cal["coverage"] >= 0) & (cal["coverage"] <= 1)).all()
    truth = frame[frame["kind"] == "truth"]
    assert sorted(truth.groupby("task_id").size()) == [2, 2]
    assert (truth["rpv_oracle"] >= truth["rpv_policy"] - 1e-12).all()
    assert ((truth["policy_accuracy"] >= 0) & (truth["policy_accuracy"] <= 1)).all()
    timing = frame[frame["kind"] == "timing"].sort_values("seconds")
    assert timing["worker"].nunique() == 1
    # one warm actor, tasks in order: the first compiles the BCF programs, the second reuses them
    assert report.compiles[0] > 0 and report.compiles[1] == 0


# ---- datasets the model refuses ----------------------------------------------------------------


def run_refusing_task(task):
    """The synthetic runner, except that replication 0's data are 'refused' (as run_task records a
    pytyche.InsufficientDataError)."""
    from dataclasses import replace

    result = run_synthetic_task(task)
    if task.replication == 0:
        return replace(result, records=(), refused="round 0: too few converters")
    return result


def test_run_task_records_a_dataset_the_model_refuses():
    """A hurdle round with almost no converters: the real fit refuses it with an
    InsufficientDataError (a ValueError naming the field), and run_task finishes the task with no
    rows and the reason, instead of failing it (a rerun would fail it again, forever)."""
    import pytyche as pt
    from sweeps.task import run_task

    assert issubclass(pt.InsufficientDataError, ValueError)
    spec = parse_spec({
        "name": "thin", "templates": [{"name": "harmful_arm", "params": {"conversion_scale": 0.3}}],
        "replications": 1, "schedule": {"kind": "fixed", "args": {"per_round": 300, "n_rounds": 2}},
        "bcf": {"num_trees_mu": 5, "num_trees_tau": 2, "num_burnin": 2, "num_draws": 2, "num_chains": 1},
    })
    (task,) = spec.tasks()
    result = run_task(task)
    assert result.records == () and result.n_rounds == 0
    assert result.refused.startswith("round 0: ") and "converters" in result.refused and "'observed'" in result.refused


def test_refused_datasets_finish_their_tasks_and_are_counted_apart(ray_cluster, tmp_path):
    from sweeps.aggregate import fit_artifact
    from sweeps.driver import run_sweep
    from sweeps.shards import refused_tasks

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=3)
    report = run_sweep(spec, runner=run_refusing_task, tracking=False, progress=False)
    assert report.complete and report.n_failed == 0 and report.n_completed == 3
    (refused,) = [t for t in spec.tasks() if t.replication == 0]
    assert dict(report.refused) == {refused.task_id: "round 0: too few converters"} == refused_tasks(out)
    frame = read_records(out)
    assert refused.task_id not in set(frame.loc[frame["kind"] == "calibration", "task_id"])
    again = run_sweep(spec, runner=run_refusing_task, tracking=False, progress=False)
    assert again.n_skipped == 3 and again.n_completed == 0 and len(again.refused) == 1  # not retried
    correction, _ = fit_artifact(out, path=tmp_path / "artifact.json")
    counts = correction.provenance["counts"]
    assert counts["tasks_finished"] == 3 and counts["tasks_refused"] == 1 and counts["replications"] == 2
