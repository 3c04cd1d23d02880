"""``pytyche-sweep validate`` end to end (real Ray, real BCF at the tiny config, real MLflow in a
temporary SQLite store), per-dataset coverage in aggregation, and artifact provenance without
absolute paths and with the git state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import ndtr, ndtri

from pytyche.calibrate import LayeredCalibrationCorrection
from pytyche.contracts import CalibrationRecord
from sweeps.spec import parse_spec
from tests._config import TINY
from tests._ray import local_ray

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy, inside MLflow

MCMC = {k: getattr(TINY, k) for k in ("num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains")}
TINY_BCF = {**MCMC, "bucket_min": TINY.bucket_min}
LEVELS = (0.5, 0.8, 0.9)


def strings(value):
    """Every str inside a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray(__name__, address="local", num_cpus=2) as ray:
        yield ray


def planted_artifact(path, ratio=1.5):
    """A continuous K = 2 artifact at the tiny MCMC: coverage Binomial(400, 2 Phi(z(q)/ratio) - 1)
    in band [0, 1k), so every multiplier is about ``ratio``."""
    rng = np.random.default_rng(0)
    recs = []
    for r in range(12):
        for fam in ("cate", "ate"):
            for q in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
                c = rng.binomial(400, 2 * ndtr(ndtri((1 + q) / 2) / ratio) - 1) / 400
                recs.append(CalibrationRecord(r, 0, fam, q, c, 400, 1.0, "session_minutes", 2, "none", 300, "t", f"t{r}", **MCMC))
    corr = LayeredCalibrationCorrection.fit(recs, "session_minutes", 2, "none", {"note": "planted"}, min_units=5)
    return corr, corr.to_json(path)


