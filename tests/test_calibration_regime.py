"""Calibration regimes that mean what changes coverage: MCMC settings in the regime, sample-size
bands from 1k to 1M with a stated behaviour beyond the data, legacy artifacts, the automatic
registry pick (``Calibration.from_sweep("auto")``, also in a real sequential experiment) and the
fit-time observables every coverage record carries.

Artifacts are small synthetic corrections fitted on binomial records with a planted width ratio
(see ``records``) and written to temporary registries.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr, ndtri

import pytyche as pt
import pytyche.calibrate as pc
from pytyche.bcf.config import GPUBCFConfig
from pytyche.calibrate import (
    AutoCalibrationFallbackWarning,
    Calibration,
    CalibrationExtrapolationWarning,
    LayeredCalibrationCorrection,
    LegacyCalibrationWarning,
    apply_calibration,
    coverage_records,
)
from pytyche.contracts import CalibrationRecord, CalibrationTruth, ClaimLevel, make_observed
from tests._config import TINY
from tests._data import PlantedPosterior

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MCMC = {"num_trees_mu": 20, "num_trees_tau": 10, "num_burnin": 20, "num_draws": 20, "num_chains": 1}


def z(q):
    return ndtri((1.0 + np.asarray(q, dtype=float)) / 2.0)


def records(ratio, *, reps=12, n_targets=400, sample_size=3000, metric="m", k=2, pooling="none", mcmc=MCMC,
            seed=0, calibrated=False, template="t"):
    """Coverage records of posteriors whose sd is ``1/ratio`` of the truth's spread:
    coverage ~ Binomial(n_targets, 2 Phi(z(q) / ratio) - 1) / n_targets."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(reps):
        for q in LEVELS:
            c = rng.binomial(n_targets, 2 * ndtr(z(q) / ratio) - 1) / n_targets
            out.append(CalibrationRecord(
                r, 0, "cate", q, c, n_targets, 1.0, metric, k, pooling, sample_size, template, f"{template}{seed}-{r}",
                **(mcmc or {}), calibrated=calibrated,
            ))
    return out


@dataclass(frozen=True)
class Post(PlantedPosterior):
    """A planted posterior with its fit's ``config``: what apply_calibration and coverage_records read."""

    config: GPUBCFConfig = TINY


def make_post(n_per_arm=50, k=2, metric="m", config=TINY, seed=0, binary=False, hurdle=False):
    """A planted posterior; its outcome is continuous, binary, or (``hurdle``) zero-inflated
    revenue with the joint pooling."""
    rng = np.random.default_rng(seed)
    names = ["control"] + [f"t{i}" for i in range(1, k)]
    n = n_per_arm * k
    if hurdle:
        y = np.where(rng.uniform(size=n) < 0.1, rng.lognormal(3.0, 0.6, n), 0.0)
    else:
        y = (rng.uniform(size=n) < 0.3).astype(float) if binary else rng.normal(5.0, 2.0, n)
    frame = pd.DataFrame({"x": rng.uniform(size=n), "outcome": y, "variant": np.repeat(names, n_per_arm)})
    obs = make_observed(frame, variants=names, experiment_id="e", metric=metric)
    return Post(obs, rng.normal(size=(n, 40, k)), config=config, pooling="joint" if hurdle else None)


def planted_validation(ratio, families=("cate",), n_datasets=40, sd=0.05):
    """A held-out validation in which the planted ratio shows: raw coverage ``2 Phi(z(q) / ratio)
    - 1`` at every level, calibrated coverage at nominal (what ``validate --write`` records)."""
    rows = [{"family": f, "nominal": q,
             "raw": {"mean": float(2 * ndtr(z(q) / ratio) - 1), "sd": sd, "n_datasets": n_datasets},
             "calibrated": {"mean": q, "sd": sd, "n_datasets": n_datasets}} for f in families for q in LEVELS]
    return {"templates": ["held_out"], "n_datasets": n_datasets, "levels": rows}


def artifact(tmp_path, name, ratio=1.5, validated=True, **kw):
    """A synthetic artifact; ``validated``: with a planted held-out validation that supports it."""
    fit_kw = {k: kw.pop(k) for k in ("beyond_data", "band_edges", "metric_family") if k in kw}
    recs = records(ratio, **kw)
    r0 = recs[0]
    prov = {"validation": planted_validation(ratio)} if validated else None
    corr = LayeredCalibrationCorrection.fit(recs, r0.metric, r0.n_treatments, r0.pooling, prov, min_units=5, **fit_kw)
    return corr.to_json(tmp_path / f"{name}.json"), corr


