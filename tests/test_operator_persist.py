"""Real-data operator workflow with real (tiny) BCF fits: save/load, joinable outputs, SRM and
policy value inside the loop.

One module-scoped run (round 0, save, round 1) is shared: the loaded experiment's round 1 must
equal the uninterrupted round 1 exactly (same seed, same generator).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from pytyche.bcf.fingerprint import model_fingerprint

from dgps import make_generator
from pytyche.contracts import ObservedExperimentData, VariantData, VisitorSchema
from pytyche.experiment import FixedSchedule, SampleRatioMismatchWarning, SequentialExperiment, sequential_experiment
from pytyche.experiment import persist
from pytyche.experiment.persist import SaveFormatError
from pytyche.experiment.rounds import recommended_arms

from _config import TINY

pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")


class WithIds:
    """A sim generator whose visitors carry the caller's ids; the caller keeps its own table."""

    def __init__(self, seed: int, drop_treated: float = 0.0):
        self.gen = make_generator("clustered_realistic", seed=seed)
        self.table: list[pd.DataFrame] = []
        self.drop_treated = drop_treated

    @property
    def treatments(self):
        return self.gen.treatments

    def __call__(self, round_idx, plan):
        obs, truth = self.gen(round_idx, plan)
        variants, keep = [], []
        for j, v in enumerate(obs.variants):
            df = v.visitors.assign(visitor_id=[f"r{round_idx}-{v.name}-{i}" for i in range(v.n)])
            mask = np.ones(v.n, dtype=bool)
            if self.drop_treated and j > 0:  # a platform losing part of the treated traffic: an SRM
                mask = np.random.default_rng(round_idx).random(v.n) >= self.drop_treated
            variants.append(VariantData(v.name, df[mask].reset_index(drop=True)))
            keep.append(mask)
        keep_all = np.concatenate(keep)
        truth = truth.take(np.flatnonzero(keep_all))
        schema = VisitorSchema(obs.schema.feature_types, obs.schema.outcome, "visitor_id")
        observed = ObservedExperimentData(obs.experiment_id, obs.metric, tuple(variants), schema, obs.round_idx)
        ids = observed.visitor_ids()
        eo = truth.expected_outcome
        self.table.append(pd.DataFrame({"visitor_id": ids, **{f"true_cate_{t}": eo[:, a] - eo[:, 0] for a, t in enumerate(truth.treatments) if a > 0}}))
        return observed, truth


