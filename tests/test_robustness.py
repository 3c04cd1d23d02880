"""Robustness (issue 14): no silent corruption, fail before launch, no Ray for nothing.

Each test here failed before its fix:

- a truncated or damaged records shard is found on resume and its task redone exactly once;
- a huge outcome never yields a NaN posterior, and a non-finite draw is never returned;
- a malformed calibration artifact names the file and the field;
- seeds, memory-hungry configurations and overflowing schedules fail at validation time;
- sweep spec errors (template parameters, artifact, schedule) fail when the spec loads;
- MLflow child runs exist for the cells a killed driver finished, and a resume adds none twice;
- ``pytyche-sweep run``/``resume`` start no Ray when nothing is left.

Ray tests use one real Ray instance started for the module and the planted-coverage runner of
:mod:`sweeps.synthetic`; MLflow uses a temporary SQLite store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from functools import partial

import numpy as np
import pytest

from sweeps.shards import checksum_path, finished_ids, read_records, shard_path, truth_path
from sweeps.spec import parse_spec
from sweeps.synthetic import run_synthetic_task
from tests import _specs
from tests._ray import local_ray
from tests._specs import minimal_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LEVELS = [0.5, 0.9]
FAMILIES = ["cate"]
N_ROUNDS = 2


synthetic_spec = partial(_specs.synthetic_spec, levels=LEVELS, families=FAMILIES, n_rounds=N_ROUNDS, name="robust")


def assert_exactly_once(out, spec):
    _specs.assert_counts_once(out, spec, calibration_rows=N_ROUNDS * len(FAMILIES) * len(LEVELS), n_rounds=N_ROUNDS)


@pytest.fixture(scope="module")
def ray_cluster():
    # the crash runner below lives in this test module, which workers cannot import by name
    with local_ray(__name__, num_cpus=2) as ray:
        yield ray


# ---- 7. no Ray when no task is left ------------------------------------------------------------


def _finish_without_ray(spec, out):
    """Write every task's shards in this process (no Ray), as a finished sweep leaves them."""
    from sweeps.driver import write_manifest
    from sweeps.shards import write_shard

    write_manifest(spec, out, spec.tasks())
    for t in spec.tasks():
        write_shard(out, t, run_synthetic_task(t))


@pytest.mark.parametrize("command", ["run", "resume"])
def test_cli_starts_no_ray_when_every_task_is_done(tmp_path, monkeypatch, command, capsys):
    import ray

    from sweeps.cli import main

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=2)
    _finish_without_ray(spec, out)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # whatever else this session runs
    monkeypatch.setattr(ray, "init", lambda *a, **k: calls.append((a, k)) or pytest.fail("ray.init called with nothing to do"))
    target = str(out) if command == "resume" else str(spec_file)
    code = main([command, target, "--no-tracking", "--no-progress", "--runner", "sweeps.synthetic:run_synthetic_task"])
    assert code == 0 and calls == []
    assert "0 tasks finished now, 2 already done" in capsys.readouterr().out