# ---- MCMC settings in the regime ---------------------------------------------------------------


def test_mcmc_settings_are_part_of_the_regime():
    corr = LayeredCalibrationCorrection.fit(records(1.5), "m", 2, "none", min_units=5)
    assert corr.mcmc == MCMC  # read from the records
    cal = Calibration.from_correction(corr, name="art")
    post = make_post()
    assert cal.applies_to(post) and cal.applies_to(post.observed, "none", TINY)
    assert apply_calibration(post, cal).calibration is cal
    # burn-in is recorded but does not shape interval width: not checked
    assert cal.applies_to(replace(post, config=replace(TINY, num_burnin=500)))
    other = replace(post, config=replace(TINY, num_trees_tau=50, num_draws=250))
    assert cal.mismatches(other) == ["num_trees_tau", "num_draws"] and not cal.applies_to(other)
    with pytest.raises(ValueError, match="must match the posterior's regime") as err:
        apply_calibration(other, cal)
    msg = str(err.value)
    assert "num_trees_tau: calibration fitted on 10, posterior has 50" in msg
    assert "num_draws: calibration fitted on 20, posterior has 250" in msg and "num_trees_mu" not in msg
    # metric/K/pooling keep their message and combine with the MCMC ones
    wrong = make_post(k=3, config=replace(TINY, num_chains=2))
    with pytest.raises(ValueError, match=r"mismatched n_treatments, num_chains \(n_treatments: calibration fitted on 2, data has 3; num_chains: calibration fitted on 1, posterior has 2\)"):
        apply_calibration(wrong, cal)
    # observed data alone (no config) checks metric, K and pooling only: the seed's applies_to(observed)
    assert cal.applies_to(other.observed)


def test_fit_takes_one_mcmc_setting_and_leaves_calibrated_records_out():
    mixed = records(1.5) + records(1.2, mcmc={**MCMC, "num_trees_mu": 200}, seed=1)
    with pytest.raises(ValueError, match=r"'records' parameter of LayeredCalibrationCorrection.fit must be records of one MCMC setting"):
        LayeredCalibrationCorrection.fit(mixed, "m", 2, "none")
    picked = LayeredCalibrationCorrection.fit(mixed, "m", 2, "none", mcmc={**MCMC, "num_trees_mu": 200}, min_units=5)
    assert picked.mcmc["num_trees_mu"] == 200 and picked.provenance["record_counts"]["total"] == 12 * len(LEVELS)
    with pytest.raises(ValueError, match=r"'mcmc' parameter of LayeredCalibrationCorrection.fit"):
        LayeredCalibrationCorrection.fit(mixed, "m", 2, "none", mcmc={"num_trees_mu": 200})
    # records of calibrated intervals (a validation sweep) never feed a correction
    with_val = records(1.5) + records(1.0, calibrated=True, seed=2)
    corr = LayeredCalibrationCorrection.fit(with_val, "m", 2, "none", min_units=5)
    assert corr.provenance["record_counts"]["calibrated_left_out"] == 12 * len(LEVELS)
    assert corr.provenance["record_counts"]["total"] == 12 * len(LEVELS)
    # records without MCMC fields (older shards) give an artifact whose MCMC settings are unknown
    assert LayeredCalibrationCorrection.fit(records(1.5, mcmc=None), "m", 2, "none").mcmc is None


# ---- legacy artifacts ----------------------------------------------------------------------------


