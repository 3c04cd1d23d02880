"""The model fingerprint: a version constant that moves with the draws, carried by records and artifacts.

- A fixed small sequential round (data construction and fit, the path every coverage record comes
  from) reproduces committed reference draws. When it stops doing so, the model changed: bump
  ``pytyche.bcf.fingerprint.MODEL_VERSION``, say what changed in ``MODEL_HISTORY`` and rewrite the
  reference (``python tests/test_model_fingerprint.py``). The reference is only comparable under
  the jax, jaxlib and bartz versions it was written with; under others the check is skipped.
- Records carry the version; an artifact is fitted from records of one model and keeps it; an
  artifact of another model is refused, by name and by auto, with a message that says why.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).parent / "data" / "reference_draws.npz"


def _versions() -> dict[str, str]:
    import bartz
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "bartz": bartz.__version__}


def _reference_round():
    """Round 0 of a tiny null experiment (cold start: a control-only cell beside a 50/50 cell)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _config import TINY

    from dgps import make_generator
    from pytyche.experiment import FixedSchedule, sequential_experiment

    gen = make_generator("null_effect", seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = sequential_experiment(generator=gen, schedule=FixedSchedule(per_round=300, n_rounds=1),
                                    treatments=list(gen.treatments), bcf_config=TINY, seed=4)
        return next(exp).posterior


def _write_reference() -> None:
    from pytyche.bcf.fingerprint import MODEL_VERSION

    post = _reference_round()
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        REFERENCE, model_version=MODEL_VERSION, versions=np.array(sorted(_versions().items())),
        outcome_samples=np.asarray(post.outcome_samples, np.float32), sigma_samples=np.asarray(post.sigma_samples, np.float32),
    )


def test_a_fixed_round_reproduces_the_reference_draws_of_this_model_version():
    from pytyche.bcf.fingerprint import MODEL_HISTORY, MODEL_VERSION

    ref = np.load(REFERENCE)
    written_with = dict(map(tuple, ref["versions"]))
    if written_with != _versions():
        pytest.skip(f"the reference draws were written under {written_with}, this is {_versions()}")
    assert int(ref["model_version"]) == MODEL_VERSION, (
        f"MODEL_VERSION is {MODEL_VERSION} but the reference draws are of version {int(ref['model_version'])}: "
        "rewrite them (python tests/test_model_fingerprint.py)")
    assert set(MODEL_HISTORY) == set(range(1, MODEL_VERSION + 1))
    post = _reference_round()
    # float noise across CPUs is ~1e-7 relative; a model change moves draws by far more
    for name in ("outcome_samples", "sigma_samples"):
        np.testing.assert_allclose(np.asarray(getattr(post, name), np.float32), ref[name], rtol=2e-4, atol=1e-5,
                                   err_msg=f"{name} changed: the model changed, so bump MODEL_VERSION (pytyche/bcf/fingerprint.py), "
                                           "record what changed in MODEL_HISTORY and rewrite the reference")


def test_the_fingerprint_names_the_version_and_the_options():
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.fingerprint import MODEL_VERSION, model_fingerprint

    fp = model_fingerprint()
    assert fp == {"version": MODEL_VERSION, "tau_intercept": False, "tau_coding": "contrast", "tau_leaf_sd": None, "tau_own_rows": True}
    assert model_fingerprint(GPUBCFConfig(tau_coding="centred"))["tau_own_rows"] is False
    assert model_fingerprint({"tau_intercept": True})["tau_intercept"] is True


def _records(version):
    from pytyche.contracts import CalibrationRecord

    rng = np.random.default_rng(0)
    return [
        CalibrationRecord(replication=r, round_idx=0, family="cate", nominal=q, coverage=float(min(1.0, q - 0.1 + 0.02 * rng.random())),
                          n_targets=100, mean_width=1.0, metric="revenue_per_visitor", n_treatments=2, pooling="joint",
                          sample_size=3000, task_id=f"t{r}", model_version=version)
        for r in range(30) for q in (0.5, 0.8, 0.9)
    ]


def test_an_artifact_keeps_its_records_model_and_refuses_another():
    from pytyche.bcf.fingerprint import MODEL_VERSION
    from pytyche.calibrate import Calibration, LayeredCalibrationCorrection

    current = LayeredCalibrationCorrection.fit(_records(MODEL_VERSION), "revenue_per_visitor", 2, "joint", min_units=5)
    assert current.model_version == MODEL_VERSION
    again = LayeredCalibrationCorrection.from_dict(current.to_dict())
    assert again.model_version == MODEL_VERSION and again == current
    legacy = LayeredCalibrationCorrection.fit(_records(None), "revenue_per_visitor", 2, "joint", min_units=5)
    assert legacy.model_version is None and "model_version" not in legacy.to_dict()
    with pytest.raises(ValueError, match="records of one model"):
        LayeredCalibrationCorrection.fit(_records(MODEL_VERSION) + _records(MODEL_VERSION - 1), "revenue_per_visitor", 2, "joint")
    with pytest.raises(ValueError, match="records of one model"):
        LayeredCalibrationCorrection.fit(_records(MODEL_VERSION) + _records(None), "revenue_per_visitor", 2, "joint")
    with pytest.raises(ValueError, match="'model_version' field"):
        LayeredCalibrationCorrection.from_dict({**current.to_dict(), "model_version": "3"})

    # an artifact of an older model is outside every posterior's regime, and says why
    from tests.test_calibrate import scaled_cate_posterior

    post, _ = scaled_cate_posterior(np.random.default_rng(1), 50, 20, 1.0)
    old = Calibration.from_correction(dataclasses.replace(current, model_version=MODEL_VERSION - 1), name="old")
    assert "model_version" in old.mismatches(post.observed)
    msg = old.mismatch_message(post.observed)
    assert f"model version {MODEL_VERSION - 1}" in msg and "refit the artifact" in msg
    assert Calibration.from_correction(current, name="now").mismatches(post.observed) == []



def test_a_model_change_changes_every_sweep_task_id(monkeypatch):
    """Tasks of the version current when fingerprints came in hash as before (running sweeps
    resume); after a bump every id changes, so a resumed sweep never mixes two models' records."""
    import pytyche.bcf.fingerprint as fingerprint
    from sweeps.spec import FINGERPRINTED_SINCE, parse_spec

    spec = parse_spec({"name": "t", "templates": [{"name": "null_effect"}], "replications": 2,
                       "schedule": {"kind": "fixed", "args": {"per_round": 100, "n_rounds": 1}}})
    before = [t.task_id for t in spec.tasks()]
    assert ("model_version" in spec.tasks()[0].identity()) == (fingerprint.MODEL_VERSION != FINGERPRINTED_SINCE)
    monkeypatch.setattr(fingerprint, "MODEL_VERSION", FINGERPRINTED_SINCE + 1)
    after = [t.task_id for t in spec.tasks()]
    assert spec.tasks()[0].identity()["model_version"] == FINGERPRINTED_SINCE + 1
    assert not set(before) & set(after)

if __name__ == "__main__":  # rewrite the reference draws after a MODEL_VERSION bump
    _write_reference()
    print(f"wrote {REFERENCE}")