# ---- 1. a damaged shard is redone ---------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["checksummed", "legacy-no-checksum"])
def test_truncated_shard_is_redone_exactly_once_on_resume(ray_cluster, tmp_path, legacy, caplog):
    from sweeps.aggregate import aggregate
    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=4)
    first = run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False)
    assert first.complete and first.n_completed == 4
    ids = sorted(finished_ids(out))
    sums = json.loads(checksum_path(out, ids[0]).read_text())
    assert sums["records"]["rows"] == N_ROUNDS * len(LEVELS) and len(sums["truth"]["sha256"]) == 64
    victim = ids[1]
    if legacy:  # a sweep written before checksums existed: the shard must still read whole
        for t in ids:
            checksum_path(out, t).unlink()
    data = shard_path(out, victim).read_bytes()
    shard_path(out, victim).write_bytes(data[: len(data) // 2])  # what a full disk or cut copy leaves
    stamps = {t: shard_path(out, t).stat().st_mtime_ns for t in ids if t != victim}

    with caplog.at_level("WARNING", logger="sweeps.shards"):
        second = run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False)
    assert [t for t, _ in second.corrupt] == [victim]
    assert second.n_skipped == 3 and second.n_completed == 1 and second.complete  # ran again, once
    assert victim in caplog.text and "run again" in caplog.text
    assert {t: shard_path(out, t).stat().st_mtime_ns for t in stamps} == stamps  # the good ones untouched
    assert_exactly_once(out, spec)
    assert sorted(p.name.split(".")[0] for p in (out / "corrupt").iterdir() if ".records." in p.name) == [victim]
    res = aggregate(out, fit=False, tracking=False)  # failed with "Parquet magic bytes not found" before
    assert len(res.curves)


def test_shard_with_changed_bytes_or_missing_truth_is_detected(tmp_path):
    from sweeps.shards import verify_shards

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=3)
    _finish_without_ray(spec, out)
    a, b, c = sorted(finished_ids(out))
    assert verify_shards(out) == {}
    good = shard_path(out, c).read_bytes()
    shard_path(out, c).write_bytes(good[:100])  # read before a resume: a clear error, not pyarrow's
    with pytest.raises(ValueError, match=r"is damaged .*pytyche-sweep resume"):
        read_records(out)
    shard_path(out, c).write_bytes(good)
    raw = bytearray(shard_path(out, a).read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: still the right size, maybe still readable
    shard_path(out, a).write_bytes(bytes(raw))
    truth_path(out, b).unlink()
    bad = verify_shards(out)
    assert set(bad) == {a, b} and "sha256" in bad[a] and "truth" in bad[b]
    assert finished_ids(out) == {c}


# ---- 2. huge outcomes and non-finite draws --------------------------------------------------------


def _continuous(scale=1.0, n=120):
    sys.path.insert(0, os.path.dirname(__file__))
    from _data import continuous_dgp, observed_from_arrays

    pl = continuous_dgp(n=n)
    obs, _ = observed_from_arrays(pl.x, pl.arm, np.asarray(pl.observed.outcome) * scale)
    return obs


@pytest.mark.parametrize("kind", ["continuous", "hurdle"])
def test_huge_outcome_is_refused_naming_the_cause(kind):
    """1e200 used to fit without a word and return NaN draws everywhere."""
    from pytyche.bcf import fit_continuous_bcf, fit_hurdle_bcf

    obs = _continuous(1e200)
    if kind == "hurdle":
        sys.path.insert(0, os.path.dirname(__file__))
        from _data import hurdle_dgp, observed_from_arrays

        h = hurdle_dgp(n=120)
        obs, _ = observed_from_arrays(h.x, h.arm, np.asarray(h.observed.outcome) * 1e200)
    fit = fit_continuous_bcf if kind == "continuous" else fit_hurdle_bcf
    with pytest.raises(ValueError, match=r"'observed' parameter .* outcome magnitudes are at most 1e\+30.*rescale"):
        fit(obs, num_trees_mu=5, num_trees_tau=5, num_burnin=2, num_draws=2, num_chains=1)


def test_run_bcf_refuses_a_huge_outcome_naming_y():
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.sampler import run_bcf

    rng = np.random.default_rng(0)
    x, arm = rng.uniform(size=(50, 2)), np.arange(50) % 2
    with pytest.raises(ValueError, match=r"'y' parameter of run_bcf must be of magnitude at most"):
        run_bcf(x, arm, (1e200 * rng.normal(size=50))[None], outcome_types=["continuous"], n_arms=2, config=GPUBCFConfig())


def test_non_finite_posterior_is_never_returned():
    """The final guard of every fit: a posterior holding a NaN or inf draw raises."""
    from pytyche.bcf._fitting import attach_calibration
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.results import ContinuousBCFResult

    obs = _continuous()
    samples = np.ones((obs.n_visitors, 4, 2), np.float32)
    ok = ContinuousBCFResult(observed=obs, treatments=obs.variant_names, config=GPUBCFConfig(), outcome_samples=samples, n_chains=1)
    assert attach_calibration(ok, None) is ok
    samples = samples.copy()
    samples[3, 1, 1] = np.nan
    bad = ContinuousBCFResult(observed=obs, treatments=obs.variant_names, config=GPUBCFConfig(), outcome_samples=samples, n_chains=1)
    with pytest.raises(FloatingPointError, match=r"outcome_samples.*1 of"):
        attach_calibration(bad, None)


def test_run_bcf_guard_raises_on_non_finite_draws(monkeypatch):
    """Force an overflow inside run_bcf (an infinite outcome scale): it raises, never returns."""
    import dataclasses

    from pytyche.bcf import sampler

    real = sampler._prepare
    monkeypatch.setattr(sampler, "_prepare", lambda *a: dataclasses.replace(real(*a), scale=np.array([np.inf])))
    rng = np.random.default_rng(0)
    x, arm = rng.uniform(size=(40, 3)), np.arange(40) % 2  # p=3: the shapes of the suite's continuous fits
    sys.path.insert(0, os.path.dirname(__file__))
    from _config import TINY  # the suite's shared compiled shapes

    with pytest.raises(FloatingPointError, match=r"run_bcf produced non-finite posterior draws \(mu: \d+ of 800"):
        sampler.run_bcf(x, arm, rng.normal(size=(1, 40)), outcome_types=["continuous"], n_arms=2, config=TINY)


# ---- 4. values that passed validation, then failed later -------------------------------------------


def test_seed_bounded_to_what_jax_tells_apart():
    import jax

    from pytyche.bcf.config import GPUBCFConfig

    # why: jax.random.key keeps the low 32 bits (x64 off), so 2**32 would silently equal seed 0,
    # and from 2**63 on it raises OverflowError inside the fit
    assert np.array_equal(jax.random.key_data(jax.random.key(2**32)), jax.random.key_data(jax.random.key(0)))
    GPUBCFConfig(seed=2**32 - 1)
    for seed in (2**32, 2**63, 2**64):
        with pytest.raises(ValueError, match=r"'seed' parameter of GPUBCFConfig must be an int in \[0, 2\*\*32 - 1\]"):
            GPUBCFConfig(seed=seed)
    with pytest.raises(ValueError, match=r"'seed' field"):
        synthetic_spec("x", replications=2).replace(seed=2**32)


@pytest.mark.parametrize(
    "field, value",
    [("num_trees_mu", 10**9), ("bucket_min", 10**10), ("num_draws", 10**9)],
)
def test_fit_refuses_configs_that_cannot_fit_in_memory(field, value):
    """These passed validation and then exhausted memory after minutes; now they are refused
    before anything is allocated, naming the field."""
    from pytyche.bcf import fit_continuous_bcf

    obs = _continuous()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=rf"'{field}' parameter of run_bcf must be small enough for the fit to fit in memory.*GiB"):
        fit_continuous_bcf(obs, **{"num_trees_mu": 20, "num_trees_tau": 10, "num_chains": 1, field: value})
    assert time.perf_counter() - t0 < 60  # refused up front (a generous bound: no MCMC ran)


