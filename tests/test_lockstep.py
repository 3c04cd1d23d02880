"""Replications in lockstep (issue 23, item 2): a round in public steps, batched across experiments.

The library part: ``prepare_round`` / ``finish_round`` with ``fit_batch`` in between give each
experiment bitwise the rounds ``advance`` gives it alone (on the CPU, where the batched fits are
bitwise the unbatched ones), and a prepared round changes nothing until it is finished. The sweep
part: :func:`sweeps.lockstep.run_lockstep` gives each task the rows :func:`sweeps.task.run_task`
gives it alone, a refused or failing member leaves the others' rows intact, ``batch_size`` does
not enter task ids, and a Ray sweep with ``batch_size: 2`` writes for each task the rows
``run_task`` gives it alone. Real fits at the shared tiny config (one row bucket, ``tests/_config.py``) on
``clustered_realistic`` (a joint hurdle at K = 3) with ``conversion_scale=8`` (every arm
converts), as ``experiments/tiny_sweep.yaml``; ``harmful_arm`` at ``conversion_scale=0.3`` is
refused.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dgps import make_generator
from pytyche.bcf import request as request_module
from pytyche.bcf.request import fit_batch
from pytyche.experiment import FixedSchedule, PreparedRound, sequential_experiment
from sweeps.spec import parse_spec

from _config import TINY

pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")

SEEDS = (11, 12, 13)
BCF = {f: getattr(TINY, f) for f in ("num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains", "bucket_min")}


def _exp(seed: int, **kw):
    gen = make_generator("clustered_realistic", seed=seed, conversion_scale=8.0)
    return sequential_experiment(
        generator=gen, schedule=FixedSchedule(per_round=250, n_rounds=2), treatments=list(gen.treatments),
        bcf_config=TINY, seed=seed, **kw,
    )


def _same_round(a, b) -> None:
    """Two rounds' snapshots agree bitwise: draws, analysis, plan, decisions."""
    assert np.array_equal(a.posterior.outcome_samples, b.posterior.outcome_samples)
    assert np.array_equal(a.posterior.decomposition.p_samples, b.posterior.decomposition.p_samples)
    assert a.fit_seed == b.fit_seed
    assert [s.rule for s in a.segments] == [s.rule for s in b.segments]
    np.testing.assert_array_equal([s.stability_score for s in a.segments], [s.stability_score for s in b.segments])
    assert a.next_plan.to_dict() == b.next_plan.to_dict()
    assert a.ship_signals == b.ship_signals
    assert (a.policy_value is None) == (b.policy_value is None)
    if a.policy_value is not None:
        assert a.policy_value.value == b.policy_value.value


def test_prepared_rounds_fitted_as_one_batch_equal_advancing_alone():
    alone = [_exp(s) for s in SEEDS]
    for e in alone:
        e.run_to_completion()
    together = [_exp(s) for s in SEEDS]
    for r in range(2):
        prepared = [e.prepare_round() for e in together]
        assert len({p.request.same_program() for p in prepared}) == 1  # one program: really batched
        posteriors = fit_batch([p.request for p in prepared])
        for e, p, post in zip(together, prepared, posteriors):
            e.finish_round(p, post)
    for a, b in zip(alone, together):
        assert len(a.history) == len(b.history) == 2
        for ra, rb in zip(a.history, b.history):
            _same_round(ra, rb)


def test_an_abandoned_prepared_round_changes_nothing_and_finish_checks_what_it_is_given():
    exp, other = _exp(21), _exp(22)
    prepared = exp.prepare_round()
    assert isinstance(prepared, PreparedRound) and prepared.round_idx == 0
    assert exp.history == [] and exp.cumulative_data is None and exp.next_recommendation is None
    assert prepared.cumulative.n_visitors == 250 and prepared.request.seed == prepared.fit_seed
    # abandoned: the next advance is round 0, the same round advance gives a fresh experiment
    first = exp.advance()
    fresh = _exp(21).advance()
    _same_round(first, fresh)
    # a stale round (round 0 was finished since) and another experiment's round are refused
    with pytest.raises(ValueError, match="'prepared' parameter of SequentialExperiment.finish_round.*round 0"):
        exp.finish_round(prepared, prepared.fit())
    theirs = other.prepare_round()
    with pytest.raises(ValueError, match="another experiment"):
        exp.finish_round(theirs, theirs.fit())
    mine = exp.prepare_round()
    with pytest.raises(ValueError, match="'posterior' parameter.*500 visitors"):
        exp.finish_round(mine, first.posterior)  # round 0's posterior is not round 1's
    with pytest.raises(TypeError, match="'prepared' parameter"):
        exp.finish_round("round", first.posterior)
    # lockstep replications share sizes and arms: a sibling's posterior is still refused
    a, b = _exp(23), _exp(24)
    pa, pb = a.prepare_round(), b.prepare_round()
    assert pa.cumulative.n_visitors == pb.cumulative.n_visitors
    with pytest.raises(ValueError, match="'posterior' parameter"):
        a.finish_round(pa, pb.fit())
    assert len(exp.history) == 1 and exp.cumulative_data.n_visitors == 250