def _exp(gen, rounds=3):
    return sequential_experiment(generator=gen, schedule=FixedSchedule(1500, rounds), treatments=list(gen.treatments), bcf_config=TINY, seed=4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gen = WithIds(seed=3)
    exp = _exp(gen)
    first = exp.advance()
    base = tmp_path_factory.mktemp("saves")
    plain = exp.save(base / "plain")
    with_draws = exp.save(base / "draws", draws=True)
    second = exp.advance()
    return {"exp": exp, "gen": gen, "first": first, "second": second, "plain": plain, "draws": with_draws, "base": base}


def _same_round(a, b):
    np.testing.assert_array_equal(a.posterior.outcome_samples, b.posterior.outcome_samples)
    assert a.fit_seed == b.fit_seed
    assert a.next_plan.to_json() == b.next_plan.to_json()
    assert a.round.plan.to_json() == b.round.plan.to_json()
    assert a.cell_scores == b.cell_scores
    assert a.srm == b.srm
    assert a.policy_value.to_dict() == b.policy_value.to_dict()
    assert a.truth_comparison == b.truth_comparison
    assert [s.rounds_sustained for s in a.ship_signals] == [s.rounds_sustained for s in b.ship_signals]
    pd.testing.assert_frame_equal(a.analysis.cate_frame(), b.analysis.cate_frame())


def test_loaded_experiment_continues_exactly_like_the_uninterrupted_run(run):
    loaded = SequentialExperiment.load(run["plain"], generator=WithIds(seed=3))
    assert loaded.current_round_idx == 1 and loaded.seed == 4 and loaded.treatments == run["exp"].treatments
    assert loaded.next_recommendation.to_json() == run["first"].next_plan.to_json()
    pd.testing.assert_frame_equal(loaded.cumulative_data.visitors(), run["first"].observed.visitors())
    # the restored history is inspectable without the draws
    h0 = loaded.history[0]
    assert h0.posterior is None and h0.srm == run["first"].srm and h0.truth_comparison == run["first"].truth_comparison
    assert h0.analysis.recommendations == run["first"].analysis.recommendations
    assert [str(s.rule) for s in h0.segments] == [str(s.rule) for s in run["first"].segments]
    pd.testing.assert_frame_equal(h0.analysis.cate_frame(), run["first"].analysis.cate_frame())
    with pytest.raises(ValueError, match="draws=True"):
        h0.analysis.cate_frame(0.5)
    # the restored policy tree routes like the fitted one
    feats = run["first"].observed.features_frame()
    np.testing.assert_array_equal(h0.policy_tree.leaf_of(feats), run["first"].policy_tree.leaf_of(feats))
    second = loaded.advance()
    _same_round(second, run["second"])
    assert loaded.summary == run["exp"].summary


def test_save_with_draws_restores_the_posterior(run):
    loaded = SequentialExperiment.load(run["draws"], generator=WithIds(seed=3))
    p0, f0 = loaded.history[0].posterior, run["first"].posterior
    np.testing.assert_array_equal(p0.outcome_samples, f0.outcome_samples)
    assert type(p0) is type(f0) and p0.n_chains == f0.n_chains
    pd.testing.assert_frame_equal(loaded.history[0].analysis.cate_frame(0.5), run["first"].analysis.cate_frame(0.5))


def test_cate_frame_joins_on_the_callers_ids(run):
    e = run["second"]
    frame = e.analysis.cate_frame()
    treatments = e.posterior.treatments
    assert list(frame.columns) == ["visitor_id", "assigned", "treatment", "cate_mean", "cate_lower", "cate_upper"]
    assert len(frame) == e.observed.n_visitors * (len(treatments) - 1)
    assert (frame["cate_lower"] <= frame["cate_mean"]).all() and (frame["cate_mean"] <= frame["cate_upper"]).all()
    # the caller's own table, in the caller's own (shuffled) row order
    caller = pd.concat(run["gen"].table[:2], ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)
    long = caller.melt(id_vars="visitor_id", var_name="treatment", value_name="true_cate")
    long["treatment"] = long["treatment"].str.removeprefix("true_cate_")
    joined = frame.merge(long, on=["visitor_id", "treatment"], how="inner", validate="one_to_one")
    assert len(joined) == len(frame)
    rmse = float(np.sqrt(np.mean((joined["cate_mean"] - joined["true_cate"]) ** 2)))
    # the aligned computation (truth re-indexed into the posterior's row order by the loop)
    assert rmse == pytest.approx(e.truth_comparison.cate_rmse, rel=1e-9)
    # the check is not vacuous: matching by position instead of by id would pair most rows of the
    # frame with another visitor's truth (the caller's rows are in another order)
    by_position = caller[[f"true_cate_{t}" for t in treatments[1:]]].to_numpy().reshape(-1)
    assert np.mean(~np.isclose(joined["true_cate"].to_numpy(), by_position)) > 0.5


def test_policy_value_is_on_every_round_and_matches_the_truth_bookkeeping(run):
    for e in (run["first"], run["second"]):
        pv = e.policy_value
        assert pv is not None and pv.n == e.observed.n_visitors and pv.n_folds == 5
        rec = recommended_arms(e.posterior, e.policy_tree, e.next_plan.active_treatments)
        # the scored policy is cross-fitted (learned on the other folds), only compared with rec
        assert pv.policy == "cross-fitted" and pv.agreement == pytest.approx(float(np.mean(pv.arms == rec)))
        active = [list(e.posterior.treatments).index(t) for t in e.next_plan.active_treatments]
        assert set(np.unique(pv.arms)) <= set(active)
        for v in (pv.value, pv.value_se, pv.vs_control, pv.vs_control_se, pv.vs_uniform, pv.vs_uniform_se):
            assert np.isfinite(v)
        lo, hi = pv.vs_control_interval()
        assert lo < pv.vs_control < hi and pv.value - pv.control_value == pytest.approx(pv.vs_control)
        tv = pv.true_values(e.cumulative_truth)
        eo = np.asarray(e.cumulative_truth.expected_outcome)
        assert tv["value"] == pytest.approx(float(eo[np.arange(pv.n), pv.arms].mean()))
        assert np.isfinite(pv.in_sample_vs_control) and np.isfinite(pv.in_sample_vs_control_se)
        assert tv["uniform_value"] == pytest.approx(e.truth_comparison.rpv_uniform)
        assert pv.n_unsupported == 0
    assert "Off-policy value of the recommended policy" in run["exp"].summary
    assert "Sample ratio check passed" in run["exp"].summary


def test_a_planted_sample_ratio_mismatch_warns_and_shows_in_the_summary():
    exp = _exp(WithIds(seed=5, drop_treated=0.25), rounds=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = exp.advance()
    srm = [w for w in caught if issubclass(w.category, SampleRatioMismatchWarning)]
    assert len(srm) == 1 and "Round 0 failed the sample ratio mismatch check" in str(srm[0].message)
    assert e.srm.flagged and e.srm.p_value < 1e-3
    assert "Sample ratio mismatch: FLAGGED" in exp.summary


# ---- atomicity and clear errors (no fits beyond the shared run) ---------------------------------


def _copy(run, name):
    dst = run["base"] / name
    shutil.copytree(run["plain"], dst)
    return dst


def _current(path):
    return path / json.loads((path / "CURRENT").read_text())["snapshot"]


def test_a_hostile_saved_experiment_never_imports_the_module_it_names(run, tmp_path, monkeypatch):
    """A save whose plan (with its manifest re-hashed, as an attacker would) names a module with
    side effects is refused on load without importing it."""
    import sys

    from pytyche._files import file_sha256

    (tmp_path / "pytyche_hostile_save.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported.marker').write_text('ran')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _copy(run, "hostile")
    snap = _current(path)
    hist = json.loads((snap / "history.json").read_text())
    hist["rounds"][0]["next_plan"]["cells"][0]["policy"] = {"kind": "custom", "class": "pytyche_hostile_save:Evil", "params": {}}
    (snap / "history.json").write_text(json.dumps(hist))
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["files"]["history.json"] = file_sha256(snap / "history.json")
    (snap / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="'pytyche_hostile_save:Evil'.*never imports the code it names"):
        SequentialExperiment.load(path, generator=WithIds(seed=3))
    assert "pytyche_hostile_save" not in sys.modules and not (tmp_path / "imported.marker").exists()


def test_a_crash_mid_save_leaves_the_previous_save_intact(run, monkeypatch):
    path = _copy(run, "crash")
    before = sorted(p.name for p in path.iterdir())
    calls = {"n": 0}
    real = persist._Writer.parquet

    def dying(self, rel, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, rel, frame)

    monkeypatch.setattr(persist._Writer, "parquet", dying)
    with pytest.raises(OSError, match="disk full"):
        run["exp"].save(path)  # two rounds now: would replace the one-round save
    monkeypatch.undo()
    assert sorted(p.name for p in path.iterdir()) == before  # no half snapshot left behind
    loaded = SequentialExperiment.load(path, generator=WithIds(seed=3))
    assert loaded.current_round_idx == 1
    # a hard crash (no cleanup) leaves a temporary snapshot and a stray one: both are ignored ...
    (path / ".tmp-snapshot-00002-deadbeef").mkdir()
    (path / ".tmp-snapshot-00002-deadbeef" / "config.json").write_text("{half")
    shutil.copytree(_current(path), path / "snapshot-00009-notcurrent")
    (path / "snapshot-00009-notcurrent" / "config.json").write_text("garbage")
    assert SequentialExperiment.load(path, generator=WithIds(seed=3)).current_round_idx == 1
    # ... and the next successful save replaces everything
    run["exp"].save(path)
    names = sorted(p.name for p in path.iterdir())
    assert len(names) == 2 and names[0] == "CURRENT" and names[1].startswith("snapshot-00002-")
    assert SequentialExperiment.load(path, generator=WithIds(seed=3)).current_round_idx == 2


def test_corrupt_partial_and_newer_saves_fail_naming_the_file(run):
    gen = WithIds(seed=3)
    path = _copy(run, "corrupt")
    data = next((_current(path) / "data").rglob("*.parquet"))
    data.write_bytes(data.read_bytes()[:-7] + b"garbage")
    with pytest.raises(SaveFormatError, match=r"corrupt: the file 'data/round_000/variant_\d.parquet' does not match"):
        SequentialExperiment.load(path, generator=gen)
    path = _copy(run, "partial")
    (_current(path) / "history.json").unlink()
    with pytest.raises(SaveFormatError, match="partial: the file 'history.json' is missing"):
        SequentialExperiment.load(path, generator=gen)
    path = _copy(run, "newer")
    m = _current(path) / "manifest.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "format_version": 2}))
    with pytest.raises(SaveFormatError, match="newer pytyche.*format version 2.*reads format version 1"):
        SequentialExperiment.load(path, generator=gen)
    path = _copy(run, "nocurrent")
    (path / "CURRENT").unlink()
    with pytest.raises(SaveFormatError, match="no 'CURRENT' file"):
        SequentialExperiment.load(path, generator=gen)
    with pytest.raises(FileNotFoundError, match="names no directory"):
        SequentialExperiment.load(run["base"] / "nowhere", generator=gen)
    foreign = run["base"] / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        run["exp"].save(foreign)
    assert os.listdir(foreign) == ["notes.txt"]


# ---- the stability method a save records ---------------------------------------------------------


def test_a_save_round_trips_its_stability_method(run, tmp_path):
    cfg = json.loads((_current(run["plain"]) / "config.json").read_text())
    assert run["exp"].stability_method == "posterior" and cfg["stability_method"] == "posterior"  # the default, recorded
    assert run["exp"].ship_spending.method == "bonferroni" == cfg["ship_spending"]
    assert run["exp"].ship_spending.over_arms is True is cfg["ship_spending_over_arms"]
    loaded = SequentialExperiment.load(run["plain"], generator=WithIds(seed=3))
    assert loaded.stability_method == "posterior"
    assert loaded.ship_spending == run["exp"].ship_spending
    assert loaded.history[0].analysis.thresholds == run["first"].analysis.thresholds  # restored from the saved decisions
    assert loaded.history[0].policy_tree.stability_method == run["first"].policy_tree.stability_method == "posterior"
    # the other method, on an experiment saved before its first round (no fit needed)
    gen = WithIds(seed=3)
    means = sequential_experiment(generator=gen, schedule=FixedSchedule(1500, 3), treatments=list(gen.treatments),
                                  bcf_config=TINY, seed=4, stability_method="means")
    path = means.save(tmp_path / "means")
    assert json.loads((_current(path) / "config.json").read_text())["stability_method"] == "means"
    assert SequentialExperiment.load(path, generator=WithIds(seed=3)).stability_method == "means"


def test_a_save_that_records_no_stability_method_loads_with_means(run):
    """A save written before config.json recorded the method (and before each saved tree did) ran
    with "means", the default then: it loads with "means", its restored trees say so, and its next
    round scores with "means". It also predates SHIP spending, and its next round decides at the
    single-look gate it always used. The edited files are re-hashed into the manifest, as a save from
    that time would have them."""
    from pytyche._files import file_sha256

    path = _copy(run, "legacy")
    snap = _current(path)
    cfg = json.loads((snap / "config.json").read_text())
    del cfg["stability_method"], cfg["ship_spending"], cfg["ship_spending_over_arms"]
    (snap / "config.json").write_text(json.dumps(cfg))
    hist = json.loads((snap / "history.json").read_text())
    for r in hist["rounds"]:
        del r["analysis"]["policy_tree"]["stability_method"], r["model"]
    (snap / "history.json").write_text(json.dumps(hist))
    manifest = json.loads((snap / "manifest.json").read_text())
    for name in ("config.json", "history.json"):
        manifest["files"][name] = file_sha256(snap / name)
    (snap / "manifest.json").write_text(json.dumps(manifest))

    # and before model fingerprints: loading says its rounds' model is unrecorded
    with pytest.warns(persist.SavedModelWarning, match="model version unrecorded.*fits model version 3"):
        loaded = SequentialExperiment.load(path, generator=WithIds(seed=3))
    assert loaded.round_models == [None] * len(loaded.history)
    assert loaded.stability_method == "means" == persist.LEGACY_STABILITY_METHOD
    assert loaded.history[0].policy_tree.stability_method == "means"
    assert ", means score" in loaded.summary
    nxt = loaded.advance()
    assert nxt.policy_tree.stability_method == "means"
    # nor did it spend the SHIP gate's error: every round decides at p_positive_min
    assert loaded.ship_spending.method == "none" == persist.LEGACY_SHIP_SPENDING
    assert loaded.ship_spending.over_arms is False
    assert nxt.analysis.thresholds.p_positive_min == 0.95
    assert loaded.round_models[-1] == model_fingerprint(TINY)  # the new round: the current model


@pytest.mark.parametrize("field, value", [("model", "version 3"), ("model", {"version": "3"}), ("skip_analysis", "stability"),
                                          ("ship_spending_over_arms", "yes"), ("ship_spending", "holm")])
def test_a_mistyped_model_skip_analysis_or_spending_is_a_save_format_error(run, field, value):
    from pytyche._files import file_sha256

    path = _copy(run, f"bad-{field}-{type(value).__name__}")
    snap = _current(path)
    if field == "model":
        hist = json.loads((snap / "history.json").read_text())
        hist["rounds"][0]["model"] = value
        (snap / "history.json").write_text(json.dumps(hist))
        name = "history.json"
    else:
        cfg = json.loads((snap / "config.json").read_text())
        cfg[field] = value
        (snap / "config.json").write_text(json.dumps(cfg))
        name = "config.json"
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["files"][name] = file_sha256(snap / name)
    (snap / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(persist.SaveFormatError, match=field):
        SequentialExperiment.load(path, generator=WithIds(seed=3))


def test_a_save_says_which_model_fitted_each_round(run, monkeypatch):
    """Each saved round records its model fingerprint; loading under the same model is silent, and
    loading after a model change keeps the saved rounds' model and warns, naming both versions."""
    import warnings

    from pytyche.bcf import fingerprint

    path = _copy(run, "models")
    with warnings.catch_warnings():
        warnings.simplefilter("error", persist.SavedModelWarning)
        loaded = SequentialExperiment.load(path, generator=WithIds(seed=3))
    assert loaded.round_models == [model_fingerprint(TINY)] * len(loaded.history)
    assert loaded.round_models[0]["version"] == fingerprint.MODEL_VERSION
    monkeypatch.setattr(fingerprint, "MODEL_VERSION", fingerprint.MODEL_VERSION + 1)
    monkeypatch.setitem(fingerprint.MODEL_HISTORY, fingerprint.MODEL_VERSION, "a later model")
    with pytest.warns(persist.SavedModelWarning, match=r"model version 3 .*fits model version 4 \(a later model\)"):
        later = SequentialExperiment.load(path, generator=WithIds(seed=3))
    assert [m["version"] for m in later.round_models] == [3] * len(later.history)