def test_memory_estimate_scales_and_device_budget_is_checked(monkeypatch):
    from pytyche.bcf import memory
    from pytyche.bcf.config import GPUBCFConfig

    cfg = GPUBCFConfig(num_trees_mu=20, num_trees_tau=10, num_draws=20, num_chains=1, bucket_min=512)
    small = memory.estimate_fit_memory(cfg, n=300, p=3, k=1, n_arms=2)
    assert 0 < small.total < 50 * 2**20  # tiny fit: tens of MB at most
    big = memory.estimate_fit_memory(GPUBCFConfig(num_trees_mu=200, num_chains=1, bucket_min=512), n=300, p=3, k=1, n_arms=2)
    assert big.device > small.device  # more trees, more memory
    memory.check_fit_memory(cfg, n=300, p=3, k=1, n_arms=2, where="t")
    # a GPU with 1 MiB free: the device terms are checked against it
    monkeypatch.setattr(memory, "available_memory", lambda: (2**20, 2**40))
    with pytest.raises(ValueError, match=r"GiB of device memory"):
        memory.check_fit_memory(GPUBCFConfig(num_trees_mu=400, num_chains=1), n=300, p=3, k=1, n_arms=2, where="t")


def test_geometric_schedule_never_overflows():
    from pytyche.experiment.schedules import MAX_ROUND_SIZE, GeometricSchedule

    with pytest.raises(ValueError, match=r"'growth' parameter of GeometricSchedule"):
        GeometricSchedule(initial=1, growth=1e300)  # raised OverflowError on size(2) before
    with pytest.raises(ValueError, match=r"'growth' parameter of GeometricSchedule"):
        GeometricSchedule(initial=1, growth=1e300, n_rounds=3)
    assert GeometricSchedule(initial=1, growth=1e300, n_rounds=1).size(0) == 1
    s = GeometricSchedule(initial=1, growth=2.0)
    assert s.size(62) == MAX_ROUND_SIZE
    for r in (63, 10**6):
        with pytest.raises(ValueError, match="round_idx"):
            s.size(r)