def test_validate_end_to_end(ray_cluster, tmp_path):
    from mlflow.tracking import MlflowClient

    from sweeps.cli import main
    from sweeps.shards import read_records

    corr, art = planted_artifact(tmp_path / "cont_tiny.json")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {
        "name": "heldout_tiny",
        "templates": [{"name": "continuous_metric", "params": {"effect_scale": {"uniform": [0.5, 1.5]}}}],
        "replications": 3,
        "seed": 11,
        "schedule": {"kind": "explicit", "args": {"sizes": [{"randint": [250, 400]}]}},
        "bcf": TINY_BCF,
        "levels": list(LEVELS),
        "families": ["cate", "ate"],
        "actors": {"count": 1, "num_cpus": 1},
        "output_dir": str(tmp_path / "heldout"),
    }
    spec_path = tmp_path / "heldout.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    # the spec's MCMC settings must be the artifact's regime: refused before anything runs
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**spec, "bcf": {**TINY_BCF, "num_trees_tau": 50}, "output_dir": str(tmp_path / "bad")}))
    assert main(["validate", str(art), str(bad), "--no-tracking", "--no-progress"]) == 2
    assert not (tmp_path / "bad" / "records").exists()

    code = main(["validate", str(art), str(spec_path), "--write", "--tracking-uri", uri, "--no-progress"])
    assert code == 0
    out = tmp_path / "heldout"
    summary = json.loads((out / "validation.json").read_text())
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["n_datasets"] == 3 and summary["templates"] == ["continuous_metric"]
    assert isinstance(summary["residual_correlations"], list)
    assert {"posterior_sd_rel", "effect_to_noise"} <= set(pd.read_csv(out / "validation_per_dataset.csv").columns)
    assert summary["regime"]["mcmc"] == MCMC and summary["artifact"] == "cont_tiny"
    assert {(r["family"], r["nominal"]) for r in summary["levels"]} == {(f, q) for f in ("cate", "ate") for q in LEVELS}
    # per sample-size band: every dataset in exactly one band, each band's rows as the overall ones
    assert sum(b["n_datasets"] for b in summary["bands"]) == 3
    assert set(pd.read_csv(out / "validation_per_dataset.csv")["band"]) == {b["band"] for b in summary["bands"]}
    for b in summary["bands"]:
        assert {(r["family"], r["nominal"]) for r in b["levels"]} == {(f, q) for f in ("cate", "ate") for q in LEVELS}
    # no absolute path anywhere in what is written into the artifact
    assert not [s for s in strings(summary) if s.startswith("/") or str(tmp_path) in s]

    # the confidence interval is across datasets: the t-interval of the per-dataset coverages
    from scipy.stats import t

    per = pd.read_csv(out / "validation_per_dataset.csv")
    assert per.groupby(["family", "nominal", "calibrated"]).size().eq(3).all()
    for row in summary["levels"]:
        for label, flag in (("raw", False), ("calibrated", True)):
            v = per[(per["family"] == row["family"]) & (per["nominal"] == row["nominal"]) & (per["calibrated"] == flag)]["coverage"].to_numpy()
            half = t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
            assert row[label]["mean"] == pytest.approx(v.mean())
            if v.std() > 0:
                assert row[label]["ci"] == pytest.approx([v.mean() - half, v.mean() + half])

    # calibrated intervals are the raw ones widened by the artifact's multiplier (exactly, record
    # by record: median +- w * raw half-widths), and cover at least as often
    frame = read_records(out, kinds=["calibration"])
    assert set(frame["calibrated"]) == {False, True}
    raw = frame[~frame["calibrated"]].set_index(["task_id", "family", "nominal"]).sort_index()
    cal = frame[frame["calibrated"]].set_index(["task_id", "family", "nominal"]).sort_index()
    for (tid, fam, q), r in raw.iterrows():
        w = corr.multiplier(q, fam, int(r["sample_size"]))
        assert cal.loc[(tid, fam, q), "mean_width"] == pytest.approx(w * r["mean_width"], rel=1e-4)
        assert cal.loc[(tid, fam, q), "coverage"] >= r["coverage"]
    assert all(abs(corr.multiplier(q, "cate", 300) - 1.5) < 0.15 for q in LEVELS)

    # --write put the summary into the artifact's provenance; the artifact still loads
    back = LayeredCalibrationCorrection.from_json(art)
    assert back.provenance["validation"] == summary and back.provenance["note"] == "planted"
    assert back.layers == corr.layers and back.mcmc == corr.mcmc

    # the held-out sweep is tracked like any sweep, the validation files on its parent run
    run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
    arts = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "validation")}
    assert {"validation/validation.json", "validation/validation.png"} <= arts
    # its cell's child run separates raw from calibrated coverage and gives the spread across datasets
    client = MlflowClient(uri)
    (child,) = client.search_runs([client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    m = child.data.metrics
    assert m["calibrated_coverage_cate_90"] >= m["coverage_cate_90"] and m["coverage_sd_cate_90"] >= 0
    assert m["calibrated_width_cate_90"] > 1.3 * m["width_cate_90"]

    # rerun without running: the same summary from the shards already there
    assert main(["validate", str(art), str(spec_path), "--no-run", "--no-tracking"]) == 0


def test_aggregate_provenance_is_portable_and_states_the_git_state(ray_cluster, tmp_path, monkeypatch):
    import sweeps.aggregate as agg
    from sweeps.driver import run_sweep
    from sweeps.synthetic import run_synthetic_task

    out = tmp_path / "synth"
    spec = parse_spec({
        "name": "synth_prov",
        "templates": [{"name": "synthetic", "params": {"scale_ratio": 1.4, "n_targets": 300}}],
        "replications": 5,
        "schedule": {"kind": "fixed", "args": {"per_round": 3000, "n_rounds": 1}},
        "bcf": TINY_BCF,
        "levels": [0.5, 0.9],
        "families": ["cate"],
        "actors": {"count": 2},
        "output_dir": str(out),
    })
    assert run_sweep(spec, runner=run_synthetic_task, tracking=False, progress=False).complete
    res = agg.aggregate(out, tracking=False, min_units=3)
    prov = res.correction.provenance
    assert not [s for s in strings(prov) if s.startswith("/") or str(tmp_path) in s], prov
    assert prov["output_dir"] == "synth" and prov["spec"]["content"]["output_dir"] == "synth"
    assert prov["counts"]["records"] == 10 and prov["record_counts"]["total"] == 10
    assert isinstance(prov["commit"], str) and isinstance(prov["git_dirty"], bool) and "run_commit" in prov
    # the synthetic records carry the task's MCMC settings, so the artifact has its regime
    assert res.correction.mcmc == MCMC
    # spread across datasets next to the pooled number
    curves = res.curves.set_index(["family", "nominal"])
    per = pd.read_csv(out / "coverage_per_dataset.csv")
    v = per[(per["nominal"] == 0.9)]["coverage"]
    assert len(v) == 5 and curves.loc[("cate", 0.9), "dataset_sd"] == pytest.approx(v.std(ddof=1))
    assert curves.loc[("cate", 0.9), "dataset_ci_lo"] < curves.loc[("cate", 0.9), "dataset_mean"] < curves.loc[("cate", 0.9), "dataset_ci_hi"]
    # a dirty checkout is flagged, and refused when the artifact must ship clean
    monkeypatch.setattr(agg, "git_commit", lambda path=None: ("abc123", True))
    corr, _ = agg.fit_artifact(out, path=tmp_path / "flagged.json", min_units=3)
    assert corr.provenance["git_dirty"] is True
    with pytest.raises(ValueError, match="'require_clean' parameter of fit_artifact.*dirty"):
        agg.fit_artifact(out, path=tmp_path / "refused.json", require_clean=True, min_units=3)
    assert not (tmp_path / "refused.json").exists()
    monkeypatch.setattr(agg, "git_commit", lambda path=None: ("abc123", False))
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest.get("git_dirty") is False:
        assert agg.fit_artifact(out, path=tmp_path / "clean.json", require_clean=True, min_units=3)[0].provenance["commit"] == "abc123"
    else:  # the sweep itself ran from a dirty checkout (this worktree while developing): refused too
        with pytest.raises(ValueError, match="the sweep ran from a dirty checkout"):
            agg.fit_artifact(out, path=tmp_path / "clean.json", require_clean=True, min_units=3)


def test_residual_correlations_find_a_planted_dependence():
    """Residual calibrated coverage planted to fall with posterior_sd_rel (slope -0.5, noise sd
    0.02 over a spread of 0.4 in the observable: Spearman rho near -0.95 over 40 datasets) and
    independent of effect_to_noise: the first is found (p < 1e-6), the second not (|rho| < 0.45,
    which an independent pair exceeds with probability ~0.004 at n = 40)."""
    from sweeps.validate import residual_correlations

    rng = np.random.default_rng(3)
    n = 40
    sd_rel = rng.uniform(0.1, 0.5, n)
    per = pd.DataFrame({
        "family": "cate", "nominal": 0.9, "calibrated": True, "task_id": [f"t{i}" for i in range(n)],
        "coverage": np.clip(0.9 - 0.5 * (sd_rel - 0.3) + rng.normal(0, 0.02, n), 0, 1),
        "posterior_sd_rel": sd_rel, "effect_to_noise": rng.uniform(0, 1, n), "min_converters": np.full(n, 50),
    })
    rows = {r["observable"]: r for r in residual_correlations(per)}
    assert rows["posterior_sd_rel"]["spearman"] < -0.8 and rows["posterior_sd_rel"]["p_value"] < 1e-6
    assert abs(rows["effect_to_noise"]["spearman"]) < 0.45 and rows["posterior_sd_rel"]["n_datasets"] == n
    assert "min_converters" not in rows  # constant: no correlation to compute
    assert residual_correlations(per, calibrated=False) == []


def test_summary_of_a_family_artifact_reads_held_out_records_of_another_metric(tmp_path):
    """A continuous-family artifact fitted on ``session_minutes`` records is validated on a
    held-out template whose metric is ``order_value``: its records are of the artifact's regime
    (same family, K and pooling), while a name-only artifact finds none of them."""
    from sweeps.spec import spec_from
    from sweeps.validate import summarize

    recs = []
    for r in range(4):
        for calibrated in (False, True):
            for q in LEVELS:
                recs.append({"kind": "calibration", **CalibrationRecord(
                    r, 0, "cate", q, min(1.0, q + (0.05 if calibrated else 0.0)), 400, 1.0, "order_value", 2, "none", 300,
                    "sparse_signal", f"s{r}", **MCMC, calibrated=calibrated).to_dict()})
    frame = pd.DataFrame(recs)
    spec = spec_from({"name": "h", "templates": [{"name": "sparse_signal"}], "replications": 4, "seed": 1,
                      "schedule": {"kind": "fixed", "args": {"per_round": 300, "n_rounds": 1}}, "bcf": TINY_BCF,
                      "levels": list(LEVELS), "families": ["cate"], "output_dir": str(tmp_path / "h")})
    fit_recs = [CalibrationRecord(r, 0, "cate", q, q, 400, 1.0, "session_minutes", 2, "none", 300, "t", f"t{r}", **MCMC)
                for r in range(6) for q in LEVELS]
    family = LayeredCalibrationCorrection.fit(fit_recs, "session_minutes", 2, "none", min_units=5, metric_family="continuous")
    summary, table, per = summarize(frame, family, artifact_name="fam", artifact_sha256="0", spec=spec)
    assert summary["n_datasets"] == 4 and set(per["task_id"]) == {f"s{r}" for r in range(4)}
    by_name = LayeredCalibrationCorrection.fit(fit_recs, "session_minutes", 2, "none", min_units=5)
    with pytest.raises(ValueError, match="no coverage records of the artifact's regime"):
        summarize(frame, by_name, artifact_name="n", artifact_sha256="0", spec=spec)