def test_skip_analysis_skips_the_bootstrap_and_the_policy_value(tmp_path):
    from pytyche.experiment import SequentialExperiment

    skipped = _exp(31, skip_analysis=["policy_value", "stability"])
    assert skipped.skip_analysis == ("stability", "policy_value")
    rnd = skipped.advance()
    full = _exp(31).advance()
    assert rnd.policy_value is None and full.policy_value is not None
    assert np.array_equal(rnd.posterior.outcome_samples, full.posterior.outcome_samples)
    assert [s.rule for s in rnd.segments] == [s.rule for s in full.segments]  # GATE records keep the tree
    assert all(np.isnan(s.stability_score) for s in rnd.segments)
    skipped.save(tmp_path / "save")  # a save records the steps it skips
    loaded = SequentialExperiment.load(tmp_path / "save", make_generator("clustered_realistic", seed=31, conversion_scale=8.0))
    assert loaded.skip_analysis == ("stability", "policy_value")
    with pytest.raises(ValueError, match="'skip_analysis' parameter"):
        _exp(31, skip_analysis=["stabilty"])
    with pytest.raises(TypeError, match="'skip_analysis' parameter"):
        _exp(31, skip_analysis="stability")


# ---- the sweep's lockstep runner -------------------------------------------------------------


def _spec(**extra):
    return parse_spec({
        "name": "lock", "templates": [extra.pop("template", {"name": "clustered_realistic", "params": {"conversion_scale": 8.0}})],
        "seeds": list(SEEDS), "schedule": {"kind": "fixed", "args": {"per_round": 250, "n_rounds": 2}}, "bcf": BCF,
        "families": ["cate", "ate", "gate"], **extra,
    })


#: what a calibration sweep runs (the refit's specs): the batched fit is what lockstep changes, and
#: test_prepared_rounds_fitted_as_one_batch_equal_advancing_alone covers the full analysis
FAST = {"skip_analysis": ["stability", "policy_value"]}


def _rows(result) -> str:
    return json.dumps(list(result.records), sort_keys=True, default=str)


def test_lockstep_tasks_get_exactly_their_rows_alone(monkeypatch):
    from sweeps.lockstep import group_tasks, run_lockstep
    from sweeps.task import run_task

    tasks = _spec(experiment=FAST).tasks()
    assert group_tasks(tasks, 3) == [tuple(tasks)] and group_tasks(tasks, 2) == [tuple(tasks[:2]), (tasks[2],)]
    alone = [run_task(t) for t in tasks]
    calls = []
    monkeypatch.setattr(request_module, "fit_batch", lambda reqs, **kw: calls.append(len(reqs)) or fit_batch(reqs, **kw))
    outcomes = run_lockstep(tasks)
    assert calls == [3, 3]  # one batched fit of the three per round
    for t, a, o in zip(tasks, alone, outcomes):
        assert o.ok and o.task_id == t.task_id and o.result.n_rounds == a.n_rounds == 2
        assert o.result.refused is None and _rows(o.result) == _rows(a)