# ---- 3. malformed calibration JSON -------------------------------------------------------------------


def _artifact(tmp_path):
    from pytyche.calibrate.calibration import _registry_dir

    return json.loads((_registry_dir() / "demo_rpv_k3_toy.json").read_text())


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.__setitem__("layers", [1]), "layers[0]"),
        (lambda d: d["layers"][2].__setitem__("nominal", "x"), "layers[2].nominal"),
        (lambda d: d["family_curves"][0].pop("n_units"), "family_curves[0].n_units"),
        (lambda d: d.__setitem__("n_treatments", "3"), "n_treatments"),
        (lambda d: d.pop("band_edges"), "band_edges"),
        (lambda d: d["layers"][0].__setitem__("empirical", [0.9, 0.1, 0.5, 0.6, 0.7, 0.8]), "layers[0]"),
        (lambda d: d.__setitem__("pooling", "sideways"), "pooling"),
    ],
)
def test_malformed_artifact_names_the_file_and_the_field(tmp_path, mutate, field):
    import pytyche as pt

    d = _artifact(tmp_path)
    mutate(d)
    path = tmp_path / "bad_artifact.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError) as err:
        pt.Calibration.from_sweep(str(path))
    assert str(path) in str(err.value) and field in str(err.value), str(err.value)


@pytest.mark.parametrize("text", ['{"format": "pytyche.calibration/1", "metric": ', "[1, 2]", "\xff\xfe"])
def test_unparseable_artifact_names_the_file(tmp_path, text):
    import pytyche as pt

    path = tmp_path / "broken.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match="broken.json") as err:
        pt.Calibration.from_sweep(str(path))
    assert "JSON" in str(err.value)


def test_valid_artifact_still_round_trips(tmp_path):
    from pytyche.calibrate.correction import LayeredCalibrationCorrection, LegacyCalibrationWarning

    d = _artifact(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegacyCalibrationWarning)  # the shipped artifact is current (format 2)
        c = LayeredCalibrationCorrection.from_dict(d)
    assert c.to_dict() == d


# ---- 5. sweep spec errors surface at load --------------------------------------------------------


