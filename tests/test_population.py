"""DGP populations in sweep specs: template parameters and round sizes drawn per replication.

Spec-level tests need no Ray; one end-to-end sweep (real Ray, real MLflow in a temporary SQLite
store, the planted-coverage runner) checks that the draws reach the runner, the Parquet shards,
the manifest and MLflow, and that the coverage records follow each replication's drawn regime.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from sweeps.spec import parse_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy, inside MLflow

POP = {
    "effect_scale": {"uniform": [0, 1.5]},
    "conversion_scale": {"loguniform": [0.5, 3]},
    "severity_sigma": {"choice": [0.4, 0.6, 0.9]},
}
SCHEDULE = {"kind": "fixed", "args": {"per_round": {"loguniform": [1000, 20000], "integer": True}, "n_rounds": 1}}


def pop_spec(params=None, schedule=None, **extra):
    raw = {
        "name": "pop",
        "templates": [{"name": "clustered_realistic", "params": POP if params is None else params}],
        "replications": 40,
        "seed": 7,
        "schedule": schedule or SCHEDULE,
        **extra,
    }
    return parse_spec(raw)


def test_draws_are_deterministic_within_bounds_and_one_cell():
    a, b = pop_spec().tasks(), pop_spec().tasks()
    assert [t.task_id for t in a] == [t.task_id for t in b]
    assert [t.params_dict for t in a] == [t.params_dict for t in b]
    es = np.array([t.params_dict["effect_scale"] for t in a])
    cs = np.array([t.params_dict["conversion_scale"] for t in a])
    sizes = np.array([t.schedule.args_dict["per_round"] for t in a])
    assert ((es >= 0) & (es <= 1.5)).all() and ((cs >= 0.5) & (cs <= 3)).all()
    assert set(t.params_dict["severity_sigma"] for t in a) <= {0.4, 0.6, 0.9}
    assert ((sizes >= 1000) & (sizes <= 20000)).all() and sizes.dtype.kind == "i"
    # 40 replications really vary (40 draws of a continuous law are distinct)
    assert len(set(es)) == 40 and len(set(sizes)) > 30
    # the log-uniform law puts half its mass below the geometric mean sqrt(1000 * 20000) = 4472:
    # 40 draws, sd of the count 3.2; a fixed seed, so a 4-sd band never flakes
    assert abs(int((sizes < math.sqrt(1000 * 20000)).sum()) - 20) <= 13
    # the grid cell is the population, not the draws: one cell for all 40 replications
    assert len({t.cell_id for t in a}) == 1 and len({t.task_id for t in a}) == 40
    assert "effect_scale~uniform[0,1.5]" in a[0].cell_label and "schedule.per_round~" in a[0].cell_label
    assert a[3].draws == {
        "conversion_scale": a[3].params_dict["conversion_scale"],
        "effect_scale": a[3].params_dict["effect_scale"],
        "severity_sigma": a[3].params_dict["severity_sigma"],
        "schedule.per_round": a[3].schedule.args_dict["per_round"],
    }


def test_draws_depend_on_seed_template_and_replication_only():
    base = pop_spec().tasks()
    # another seed draws other values
    other = pop_spec(seed=8).tasks()
    assert base[1].params_dict != other[0].params_dict  # seed 8 at replication 0 vs seed 8 at replication 1
    # adding a parameter to the population leaves the other parameters' draws unchanged
    more = pop_spec(params={**POP, "severity_sigma": {"uniform": [0.3, 0.9]}}).tasks()
    assert [t.params_dict["effect_scale"] for t in more] == [t.params_dict["effect_scale"] for t in base]
    # a spec without population keeps the identity it always had (no 'population' key): resumes work
    fixed = parse_spec({"name": "f", "templates": ["clustered_realistic"], "schedule": {"kind": "fixed", "args": {"per_round": 100, "n_rounds": 1}}})
    assert "population" not in fixed.tasks()[0].identity() and fixed.tasks()[0].draws == {}
    # explicit sizes may mix fixed and drawn rounds; round trip through the spec's plain data
    s = pop_spec(schedule={"kind": "explicit", "args": {"sizes": [2000, {"randint": [1000, 3000]}]}})
    sizes = [t.schedule.args_dict["sizes"] for t in s.tasks()]
    assert all(x[0] == 2000 and 1000 <= x[1] <= 3000 for x in sizes)
    assert parse_spec(s.to_dict()) == s


@pytest.mark.parametrize(
    "params, schedule, field",
    [
        ({"effect_scale": {"uniform": [1.5, 0]}}, None, "'templates[0].params.effect_scale.uniform'"),
        ({"effect_scale": {"uniform": [0]}}, None, "'templates[0].params.effect_scale.uniform'"),
        ({"conversion_scale": {"loguniform": [0, 3]}}, None, "'templates[0].params.conversion_scale.loguniform'"),
        ({"effect_scale": {"choice": []}}, None, "'templates[0].params.effect_scale.choice'"),
        ({"effect_scale": {"uniform": [0, 1], "choice": [1]}}, None, "'templates[0].params.effect_scale'"),
        ({"effect_scale": {"randint": [0.5, 3]}}, None, "'templates[0].params.effect_scale.randint'"),
        ({"effect_scale": {"choice": [1], "integer": True}}, None, "'templates[0].params.effect_scale.integer'"),
        ({}, {"kind": "fixed", "args": {"per_round": {"loguniform": [1000, 20000]}, "n_rounds": 1}}, "'schedule.args.per_round'"),
        ({}, {"kind": "fixed", "args": {"per_round": {"randint": [0, 20]}, "n_rounds": 1}}, "'schedule.args.per_round.randint'"),
        ({}, {"kind": "explicit", "args": {"sizes": [{"choice": [100, 2.5]}]}}, "'schedule.args.sizes[0].choice'"),
    ],
)
def test_population_validated_when_the_spec_loads(params, schedule, field):
    with pytest.raises(ValueError, match="must be") as err:
        pop_spec(params=params, schedule=schedule)
    assert field in str(err.value)


def test_grid_of_distributions_is_an_error():
    with pytest.raises(ValueError, match=r"'templates\[0\].grid.effect_scale'"):
        parse_spec({"name": "g", "templates": [{"name": "clustered_realistic", "grid": {"effect_scale": [{"uniform": [0, 1]}]}}],
                    "schedule": SCHEDULE})


@pytest.mark.parametrize(
    "params, match",
    [
        ({"effect_scal": {"uniform": [0, 1]}}, r"'templates\[0\].params.effect_scal'.*parameter of template 'clustered_realistic'"),
        ({"effect_scale": {"uniform": [-1, 1]}}, r"'templates\[0\].params.effect_scale.uniform\[0\]'.*not a valid 'effect_scale'"),
    ],
)
def test_population_checked_against_the_template(params, match):
    # the spec checks each bound against the template when it loads (sweeps.template_params)
    with pytest.raises(ValueError, match=match):
        pop_spec(params=params).check_templates()


def test_population_sweep_records_its_draws(tmp_path):
    """Real Ray and MLflow: the planted-coverage runner reads each replication's drawn
    ``scale_ratio`` and round size; shards, manifest and MLflow carry the draws, and each task's
    coverage follows its own drawn regime."""
    import ray
    from mlflow.tracking import MlflowClient
    from ray import cloudpickle

    from sweeps.driver import run_sweep
    from sweeps.shards import read_records
    from sweeps.synthetic import planted_coverage, run_synthetic_task

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "sweep"
    spec = parse_spec(
        {
            "name": "synth_pop",
            "templates": [{"name": "synthetic", "params": {"scale_ratio": {"uniform": [1.0, 2.5]}, "n_targets": 2000}}],
            "replications": 6,
            "schedule": {"kind": "explicit", "args": {"sizes": [{"randint": [1000, 20000]}]}},
            "levels": [0.5, 0.9],
            "families": ["cate"],
            "actors": {"count": 2},
            "output_dir": str(out),
        }
    )
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        report = run_sweep(spec, runner=run_synthetic_task, tracking_uri=uri, progress=False)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert report.complete and report.n_completed == 6
    tasks = {t.task_id: t for t in spec.tasks()}
    frame = read_records(out, kinds=["calibration"])
    for tid, g in frame.groupby("task_id"):
        t = tasks[tid]
        assert json.loads(g["draws"].iloc[0]) == t.draws
        assert json.loads(g["params"].iloc[0])["scale_ratio"] == t.draws["scale_ratio"]
        assert set(g["sample_size"]) == {t.draws["schedule.sizes.0"]}
        # coverage at 0.9 is Binomial(2000, R)/2000 with R the planted coverage of this task's
        # drawn ratio: sd <= sqrt(0.25 / 2000) = 0.0112, so 5 sd = 0.056 never flakes at a fixed seed
        row = g[g["nominal"] == 0.9].iloc[0]
        assert abs(row["coverage"] - float(planted_coverage(0.9, t.draws["scale_ratio"]))) < 0.056
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(manifest["tasks"][tid]["draws"] == t.draws for tid, t in tasks.items())
    client = MlflowClient(uri)
    parent = client.get_run(report.mlflow_run_id)
    (child,) = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert json.loads(child.data.params["population.scale_ratio.uniform"]) == [1.0, 2.5]
    hist = sorted(client.get_metric_history(child.info.run_id, "draw.scale_ratio"), key=lambda m: m.step)
    assert [m.step for m in hist] == list(range(6))
    assert [m.value for m in hist] == [t.draws["scale_ratio"] for t in sorted(tasks.values(), key=lambda t: t.replication)]


def test_calibration_specs_parse_at_the_default_mcmc_config():
    """experiments/calibration: every spec loads, runs the library's default MCMC settings (the
    artifacts' regime), one round drawn in [1k, 20k] visitors, and its registered templates accept
    their populations. Templates issue 11 adds are checked once they are registered."""
    import pathlib

    from dgps.registry import list_templates
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.calibrate import mcmc_of
    from sweeps.spec import load_spec

    root = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "calibration"
    files = sorted(root.glob("*.yaml"))
    assert len(files) == 8 and (root / "README.md").is_file()
    readme = (root / "README.md").read_text()
    for f in files:
        spec = load_spec(f)
        assert f.name in readme
        assert mcmc_of(GPUBCFConfig(**spec.bcf_dict)) == mcmc_of(GPUBCFConfig())
        tasks = spec.tasks()
        assert all(t.schedule.n_rounds == 1 and 1000 <= t.schedule.args_dict["sizes"][0] <= 50000 for t in tasks)
        fit, known = f.stem.endswith("_fit"), [t.name in list_templates() for t in spec.templates]
        if all(known):
            spec.check_templates()
        # held-out templates are never fitted on
        if not fit:
            fit_spec = load_spec(root / f.name.replace("_validate", "_fit"))
            assert not {t.name for t in spec.templates} & {t.name for t in fit_spec.templates}
