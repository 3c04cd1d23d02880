"""Decision rows of sweep tasks and their error rates (issue 22, item 6).

The truth bookkeeping on planted numbers; a real tiny ``run_task`` on the ``null_effect`` template
(every claim's truth is known there: no effect anywhere); the aggregate's rates on hand-made
decision rows whose rates are known, through real shards and a real MLflow store; the spec's
``stability_method`` and ``thresholds`` reaching the experiment, and task ids of specs without
them unchanged. No Ray: tasks run in this process.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from sweeps.decisions import DECISIONS, credible_segment_truth, true_effect
from sweeps.spec import parse_spec
from tests._config import TINY
from tests._specs import minimal_spec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy, inside MLflow

TINY_BCF = {k: getattr(TINY, k) for k in ("num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains", "bucket_min")}


# ---- the truth bookkeeping -----------------------------------------------------------------------

# E[Y(a) | x] of 4 visitors under control and two arms
PLANTED = np.array([
    [10.0, 12.0, 9.0],
    [20.0, 20.0, 26.0],
    [0.0, 1.0, 0.0],
    [30.0, 27.0, 30.0],
])


def test_true_effect_on_planted_numbers():
    # arm 1: effects 2, 0, 1, -3 -> 0; control mean (10 + 20 + 0 + 30) / 4 = 15
    all1 = true_effect(PLANTED, 1)
    assert (all1.effect, all1.control_mean, all1.relative, all1.n) == (0.0, 15.0, 0.0, 4)
    # arm 2: -1, 6, 0, 0 -> 1.25, relative 1.25 / 15
    assert true_effect(PLANTED, 2).relative == pytest.approx(1.25 / 15)
    seg = np.array([True, True, False, False])
    s1, s2 = true_effect(PLANTED, 1, seg), true_effect(PLANTED, 2, seg)
    assert (s1.effect, s1.control_mean, s1.n) == (1.0, 15.0, 2) and s1.relative == pytest.approx(1 / 15)
    assert s2.effect == 2.5 and s2.relative == pytest.approx(2.5 / 15)
    assert true_effect(PLANTED, 1, ~seg).effect == -1.0
    # a control mean of 0 has no relative scale: the effect in the metric's units
    zero = true_effect([[0.0, 0.5], [0.0, -0.1]], 1)
    assert zero.control_mean == 0.0 and zero.relative == pytest.approx(0.2) == zero.effect
    empty = true_effect(PLANTED, 1, np.zeros(4, dtype=bool))
    assert empty.n == 0 and math.isnan(empty.effect) and math.isnan(empty.relative)
    with pytest.raises(ValueError, match="'mask' parameter of true_effect"):
        true_effect(PLANTED, 1, [True, False])


def test_credible_segment_truth_on_planted_numbers():
    seg = np.array([True, True, False, False])
    # segment minus rest: arm 1 1 - (-1) = 2, arm 2 2.5 - 0 = 2.5 (the larger); scale |15|
    arm, diff, rel, c, right = credible_segment_truth(PLANTED, seg, 0.1)
    assert (arm, diff, c, right) == (2, 2.5, 15.0, True) and rel == pytest.approx(2.5 / 15)
    assert credible_segment_truth(PLANTED, seg, 0.2)[-1] is False  # 0.167 is not more than 0.2
    assert credible_segment_truth(PLANTED, np.ones(4, dtype=bool), 0.1)[-1] is None  # no rest to compare


# ---- spec fields -----------------------------------------------------------------------------------


def test_specs_without_the_new_fields_keep_their_task_ids():
    """Ids computed by the main branch before decision rows existed (commit 2235f90)."""
    plain = parse_spec({**minimal_spec("null_effect"), "bcf": {k: v for k, v in TINY_BCF.items() if k != "bucket_min"}})
    assert [t.task_id for t in plain.tasks()] == ["b288d52d37b968e1", "94f2f67108bc3643"]
    old = parse_spec({**minimal_spec("null_effect"), "experiment": {"max_segment_depth": 2, "min_segment_share": 0.2}})
    assert [t.task_id for t in old.tasks()] == ["430e98640a2d6e25", "89077863936384c5"]
    # an empty thresholds mapping changes nothing, so it changes no id; a real setting does
    same = parse_spec({**minimal_spec("null_effect"), "experiment": {"max_segment_depth": 2, "min_segment_share": 0.2, "thresholds": {}}})
    assert [t.task_id for t in same.tasks()] == ["430e98640a2d6e25", "89077863936384c5"]
    new = parse_spec({**minimal_spec("null_effect"), "experiment": {"max_segment_depth": 2, "min_segment_share": 0.2, "stability_method": "means"}})
    assert not {t.task_id for t in new.tasks()} & {t.task_id for t in old.tasks()}


def test_stability_method_and_thresholds_reach_the_experiment():
    from pytyche.contracts.results import DecisionThresholds
    from sweeps.task import build_experiment, task_thresholds

    spec = parse_spec({**minimal_spec("null_effect"), "experiment": {
        "stability_method": "posterior", "thresholds": {"min_effect": 0.02, "p_harmful_min": 0.8}}})
    assert parse_spec(spec.to_dict()) == spec
    task = spec.tasks()[0]
    exp = build_experiment(task)
    assert exp.stability_method == "posterior"
    assert exp.graduation_rule.thresholds == DecisionThresholds(min_effect=0.02, p_harmful_min=0.8) == task_thresholds(task)
    means = parse_spec({**minimal_spec("null_effect"), "experiment": {"stability_method": "means"}}).tasks()[0]
    assert build_experiment(means).stability_method == "means"
    assert task_thresholds(means) == DecisionThresholds()


@pytest.mark.parametrize(
    "experiment, field, expected",
    [
        ({"stability_method": "bootstrap"}, "experiment.stability_method", "one of 'means', 'posterior'"),
        ({"thresholds": [0.01]}, "experiment.thresholds", "a mapping"),
        ({"thresholds": {"min_efect": 0.01}}, "experiment.thresholds", "a mapping of DecisionThresholds fields"),
        ({"thresholds": {"p_better_min": 1.5}}, "experiment.thresholds.p_better_min", "a probability in [0, 1]"),
        ({"thresholds": {"tolerance": "small"}}, "experiment.thresholds.tolerance", "a finite number >= 0"),
        ({"thresholds": {"min_effect": True}}, "experiment.thresholds.min_effect", "a finite number >= 0"),
    ],
)
def test_bad_experiment_fields_are_named(experiment, field, expected):
    with pytest.raises(ValueError) as err:
        parse_spec({**minimal_spec("null_effect"), "experiment": experiment})
    assert f"'{field}' field of SweepSpec must be {expected}" in str(err.value)


# ---- a real task ---------------------------------------------------------------------------------------

REQUIRED = ["sample_size", "min_effect", "true_effect", "true_relative_effect", "true_control_mean"]
SUMMARY = ["p_positive", "p_better", "p_harmful", "expected_loss", "lift_mean", "lift_ci_lo", "lift_ci_hi"]


def test_run_task_on_a_null_template_records_every_claim(tmp_path):
    """Two rounds of a real (TINY) fit on null_effect with a non-default min_effect (so the
    summaries are recomputed under the task's thresholds). No arm has any effect, so every SHIP,
    graduation and STOP harm claim is wrong, every STOP futility claim right, and every segment
    is no different from the rest."""
    from sweeps.shards import DECISION_SCHEMA, read_records, write_shard
    from sweeps.task import run_task

    spec = parse_spec({
        "name": "nulldec", "templates": [{"name": "null_effect", "params": {"conversion_scale": 8.0}}],
        "replications": 1, "schedule": {"kind": "fixed", "args": {"per_round": 250, "n_rounds": 2}},
        "bcf": TINY_BCF, "families": ["ate"], "levels": [0.9],
        "experiment": {"thresholds": {"min_effect": 0.02}}, "output_dir": str(tmp_path),
    })
    (task,) = spec.tasks()
    result = run_task(task)
    assert result.refused is None and result.n_rounds == 2
    write_shard(tmp_path, task, result)
    dec = read_records(tmp_path, kinds=["decision"])
    assert set(dec.columns) >= set(DECISION_SCHEMA.names)
    assert set(dec["decision"]) <= set(DECISIONS) and set(dec["kind"]) == {"decision"}
    assert set(dec["template"]) == {"null_effect"} and set(dec["task_id"]) == {task.task_id}

    pop = dec[dec["segment_id"].isna()]
    # every round: one row per population claim for the one arm, fired or not
    counts = pop.groupby(["round_idx", "decision"]).size()
    assert counts.to_dict() == {(r, d): 1 for r in (0, 1) for d in ("graduation", "ship_population", "stop_futility", "stop_harm")}
    assert (pop["treatment"] == "treatment").all() and (pop["segment_share"] == 1.0).all()
    assert sorted(set(pop["sample_size"])) == [250, 500]
    claims = dec[dec["decision"] != "credible_segment"]
    assert np.isfinite(claims[REQUIRED + SUMMARY].to_numpy(dtype=float)).all()
    assert (dec["min_effect"] == 0.02).all()
    assert claims["fired"].map(type).eq(bool).all() and claims["right"].map(type).eq(bool).all()

    # the truth: no effect anywhere
    assert (claims["true_effect"] == 0.0).all() and (claims["true_control_mean"] > 0).all()
    right = dec.groupby("decision")["right"].agg(lambda s: set(s))
    assert right["ship_population"] == right["stop_harm"] == right["graduation"] == {False}
    assert right["stop_futility"] == {True}
    if "credible_segment" in right:
        assert right["credible_segment"] == {False}
        assert dec.loc[dec["decision"] == "ship_segment", "right"].eq(False).all()
    # the gates, read back from the recorded evidence (default thresholds but min_effect)
    ship = pop[pop["decision"] == "ship_population"]
    gate = (ship["expected_loss"] < 0.005) & (ship["p_positive"] > 0.95) & (ship["p_better"] > 0.80)
    assert (ship["fired"] == gate).all()
    harm = pop[pop["decision"] == "stop_harm"].set_index("round_idx")
    assert (harm["fired"] == ((harm["p_harmful"] > 0.9) & ~ship.set_index("round_idx")["fired"])).all()
    assert (pop.loc[pop["decision"] == "graduation", "fired"] == False).all()  # noqa: E712  (round 0 cannot be sustained)


# ---- the rates -----------------------------------------------------------------------------------------


def _row(decision, treatment, round_idx, fired, right, true_rel=0.0, segment_id=None):
    return {"kind": "decision", "round_idx": round_idx, "sample_size": 100 * (round_idx + 1), "decision": decision,
            "treatment": treatment, "segment_id": segment_id, "fired": fired, "right": right, "min_effect": 0.01,
            "true_effect": true_rel * 10.0, "true_relative_effect": true_rel, "true_control_mean": 10.0}


def planted_decisions(template: str, rep: int) -> list[dict]:
    """Two rounds of decision rows whose rates over 10 runs are known (see the test)."""
    rows = []
    for r in (0, 1):
        if template == "planted_null":  # one arm, no effect
            rows += [_row("ship_population", "t1", r, rep < 3 and r == 1, False),
                     _row("stop_harm", "t1", r, False, False),
                     _row("stop_futility", "t1", r, rep >= 3 and r == 1, True)]
            if rep < 4 and r == 1:
                rows.append(_row("ship_segment", "t1", r, rep == 0, False, segment_id=5))
            if rep < 5 and r == 1:
                rows.append(_row("credible_segment", "t1", r, rep < 3, rep == 2, segment_id=5))
        else:  # "planted_mixed": a better arm and a harmful arm
            good_fired = (rep == 0) or (rep == 1 and r == 1)
            rows += [_row("ship_population", "good", r, good_fired, True, 0.05),
                     _row("stop_harm", "good", r, False, False, 0.05),
                     _row("ship_population", "bad", r, rep == 9 and r == 0, False, -0.05),
                     _row("stop_harm", "bad", r, rep < 6 and r == 1, True, -0.05)]
    return rows


def test_decision_rates_on_planted_rows(tmp_path, mlflow_uri, capsys):

    from mlflow.tracking import MlflowClient
    from scipy.stats import binomtest

    from sweeps.aggregate import aggregate
    from sweeps.decision_rates import wilson_interval
    from sweeps.shards import write_shard
    from sweeps.task import TaskResult
    from sweeps.tracking import SweepTracker

    out = tmp_path / "sweep"
    spec = parse_spec({**minimal_spec("planted_null"), "templates": [{"name": "planted_null"}, {"name": "planted_mixed"}],
                       "replications": 10, "output_dir": str(out)})
    out.mkdir()
    (out / "spec.yaml").write_text(spec.to_yaml())
    tracker = SweepTracker(spec, out, tracking_uri=mlflow_uri)
    run_id = tracker.start(n_tasks=20)
    for t in spec.tasks():
        result = TaskResult(task_id=t.task_id, records=tuple(planted_decisions(t.template, t.replication)), seconds=0.0, n_rounds=2)
        write_shard(out, t, result)
    tracker.finish()

    res = aggregate(out, fit=False, tracking_uri=mlflow_uri)
    rates = res.decision_rates.set_index("template")
    null, mixed = rates.loc["planted_null"], rates.loc["planted_mixed"]
    assert null["n_runs"] == mixed["n_runs"] == 10
    # 3 of 10 null runs shipped the no-effect arm; Wilson 95% interval of 3/10 by hand
    assert (null["false_ship_population"], null["false_ship_population_k"], null["false_ship_population_n"]) == (0.3, 3, 10)
    assert (null["false_ship_population_lo"], null["false_ship_population_hi"]) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    ci = binomtest(3, 10).proportion_ci(0.95, method="wilson")
    assert wilson_interval(3, 10) == pytest.approx((ci.low, ci.high))
    # segment SHIP: 4 runs had a no-effect segment, 1 shipped it
    assert (null["false_ship_segment"], null["false_ship_segment_n"]) == (0.25, 4)
    # credible segments: 3 runs had one, 2 of them wrong: 2 of all 10 runs
    assert (null["false_credible_segment"], null["false_credible_segment_n"]) == (0.2, 10)
    # no harmful, no better arm in the null template: no rate, not a zero
    assert null["harm_detection_n"] == null["power_n"] == 0 and math.isnan(null["power"]) and math.isnan(null["harm_detection"])
    # mixed: 'bad' shipped once (run 9), stopped for harm in 6 runs; 'good' shipped in 2 runs
    assert (mixed["false_ship_population"], mixed["false_ship_population_n"]) == (0.1, 10)
    assert (mixed["harm_detection"], mixed["harm_detection_n"]) == (0.6, 10)
    assert (mixed["power"], mixed["power_k"], mixed["power_n"]) == (0.2, 2, 10)
    assert mixed["rounds_to_ship_mean"] == 1.5 and mixed["sample_size_to_ship_mean"] == 150.0  # rounds 1 and 2
    assert mixed["false_credible_segment"] == 0.0 and mixed["false_ship_segment_n"] == 0

    saved = json.loads(res.decision_rates_json.read_text())
    assert saved["planted_null"]["false_ship_population"] == {"rate": 0.3, "lo": pytest.approx(0.1078, abs=1e-4),
                                                               "hi": pytest.approx(0.6032, abs=1e-4), "k": 3, "n": 10}
    assert saved["planted_null"]["power"]["rate"] is None and saved["planted_mixed"]["rounds_to_ship_mean"] == 1.5
    assert (out / "decision_rates.csv").is_file()

    metrics = MlflowClient(mlflow_uri).get_run(run_id).data.metrics
    assert metrics["decisions/planted_null/false_ship_population"] == 0.3
    assert metrics["decisions/planted_null/false_ship_population_lo"] == pytest.approx(0.1078, abs=1e-4)
    assert metrics["decisions/planted_null/false_ship_population_n"] == 10
    assert metrics["decisions/planted_mixed/power"] == 0.2 and metrics["decisions/planted_mixed/harm_detection"] == 0.6
    assert metrics["decisions/planted_mixed/rounds_to_ship_mean"] == 1.5
    assert "decisions/planted_null/power" not in metrics  # no denominator: not logged
    arts = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(run_id, "aggregate")}
    assert "aggregate/decision_rates.json" in arts

    from sweeps.cli import main

    assert main(["aggregate", str(out), "--no-fit", "--no-tracking"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"planted_null +false_ship_population +0\.300 +\[0\.108, 0\.603\] +3/10\n", text), text
    assert "decision rates: " in text


def test_summaries_under_other_thresholds_match_the_analysis_where_they_must():
    """One real round: rows read under a non-default min_effect (recomputed from the posterior)
    agree with the analysis's own summaries (default thresholds) on everything min_effect does not
    touch, and P(better) can only grow as min_effect falls to 0."""
    from pytyche.contracts.results import DecisionThresholds
    from sweeps.decisions import decision_rows
    from sweeps.task import build_experiment

    spec = parse_spec({
        "name": "nulldec", "templates": [{"name": "null_effect", "params": {"conversion_scale": 8.0}}],
        "replications": 1, "schedule": {"kind": "fixed", "args": {"per_round": 500, "n_rounds": 1}}, "bcf": TINY_BCF,
    })
    with pytest.warns(Warning):  # uncalibrated
        e = next(build_experiment(spec.tasks()[0]))
    ours, theirs = decision_rows(e, DecisionThresholds(min_effect=0.0)), decision_rows(e, DecisionThresholds())
    assert [(r["decision"], r["segment_id"], r["treatment"]) for r in ours] == [(r["decision"], r["segment_id"], r["treatment"]) for r in theirs]
    for a, b in zip(ours, theirs):
        if a["decision"] == "credible_segment":
            continue
        for col in ("p_positive", "lift_mean", "lift_ci_lo", "lift_ci_hi", "true_effect"):
            assert a[col] == pytest.approx(b[col], abs=1e-9), col
        assert a["p_better"] >= b["p_better"] and a["p_harmful"] >= b["p_harmful"]
    rec = e.analysis.recommendations["treatment"]
    (pop,) = [r for r in theirs if r["decision"] == "ship_population"]
    assert (pop["p_better"], pop["expected_loss"]) == (rec.p_better, rec.expected_loss)


def test_one_template_at_several_settings_gets_one_rate_row_per_setting():
    """A held-out spec runs clustered_realistic at no effect and at its planted effect: their
    rates must not pool (a planted run has no false SHIP to count, a null one no power), and the
    labels stay valid MLflow metric names."""
    import pandas as pd

    from sweeps.decision_rates import decision_rates, run_labels

    rows = []
    for params, rel in (('{"effect_scale":0.0}', 0.0), ('{"effect_scale":1.0}', 0.05)):
        for rep in range(4):
            for r in (0, 1):
                row = _row("ship_population", "t1", r, rep == 0 and r == 1, rel > 0, rel)
                rows.append({**row, "template": "clustered", "params": params, "task_id": f"{params}{rep}"})
    rows.append({**_row("ship_population", "t1", 0, False, False), "template": "other", "params": '{"lift":[0.0,0.1]}', "task_id": "o"})
    frame = pd.DataFrame(rows)
    labels = run_labels(frame)
    assert sorted(set(labels)) == ["clustered effect_scale-0.0", "clustered effect_scale-1.0", "other"]
    assert all(re.fullmatch(r"[A-Za-z0-9_. /-]+", v) for v in labels)
    # parameters drawn per replication (a population) are not settings: its runs pool
    pop = frame.assign(params=[f'{{"effect_scale":{i / 10},"n_arms":{2 + i % 2}}}' for i in range(len(frame))],
                       draws=['{"effect_scale":0.5}'] * len(frame), template="structured")
    assert set(run_labels(pop)) == {"structured n_arms-2", "structured n_arms-3"}
    assert set(run_labels(pop.assign(params='{"effect_scale":0.1,"n_arms":3}'))) == {"structured"}
    rates = decision_rates(frame).set_index("template")
    assert rates.loc["clustered effect_scale-0.0", "false_ship_population_k"] == 1
    assert rates.loc["clustered effect_scale-0.0", "power_n"] == 0
    assert rates.loc["clustered effect_scale-1.0", "power_k"] == 1 and rates.loc["clustered effect_scale-1.0", "false_ship_population_n"] == 0