GOOD = minimal_spec("clustered_realistic")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scale": "big"}}]}, "templates[0].params.effect_scale"),
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scal": 1.0}}]}, "templates[0].params.effect_scal"),
        ({"templates": [{"name": "clustered_realistic", "params": {"conversion_scale": -1.0}}]}, "templates[0].params.conversion_scale"),
        ({"templates": [{"name": "clustered_realistic", "grid": {"effect_scale": [1.0, "x"]}}]}, "templates[0].grid.effect_scale[1]"),
        ({"templates": [{"name": "binary_conversion", "params": {"lift": [0.1, "a"]}}]}, "templates[0].params.lift"),
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scale": {"uniform": [2, 1]}}}]}, "templates[0].params.effect_scale.uniform"),
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scale": {"loguniform": [0, 1]}}}]}, "templates[0].params.effect_scale.loguniform"),
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scale": {"choice": [1.0, "no"]}}}]}, "templates[0].params.effect_scale.choice[1]"),
        ({"templates": [{"name": "clustered_realistic", "params": {"effect_scale": {"normal": [0, 1]}}}]}, "templates[0].params.effect_scale"),
        ({"calibration": "no_such_artifact"}, "calibration"),
        ({"calibration": "/nonexistent/artifact.json"}, "calibration"),
        ({"schedule": {"kind": "geometric", "args": {"initial": 1, "growth": 1e300, "n_rounds": 3}}}, "schedule.args"),
        ({"seeds": [0, 2**32]}, "seeds"),
    ],
)
def test_spec_errors_surface_when_the_spec_loads(change, field):
    with pytest.raises(ValueError) as err:
        parse_spec({**GOOD, **change})
    assert f"'{field}'" in str(err.value), str(err.value)


def test_spec_accepts_valid_template_params_and_populations():
    spec = parse_spec(
        {
            **GOOD,
            "templates": [
                {"name": "clustered_realistic", "params": {"effect_scale": {"uniform": [0, 1.5]}, "severity_sigma": {"loguniform": [0.5, 3]}},
                 "grid": {"conversion_scale": [1, 2.0]}},
                {"name": "null_effect", "params": {"treatments": {"choice": [["a", "b"], ["a", "b", "c"]]}}},
                {"name": "binary_conversion", "params": {"lift": [0.1, 0.0, 0.0, 0.0]}},
            ],
            "calibration": "demo_rpv_k3_toy",
        }
    )
    assert parse_spec(spec.to_dict()) == spec
    assert len(spec.tasks()) == 2 * (2 + 1 + 1)


def test_check_template_param_skips_unregistered_templates():
    from sweeps.template_params import check_template_param

    check_template_param("synthetic", "anything", object())  # a custom runner's own template


# ---- 6. MLflow child runs as cells finish --------------------------------------------------------


def _children(client, parent_id):
    run = client.get_run(parent_id)
    return client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


def test_child_run_exists_while_the_sweep_still_runs(ray_cluster, tmp_path, mlflow_uri):
    """In-process variant (fast): the fast cell's child run appears while the slow cell is still
    running, and a rerun with nothing left adds no second child run."""
    import threading

    from mlflow.tracking import MlflowClient

    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=2, grid={"sleep_s": [0.0, 4.0]})
    fast_cell = next(t.cell_id for t in spec.tasks() if t.params_dict["sleep_s"] == 0.0)
    client = MlflowClient(mlflow_uri)
    reports = []
    worker = threading.Thread(target=lambda: reports.append(run_sweep(spec, runner=run_synthetic_task, tracking_uri=mlflow_uri, progress=False)))
    worker.start()
    seen, still_running = [], False
    try:
        deadline = time.time() + 120
        while worker.is_alive() and time.time() < deadline:
            state = out / "mlflow.json"
            if state.is_file():
                seen = [c for c in _children(client, json.loads(state.read_text())["run_id"]) if c.info.status == "FINISHED"]
                if seen:
                    still_running = len(finished_ids(out)) < 4
                    break
            time.sleep(0.1)
    finally:
        worker.join(timeout=300)
    assert still_running and [c.data.tags["pytyche.cell_id"] for c in seen] == [fast_cell]
    assert reports and reports[0].complete
    again = run_sweep(spec, runner=run_synthetic_task, tracking_uri=mlflow_uri, progress=False)
    assert again.n_completed == 0
    final = _children(client, again.mlflow_run_id)
    assert len(final) == 2 and len({c.data.tags["pytyche.cell_id"] for c in final}) == 2
    assert seen[0].info.run_id in {c.info.run_id for c in final}