def test_legacy_artifact_loads_with_a_warning_and_unchecked_mcmc(tmp_path):
    path, corr = artifact(tmp_path, "new")
    d = json.loads(path.read_text())
    d["format"] = "pytyche.calibration/1"
    for key in ("mcmc", "beyond_data", "bands_with_data"):
        del d[key]
    (tmp_path / "old.json").write_text(json.dumps(d))
    with pytest.warns(LegacyCalibrationWarning, match="records no MCMC settings"):
        old = Calibration.from_sweep(tmp_path / "old.json")
    assert old.mcmc is None and old.correction.beyond_data == "pooled"  # format 1 fell back to the pooled curve
    post = make_post(config=GPUBCFConfig())  # default config: unknown to the legacy artifact, so unchecked
    assert old.applies_to(post)
    # the shipped artifact records the MCMC settings it was fitted at, and refuses the default config
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegacyCalibrationWarning)
        shipped = Calibration.from_sweep("demo_rpv_k3_toy")
    assert shipped.n_treatments == 3 and shipped.mcmc["num_trees_mu"] == 50 and shipped.mcmc["num_draws"] == 100
    # a current artifact loads silently and round-trips exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = Calibration.from_sweep(path)
    assert again.correction == corr and again.correction.mcmc == MCMC
    d["format"] = "pytyche.calibration/9"
    (tmp_path / "future.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="format"):
        Calibration.from_sweep(tmp_path / "future.json")


# ---- sample-size bands and use beyond the data ---------------------------------------------------


def test_bands_from_1k_to_1m_and_what_happens_beyond_the_data(tmp_path):
    corr = LayeredCalibrationCorrection.identity("m", 2, "none")
    sizes = (999, 1000, 1999, 2000, 4999, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 999999, 1000000, 10**8)
    assert [corr.band_index(n) for n in sizes] == [0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 10]
    assert corr.band_label(2) == "[2000, 5000)" and corr.band_label(10) == "[1e+06, inf)"
    # data in [2k, 5k) (ratio 1.5) and [10k, 20k) (ratio 2.0); nothing elsewhere
    recs = records(1.5, sample_size=3000) + records(2.0, sample_size=15000, seed=1, template="u")
    near = LayeredCalibrationCorrection.fit(recs, "m", 2, "none", min_units=5)
    assert near.beyond_data == "nearest" and near.bands_with_data("cate") == [2, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inside the data: no warning
        w_low, w_high = near.multiplier(0.9, "cate", 3000), near.multiplier(0.9, "cate", 15000)
    # each layer recovers its planted ratio: 12 reps x 400 targets, 4 binomial SEs on R(0.9)
    # through dz/dR = 1 / (2 phi(z)) gives about +-0.1 on w
    assert abs(w_low - 1.5) < 0.12 and abs(w_high - 2.0) < 0.15
    with pytest.warns(CalibrationExtrapolationWarning, match=r"sample size 1000000 .*\[1e\+06, inf\).*bands with data: \[2000, 5000\), \[10000, 20000\).*nearest band"):
        assert near.multiplier(0.9, "cate", 1_000_000) == w_high  # nearest covered band: [10k, 20k)
    with pytest.warns(CalibrationExtrapolationWarning):
        assert near.multiplier(0.9, "cate", 7000) == w_low  # a gap, equidistant: the lower band
    with pytest.warns(CalibrationExtrapolationWarning):
        assert near.multiplier(0.9, "cate", 500) == w_low
    assert near.source("cate", 7000) == "nearest" and near.source("cate", 3000) == "layer"
    pooled = LayeredCalibrationCorrection.fit(recs, "m", 2, "none", min_units=5, beyond_data="pooled")
    with pytest.warns(CalibrationExtrapolationWarning, match="pooled over all bands"):
        w_pool = pooled.multiplier(0.9, "cate", 1_000_000)
    assert w_low < w_pool < w_high and pooled.source("cate", 10**6) == "family"
    # the artifact states its policy and its bands, and both survive the JSON
    back = LayeredCalibrationCorrection.from_json(near.to_json(tmp_path / "a.json"))
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["beyond_data"] == "nearest" and d["bands_with_data"] == {"cate": ["[2000, 5000)", "[10000, 20000)"]}
    assert back == near
    with pytest.raises(ValueError, match="'beyond_data' parameter of LayeredCalibrationCorrection.fit"):
        LayeredCalibrationCorrection.fit(recs, "m", 2, "none", beyond_data="extrapolate")


# ---- the automatic pick ------------------------------------------------------------------------


def test_auto_picks_the_registry_artifact_whose_regime_applies(tmp_path, monkeypatch):
    reg = tmp_path / "registry"
    artifact(reg, "tiny_k2", ratio=1.5, sample_size=3000)
    artifact(reg, "tiny_k2_big_n", ratio=2.0, sample_size=15000, reps=40)  # more records, other band
    artifact(reg, "default_k2", ratio=1.2, mcmc={"num_trees_mu": 200, "num_trees_tau": 50, "num_burnin": 200, "num_draws": 250, "num_chains": 2})
    artifact(reg, "tiny_k3", ratio=1.5, k=3)
    path, _ = artifact(tmp_path, "legacy_src", ratio=1.5)
    d = json.loads(path.read_text())
    d["format"] = "pytyche.calibration/1"
    (reg / "legacy.json").write_text(json.dumps(d))

    auto = Calibration.from_sweep("auto", registry=reg)
    assert auto.auto and auto.correction is None and not auto.skipped
    with pytest.raises(ValueError, match="resolved calibration"):
        auto.interval(np.zeros((3, 10)), level=0.9, family="cate", sample_size=3)
    # n = 100: no artifact has data in [0, 1k); the larger one wins
    post = make_post(n_per_arm=50)
    got = apply_calibration(post, auto).calibration
    assert got.name == "tiny_k2_big_n" and not got.auto
    # n = 3000: the artifact with data in the posterior's band wins over the larger one
    post3k = make_post(n_per_arm=1500)
    assert apply_calibration(post3k, auto).calibration.name == "tiny_k2"
    # the default-config posterior gets the default-config artifact; K = 3 gets the K = 3 one
    assert auto.resolve(make_post(config=GPUBCFConfig())).name == "default_k2"
    assert auto.resolve(make_post(k=3)).name == "tiny_k3"
    # nothing applies: raw intervals, labelled uncalibrated, and a warning that says why
    with pytest.warns(AutoCalibrationFallbackWarning, match="keeps raw intervals.*no artifact in the registry"):
        fallback = auto.resolve(make_post(metric="conversion_rate"))
    assert fallback.skipped and fallback.claim_level is ClaimLevel.UNCALIBRATED
    assert "'metric': 'conversion_rate'" in fallback.provenance["auto_fallback"]
    # required=True: the error gives the regime and why each artifact does not apply
    with pytest.raises(ValueError, match="no artifact in the registry") as err:
        Calibration.from_sweep("auto", registry=reg, required=True).resolve(make_post(metric="conversion_rate"))
    msg = str(err.value)
    assert "'metric': 'conversion_rate'" in msg and "'legacy': legacy artifact without MCMC settings" in msg
    assert "'default_k2': metric: calibration fitted on 'm', data has 'conversion_rate'" in msg
    # the registry folder is overridable through the environment too
    monkeypatch.setenv(pc.REGISTRY_ENV, str(reg))
    assert pc.registry_names() == ["default_k2", "legacy", "tiny_k2", "tiny_k2_big_n", "tiny_k3"]
    assert Calibration.from_sweep("auto").resolve(post3k).name == "tiny_k2"
    assert Calibration.from_sweep("tiny_k3").n_treatments == 3
    monkeypatch.setenv(pc.REGISTRY_ENV, str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="registry is empty"):
        Calibration.from_sweep("auto", required=True).resolve(post)
    with pytest.raises(ValueError, match="'required' parameter of Calibration.from_sweep"):
        Calibration.from_sweep("tiny_k3", required=True)


def test_a_family_artifact_serves_every_metric_of_its_outcome_family(tmp_path):
    # fitted on records of the continuous metric "m", declared for the continuous family: it
    # applies to an operator's "order_value" (continuous outcome), not to a binary outcome
    path, corr = artifact(tmp_path, "cont_family", metric_family="continuous")
    assert corr.metric_family == "continuous"
    cal = Calibration.from_sweep(path)
    assert LayeredCalibrationCorrection.from_json(path).metric_family == "continuous"  # persisted
    assert cal.applies_to(make_post(metric="order_value"))
    binary = make_post(metric="m", binary=True)
    assert not cal.applies_to(binary)
    with pytest.raises(ValueError, match="mismatched metric_family .*fitted on 'continuous', data has 'binary'"):
        apply_calibration(binary, cal)
    # without a family (older artifacts) the metric's name is the regime, as before
    _, by_name = artifact(tmp_path, "by_name")
    assert by_name.metric_family is None and not Calibration(correction=by_name).applies_to(make_post(metric="order_value"))
    # auto picks the family artifact for a continuous metric of any name
    reg = tmp_path / "reg"
    artifact(reg, "cont_family", metric_family="continuous")
    assert Calibration.from_sweep("auto", registry=reg).resolve(make_post(metric="order_value")).name == "cont_family"
    with pytest.raises(ValueError, match="'metric_family' parameter"):
        LayeredCalibrationCorrection.fit(records(1.5), "m", 2, "none", metric_family="gaussian")


def test_the_model_options_are_part_of_the_regime(tmp_path):
    # an artifact describes the BCF without issue 16's options: a posterior fitted with the
    # treatment-effect intercept (or centred coding, or a fixed tau leaf scale) is outside it
    _, corr = artifact(tmp_path, "plain")
    cal = Calibration(correction=corr, name="plain")
    assert cal.applies_to(make_post())
    for change, want, got in (({"tau_intercept": True}, False, True), ({"tau_coding": "centred"}, "contrast", "centred"),
                              ({"tau_leaf_sd": 0.7}, None, 0.7)):
        post = make_post(config=replace(TINY, **change))
        key = next(iter(change))
        assert not cal.applies_to(post)
        with pytest.raises(ValueError, match=f"mismatched {key} .*fitted on {want!r}, posterior has {got!r}"):
            apply_calibration(post, cal)


def test_auto_skips_an_artifact_without_validation_or_whose_validation_supports_nothing(tmp_path):
    from pytyche.calibrate.calibration import validation_verdict

    def val(raw, cal, sd=0.05, n=40):
        return {"templates": ["held"], "levels": [
            {"family": "cate", "nominal": q, "raw": {"mean": r, "sd": sd, "n_datasets": n}, "calibrated": {"mean": c}}
            for q, r, c in zip((0.8, 0.9), raw, cal)]}

    assert "no held-out validation" in validation_verdict({})
    # raw off nominal at both levels (one-sided bound 0.7 - 1.685 * 0.05 / sqrt(40) = 0.687 < 0.8)
    # and calibrated closer: supported
    assert validation_verdict({"validation": val((0.70, 0.80), (0.79, 0.89))}) is None
    # calibrated farther from nominal than raw: supports nothing
    msg = validation_verdict({"validation": val((0.85, 0.95), (0.70, 0.80), sd=0.01)})
    assert "supports the correction at no family and level" in msg and "farther from nominal 0.80 than raw 0.850" in msg
    # raw not shown off nominal (10 datasets with sd 0.13: the bound 0.759 is below 0.78 < 0.8)
    msg = validation_verdict({"validation": val((0.78, 0.88), (0.80, 0.90), sd=0.13, n=10)})
    assert "is not shown off nominal 0.80" in msg
    reg = tmp_path / "reg"
    path, corr = artifact(reg, "worse", metric_family="continuous")
    d = json.loads(path.read_text())
    d["provenance"]["validation"] = val((0.85, 0.95), (0.70, 0.80), sd=0.01)
    path.write_text(json.dumps(d))
    artifact(reg, "supported", ratio=1.2, metric_family="continuous")
    artifact(reg, "unvalidated", ratio=1.2, metric_family="continuous", validated=False)
    assert Calibration.from_sweep("auto", registry=reg).resolve(make_post()).name == "supported"
    (reg / "supported.json").unlink()
    with pytest.raises(ValueError, match="'unvalidated': it has no held-out validation") as err:
        Calibration.from_sweep("auto", registry=reg, required=True).resolve(make_post())
    assert "'worse': its held-out validation (held) supports the correction at no family and level" in str(err.value)
    assert Calibration.from_sweep(path).applies_to(make_post())  # by name it still loads and applies


def test_a_correction_is_applied_per_family_and_level_only_where_its_evidence_carries_it(tmp_path):
    """The held-out evidence decides, per family and level, whether the correction moves the
    interval; intervals stay nested across levels, and the posterior reports each family."""
    from pytyche.calibrate.evidence import evidence_of

    path, corr = artifact(tmp_path, "a", ratio=1.5)
    val = planted_validation(1.5, families=("cate", "ate"))
    for row in val["levels"]:
        q = row["nominal"]
        if row["family"] == "ate":  # one indicator per dataset: sd sqrt(q (1 - q)), 5 pp short
            row["raw"].update(mean=q - 0.05, sd=float(np.sqrt(q * (1 - q))))
        if row["family"] == "cate" and q <= 0.6:  # calibrated farther than raw
            row["calibrated"]["mean"] = row["raw"]["mean"] - 0.2
    val["levels"][6]["raw"]["mean"] = 0.2  # ATE at 50%: far off, but alone
    ev = evidence_of({"validation": val})
    assert ev.status("cate") == "partial" and ev.applied_levels("cate") == (0.7, 0.8, 0.9, 0.95)
    # ATE: raw 0.75 at 80% with sd 0.4 over 40: the one-sided bound 0.857 does not exclude 0.80...
    assert ev.status("ate") == "raw" and ev.status("gate") == "raw"
    # ... and at 50% raw 0.2 is shown off (bound 0.333 < 0.5), but a lone level is not applied
    lone = [r for r in ev.rows if r.family == "ate" and r.nominal == 0.5][0]
    assert not lone.applied and "no neighbouring level passes" in lone.reason
    assert ev.weight("cate", 0.65) == pytest.approx(0.5) and ev.weight("cate", 0.99) == 1.0
    d = corr.to_dict()
    d["provenance"]["validation"] = val
    cal = Calibration.from_correction(LayeredCalibrationCorrection.from_dict(d), name="a")
    full = Calibration.from_correction(corr, name="a")  # all of cate supported
    n = 3000
    assert cal.multiplier(0.9, "cate", n) == pytest.approx(full.multiplier(0.9, "cate", n))
    assert cal.multiplier(0.9, "cate", n) > 1.3
    assert cal.multiplier(0.9, "ate", n) == 1.0 and cal.multiplier(0.5, "cate", n) == 1.0
    levels = np.linspace(0.05, 0.99, 60)
    half = [cal.multiplier(q, "cate", n) * z(q) for q in levels]
    assert np.all(np.diff(half) >= -1e-12)  # nested: half-widths never shrink with the level
    assert cal.claim_level_for("cate", 0.9) is ClaimLevel.CALIBRATED and cal.claim_level_for("cate", 0.5) is ClaimLevel.UNCALIBRATED
    assert cal.claim_level_for("ate", 0.9) is cal.claim_level_for("gate", 0.9) is ClaimLevel.UNCALIBRATED
    draws = np.random.default_rng(1).normal(size=(4, 500))
    np.testing.assert_allclose(np.stack(cal.interval(draws, level=0.9, family="ate", sample_size=n)),
                               np.stack(pc.raw_interval(draws, 0.9)))
    assert cal.family_status()["cate"] == "partial" and Calibration.skip().family_status()["cate"] == "raw"


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_every_shipped_artifact_is_validated_on_held_out_templates():
    """No artifact ships without its own validation on templates its fit never used: the four
    default-config ones and the demo's toy-config ``demo_rpv_k3_toy`` (which replaced the
    unvalidated ``clustered_realistic_v2``), each on today's model or predating model versions."""
    from dgps.registry import TEMPLATE_ROLES
    from pytyche.bcf.fingerprint import MODEL_VERSION

    names = pc.registry_names()
    assert "demo_rpv_k3_toy" in names and "clustered_realistic_v2" not in names
    for name in names:
        cal = Calibration.from_sweep(name)
        prov = cal.correction.provenance
        fit = {t["name"] for t in prov["spec"]["content"]["templates"]}
        held = set(prov["validation"]["templates"])
        assert fit and held and not fit & held, name
        assert {TEMPLATE_ROLES[t] for t in held} == {"validate"}, name
        assert prov["validation"]["n_datasets"] >= 40, name
        assert cal.model_version in (None, MODEL_VERSION), name
    demo = Calibration.from_sweep("demo_rpv_k3_toy")
    assert demo.model_version == MODEL_VERSION and demo.n_treatments == 3
    assert demo.mcmc == {"num_trees_mu": 50, "num_trees_tau": 20, "num_burnin": 100, "num_draws": 100, "num_chains": 2}


def test_shipped_default_config_artifacts_are_clean_and_validated_on_held_out_templates():
    """Issue 12: every registry artifact at the default config records a clean commit, no
    absolute path, and its own validation on templates that its fit sweep never used."""
    from dgps.registry import TEMPLATE_ROLES
    from pytyche.calibrate.calibration import validation_verdict
    from pytyche.calibrate.correction import mcmc_of

    default = mcmc_of(GPUBCFConfig())
    shipped = [name for name in pc.registry_names()
               if Calibration.from_sweep(name).mcmc == default]
    assert {"binary_k2_v1", "continuous_k2_v1", "rpv_k2_joint_v1", "rpv_k3_joint_v1"} <= set(shipped)
    for name in shipped:
        prov = Calibration.from_sweep(name).correction.provenance
        assert prov["git_dirty"] is False and prov["run_git_dirty"] is False, name
        assert not [s for s in _strings(prov) if s.startswith("/")], name
        fit = {t["name"] for t in prov["spec"]["content"]["templates"]}
        held = set(prov["validation"]["templates"])
        assert fit and held and not fit & held, name
        # held out under today's roles too; the v1 artifacts' fit templates (drifting, harmful_arm,
        # binary_conversion, continuous_metric) became held-out templates for the refit (issue 24)
        assert {TEMPLATE_ROLES[t] for t in held} == {"validate"} and not {TEMPLATE_ROLES[t] for t in fit} & {"benchmark"}
        assert prov["validation"]["n_datasets"] >= 40, name
    # auto: a default-config binary K=2 posterior gets the binary artifact (its calibrated CATE
    # is closer to nominal held out); the continuous one is ruled out by its own validation
    for name in ("binary_k2_v1", "rpv_k2_joint_v1", "rpv_k3_joint_v1"):
        assert validation_verdict(Calibration.from_sweep(name).correction.provenance) is None, name
    assert "supports the correction at no family and level" in validation_verdict(Calibration.from_sweep("continuous_k2_v1").correction.provenance)
    cfg = GPUBCFConfig()
    assert Calibration.from_sweep("auto").resolve(make_post(n_per_arm=2000, config=cfg, binary=True,
                                                            metric="signup")).name == "binary_k2_v1"
    # a default-config revenue K = 3 joint posterior gets the K = 3 artifact (no longer an error)
    assert Calibration.from_sweep("auto").resolve(make_post(k=3, n_per_arm=2000, config=cfg, hurdle=True,
                                                            metric="revenue_per_visitor")).name == "rpv_k3_joint_v1"


def auto_experiment(registry):
    """A two-round continuous_metric experiment (tiny BCF) calibrated by ``from_sweep("auto")``."""
    from dgps.registry import make_generator

    return pt.sequential_experiment(
        generator=make_generator("continuous_metric", seed=3),
        schedule=pt.FixedSchedule(per_round=300, n_rounds=2),
        treatments=["control", "treatment"],
        calibration=Calibration.from_sweep("auto", registry=registry),
        seed=3,
        bcf_config=TINY,
    )


@pytest.mark.filterwarnings("ignore::pytyche.calibrate.CalibrationExtrapolationWarning")
def test_sequential_experiment_uses_the_auto_artifact(tmp_path):
    """A real two-round sequential experiment (continuous_metric, tiny BCF) with
    ``from_sweep("auto")``: each round's posterior carries the registry artifact whose regime
    (session_minutes, K = 2, no pooling, the tiny MCMC) applies, and its intervals are widened by
    that artifact's multiplier."""
    reg = tmp_path / "registry"
    regime = {"metric": "session_minutes", "k": 2, "pooling": "none"}
    _, right = artifact(reg, "continuous_tiny", ratio=1.6, sample_size=600, mcmc={**MCMC, "num_burnin": 20}, **regime)
    artifact(reg, "continuous_default", ratio=1.1, sample_size=600, mcmc={"num_trees_mu": 200, "num_trees_tau": 50, "num_draws": 250, "num_chains": 2}, **regime)
    exp = auto_experiment(reg)
    results = list(exp)
    assert len(results) == 2
    for r in results:
        cal = r.posterior.calibration
        assert cal.name == "continuous_tiny" and cal.correction == right
        assert r.posterior.claim_level is ClaimLevel.CALIBRATED
        draws = r.posterior.cate_samples
        lo, hi = r.posterior.cate_interval(0.9)
        rlo, rhi = pc.raw_interval(draws, 0.9, axis=1)
        med = np.median(draws, axis=1)
        w = right.multiplier(0.9, "cate", r.posterior.n_visitors)
        np.testing.assert_allclose(hi - med, w * (rhi - med), rtol=1e-5, atol=1e-9)
        assert w > 1.3  # the planted ratio 1.6 widens


# ---- fit-time observables ----------------------------------------------------------------------


def test_records_carry_mcmc_settings_and_fit_time_observables():
    post = make_post(n_per_arm=30, binary=True, seed=4)
    obs = post.observed
    y, arm = obs.outcome, obs.arm
    truth = CalibrationTruth(np.zeros((obs.n_visitors, 2)), obs.variant_names, np.zeros(obs.n_visitors, int))
    recs = coverage_records(post, truth, levels=(0.5, 0.9), families=["cate", "ate"])
    assert len(recs) == 4
    conv = tuple(int((y[arm == a] > 0).sum()) for a in range(2))
    sd_y = float(np.std(y))
    cate = post.cate_samples
    ate = cate.mean(axis=0)
    for rec in recs:
        assert (rec.num_trees_mu, rec.num_trees_tau, rec.num_burnin, rec.num_draws, rec.num_chains) == (20, 10, 20, 20, 1)
        assert not rec.calibrated and rec.converters == conv and rec.min_converters == min(conv)
        d, ax = (cate, 1) if rec.family == "cate" else (ate, 0)
        assert rec.posterior_sd_rel == pytest.approx(np.mean(np.std(d, axis=ax)) / sd_y)
        assert rec.effect_to_noise == pytest.approx(np.mean(np.abs(np.mean(d, axis=ax))) / sd_y)
        row = rec.to_dict()
        assert row["converters"] == list(conv) and json.dumps(row)
    # a continuous outcome has no converters; calibrated intervals are marked as such
    cont = make_post(n_per_arm=30, seed=5)
    corr = LayeredCalibrationCorrection.fit(records(1.5), "m", 2, "none", min_units=5)
    cal_post = apply_calibration(cont, Calibration.from_correction(corr))
    tr = CalibrationTruth(np.zeros((60, 2)), cont.observed.variant_names, np.zeros(60, int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationExtrapolationWarning)
        crec = coverage_records(cal_post, tr, levels=(0.9,), families=["cate"], use_calibration=True)
    assert crec[0].converters is None and crec[0].min_converters is None and crec[0].calibrated
    with pytest.raises(ValueError, match="'converters' parameter of CalibrationRecord"):
        replace(recs[0], converters=(1, 2, 3))


def test_auto_with_nothing_applying_keeps_raw_intervals_and_a_save_records_it(tmp_path):
    """``from_sweep("auto")`` never fails an experiment: with nothing in the registry the round's
    posterior keeps raw intervals, labelled uncalibrated, with a warning that says why; a save
    keeps the auto calibration and each round's fallback."""
    from dgps.registry import make_generator

    reg = tmp_path / "empty"
    reg.mkdir()
    exp = auto_experiment(reg)
    with pytest.warns(AutoCalibrationFallbackWarning, match="registry is empty"):
        r = exp.advance()
    assert r.posterior.claim_level is ClaimLevel.UNCALIBRATED and r.analysis.claim_level is ClaimLevel.UNCALIBRATED
    assert set(r.posterior.family_claim_levels().values()) == {ClaimLevel.UNCALIBRATED}
    np.testing.assert_array_equal(np.stack(r.posterior.cate_interval(0.9)),
                                  np.stack(pc.raw_interval(r.posterior.cate_samples, 0.9, axis=1)))
    path = exp.save(tmp_path / "save", draws=True)
    back = pt.SequentialExperiment.load(path, generator=make_generator("continuous_metric", seed=3))
    assert back.calibration.auto and back.calibration.registry == str(reg)
    cal = back.history[0].posterior.calibration
    assert cal.skipped and "registry is empty" in cal.provenance["auto_fallback"]


def test_a_family_the_evidence_keeps_raw_is_never_looked_up_so_it_never_warns():
    """``demo_rpv_k3_toy``'s validation keeps ATE and GATE raw at every level: their intervals are
    raw and say nothing about sample-size bands. CATE, corrected at 50-80%, is served by the
    family's pooled curve (no band holds the units a curve needs on its own) and says so."""
    cal = Calibration.from_sweep("demo_rpv_k3_toy")
    assert cal.family_status()["ate"] == cal.family_status()["gate"] == "raw"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationExtrapolationWarning)
        assert cal.multiplier(0.8, "ate", 3000) == cal.multiplier(0.9, "gate", 3000) == 1.0
    with pytest.warns(CalibrationExtrapolationWarning, match=r"sample size 3000 .*fewer units than a curve needs.*pooled over all bands"):
        assert cal.multiplier(0.8, "cate", 3000) < 1.0  # raw over-covers held out: the correction narrows