def test_a_refused_and_a_failing_member_leave_the_others_intact(monkeypatch):
    import sweeps.task as task_module
    from sweeps.lockstep import run_lockstep
    from sweeps.task import run_task

    ok_tasks = _spec(experiment=FAST).tasks()[:2]
    (thin,) = _spec(seeds=[SEEDS[0]], template={"name": "harmful_arm", "params": {"conversion_scale": 0.3}}, experiment=FAST).tasks()
    (fails,) = _spec(seeds=[99], experiment=FAST).tasks()
    tasks = [ok_tasks[0], thin, fails, ok_tasks[1]]
    alone = {t.task_id: run_task(t) for t in ok_tasks}
    thin_alone = run_task(thin)
    assert thin_alone.refused is not None  # the model refuses it alone too

    real_rows = task_module.round_rows

    def round_rows(task, experiment):  # the marked task fails after its round 0 (a bug, not a refusal)
        if task.task_id == fails.task_id and experiment.round_idx == 0:
            raise RuntimeError("boom in round_rows")
        return real_rows(task, experiment)

    monkeypatch.setattr(task_module, "round_rows", round_rows)
    out = {o.task_id: o for o in run_lockstep(tasks)}
    assert out[thin.task_id].ok and out[thin.task_id].result.n_rounds == 0
    assert out[thin.task_id].result.refused == thin_alone.refused
    assert not out[fails.task_id].ok and "RuntimeError: boom in round_rows" in out[fails.task_id].error
    for t in ok_tasks:
        assert out[t.task_id].ok and _rows(out[t.task_id].result) == _rows(alone[t.task_id])


def test_batch_size_is_a_spec_field_outside_task_ids_and_skip_analysis_enters_them_only_when_set():
    base = _spec()
    two = _spec(batch_size=2)
    assert two.batch_size == 2 and base.batch_size == 1
    assert [t.task_id for t in two.tasks()] == [t.task_id for t in base.tasks()]
    assert parse_spec(two.to_dict()).batch_size == 2
    for bad in (0, 1.5, "2", True):
        with pytest.raises(ValueError, match="'batch_size' field"):
            _spec(batch_size=bad)
    ids = [t.task_id for t in base.tasks()]
    assert [t.task_id for t in _spec(experiment={"skip_analysis": []}).tasks()] == ids
    skip = _spec(experiment={"skip_analysis": ["policy_value", "stability"]})
    assert skip.tasks()[0].experiment_dict["skip_analysis"] == ["stability", "policy_value"]
    assert not set(t.task_id for t in skip.tasks()) & set(ids)
    with pytest.raises(ValueError, match="'experiment.skip_analysis' field"):
        _spec(experiment={"skip_analysis": ["bootstrap"]})


# ---- a Ray sweep ------------------------------------------------------------------------------


def test_ray_sweep_with_batch_size_2_writes_the_rows_each_task_gets_alone(tmp_path):
    """A real Ray sweep at batch_size 2 (one actor, one group of both tasks, fitted as one batch
    in the actor) records for each task exactly the rows run_task gives it alone in this process
    (the timing row aside), and a rerun resumes with nothing left to run."""
    import ray

    from sweeps.driver import run_sweep
    from sweeps.shards import read_records
    from sweeps.task import run_task

    spec = _spec(seeds=list(SEEDS[:2]), batch_size=2, actors={"count": 1, "num_cpus": 1}, output_dir=str(tmp_path / "b2"), experiment=FAST)
    alone = {t.task_id: json.loads(_rows(run_task(t))) for t in spec.tasks()}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 1024 * 1024)
    try:
        report = run_sweep(spec, tracking=False, progress=False)
        assert report.complete and report.n_completed == 2 and not report.failures
        again = run_sweep(spec, tracking=False, progress=False)  # resume: nothing left to run
        assert again.n_skipped == 2 and again.n_completed == 0
    finally:
        ray.shutdown()
    frame = read_records(tmp_path / "b2")
    assert set(frame["task_id"]) == set(alone)

    def norm(v):  # a shard stores None / lists as NaN / arrays
        if isinstance(v, np.ndarray):
            return v.tolist()
        v = v.item() if isinstance(v, np.generic) else v
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    for task_id, rows in alone.items():
        want = [r for r in rows if r.get("kind") != "timing"]
        got = frame[(frame["task_id"] == task_id) & (frame["kind"] != "timing")].to_dict("records")
        assert len(got) == len(want) > 0
        for kind in {r["kind"] for r in want}:  # every field the task wrote, rows in any order
            keys = sorted({k for r in want if r["kind"] == kind for k in r})
            as_set = lambda rs: sorted(json.dumps([norm(r.get(k)) for k in keys], default=str) for r in rs if r["kind"] == kind)  # noqa: E731
            assert as_set(got) == as_set(want), kind