@pytest.mark.slow
def test_child_runs_logged_as_cells_finish_survive_a_killed_driver(ray_cluster, tmp_path, mlflow_uri):
    """(Slow: a driver process.) SIGKILL the driver after the fast cell finished but before the slow one did: the fast
    cell's child run exists (it was only written at the end before); the resume logs the slow
    cell and does not duplicate the fast one."""
    from mlflow.tracking import MlflowClient

    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    spec = synthetic_spec(out, replications=2, grid={"sleep_s": [0.0, 5.0]})
    fast_cell = next(t.cell_id for t in spec.tasks() if t.params_dict["sleep_s"] == 0.0)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "sweeps.cli", "run", str(spec_file), "--address", address,
           "--runner", "sweeps.synthetic:run_synthetic_task", "--tracking-uri", mlflow_uri, "--no-progress"]
    client = MlflowClient(mlflow_uri)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    children = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            state = out / "mlflow.json"
            if state.is_file():
                children = _children(client, json.loads(state.read_text())["run_id"])
                if children and all(c.info.status == "FINISHED" for c in children):
                    break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert len(finished_ids(out)) < 4, "the slow cell must still have been running"
    assert [c.data.tags["pytyche.cell_id"] for c in children] == [fast_cell]
    first_id = children[0].info.run_id

    report = run_sweep(spec, runner=run_synthetic_task, tracking_uri=mlflow_uri, progress=False)
    assert report.complete
    after = _children(client, report.mlflow_run_id)
    by_cell = {}
    for c in after:
        by_cell.setdefault(c.data.tags["pytyche.cell_id"], []).append(c)
    assert sorted(len(v) for v in by_cell.values()) == [1, 1] and len(by_cell) == 2
    assert by_cell[fast_cell][0].info.run_id == first_id and all(c.info.status == "FINISHED" for c in after)

    # a child left half-written (RUNNING) by a killed driver is replaced, not kept or doubled
    slow_cell = next(c for c in by_cell if c != fast_cell)
    client.update_run(by_cell[slow_cell][0].info.run_id, status="RUNNING")
    again = run_sweep(spec, runner=run_synthetic_task, tracking_uri=mlflow_uri, progress=False)
    assert again.n_completed == 0
    final = _children(client, report.mlflow_run_id)
    assert sorted(c.data.tags["pytyche.cell_id"] for c in final) == sorted([fast_cell, slow_cell])
    assert all(c.info.status == "FINISHED" for c in final)


# ---- a restarting actor (the single-node stand-in for a lost node; see test_multinode.py) -------


def crash_first_attempt_runner(task):
    """Kill the worker process on the first attempt of every task (Ray then restarts the actor)."""
    import pathlib

    marker = pathlib.Path(task.params_dict["marker_dir"]) / f"crashed-{task.task_id}"
    if not marker.exists():
        marker.touch()
        os._exit(1)
    return run_synthetic_task(task)


def test_restarting_actor_gets_no_task_until_it_answers(ray_cluster, tmp_path):
    """Ray restarts a crashed actor (``max_restarts``) and calls meanwhile fail with
    ``ActorUnavailableError``. The pool used to hand the requeued task straight back to the
    restarting actor, burning every attempt in milliseconds; now the slot waits for a probe."""
    from sweeps.driver import run_sweep

    out = tmp_path / "sweep"
    actors = {"count": 1, "max_restarts": 3, "max_task_retries": 0, "max_attempts": 2}
    spec = synthetic_spec(out, replications=2, actors=actors, params={"marker_dir": str(tmp_path)})
    report = run_sweep(spec, runner=crash_first_attempt_runner, tracking=False, progress=False)
    assert len(list(tmp_path.glob("crashed-*"))) == 2, "every task must have crashed its actor once"
    assert report.n_failed == 0 and report.complete and report.n_resubmitted == 2, report.failures
    assert_exactly_once(out, spec)
