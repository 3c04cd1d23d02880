"""The scale form of an R(p) curve (pytyche/calibrate/scale_form.py): ATE and GATE corrections
from every level at once (issue 22, item 2).

Planted truth: standardized errors drawn from the location-scale model with a known ``r`` (the
truth's spread over the posterior's): ``z = r e``, its PIT ``Phi(z)``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from pytyche.calibrate import CalibrationExtrapolationWarning, LayeredCalibrationCorrection
from pytyche.calibrate.correction import LayerCurve
from pytyche.calibrate.scale_form import fit_scale, scale_coverage, scale_min_units
from pytyche.contracts import CalibrationRecord
from pytyche.contracts.truth import PIT_BINS

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _z(rng, r, n):
    """Standardized errors of n truths whose spread is r times the posterior's: z = r e."""
    return r * rng.standard_normal(n)


def _hist(u):
    return np.bincount(np.minimum((u * PIT_BINS).astype(int), PIT_BINS - 1), minlength=PIT_BINS)


@pytest.mark.parametrize("r", [0.7, 1.0, 1.4])
def test_the_scale_estimate_recovers_a_planted_scale(r):
    """20,000 targets: sqrt(mean z^2) lies within 3 standard errors (r / sqrt(2 n)) of r; the
    curve it implies is the Gaussian model's coverage of the raw intervals."""
    z = _z(np.random.default_rng(1), r, 20_000)
    assert abs(fit_scale(z**2) - r) < 3 * r / math.sqrt(2 * 20_000)
    np.testing.assert_allclose(scale_coverage([0.9], r), 2 * ndtr(ndtri(0.95) / r) - 1)
    # weights count targets: one unit of 3 targets weighs as three units of one
    assert fit_scale([1.0, 4.0], [3, 1]) == pytest.approx(math.sqrt(7 / 4))
    with pytest.raises(ValueError, match="z_sq"):
        fit_scale([1.0, float("nan")])


def test_the_scale_form_meets_the_tolerance_with_the_units_it_says_it_needs():
    """With one target per unit (an ATE at K = 2) and r = 1.2, scale_min_units says how many units
    hold the 90% coverage within +-3 pp at 95%. Over 400 simulated sweeps of that many units, the
    scale form's coverage error at 90% stays within 3 pp in 95% of them (the 95th percentile of
    |error| <= 0.034: 0.03 plus the Monte Carlo error of a 95th percentile over 400 sweeps), and
    is smaller than the error of the mean of the coverage indicators at the same number of units
    (1.96 sd = 0.037 against 0.030)."""
    rng = np.random.default_rng(7)
    r = 1.2
    z_sq = (r * rng.standard_normal(5_000)) ** 2
    n = scale_min_units(z_sq, 0.03, [0.9])
    # (1.96 * |dR/dr| * sd(z^2) / (2 r) / 0.03)^2 = (1.96 * 0.357 * 0.849 / 0.03)^2 = 393 at the population values
    assert 340 <= n <= 450
    truth = float(scale_coverage([0.9], r)[0])
    err_scale, err_ind = [], []
    for _ in range(400):
        z = _z(rng, r, n)
        err_scale.append(float(scale_coverage([0.9], fit_scale(z**2))[0]) - truth)
        err_ind.append(float(np.mean(np.abs(ndtr(z) - 0.5) <= 0.45)) - truth)
    assert np.quantile(np.abs(err_scale), 0.95) <= 0.034
    assert np.quantile(np.abs(err_ind), 0.95) > np.quantile(np.abs(err_scale), 0.95)


def _records(rng, r, *, units, family="ate", with_pit=True, sample_size=3000):
    out = []
    for i in range(units):
        z = _z(rng, r, 1)
        u = ndtr(z)
        counts = tuple(int(c) for c in _hist(u))
        zsq = float(z[0] ** 2)
        for q in LEVELS:
            cov = float(abs(u[0] - 0.5) <= q / 2)
            out.append(CalibrationRecord(
                i, 0, family, q, cov, 1, 1.0, "m", 2, "none", sample_size, "t", f"u{i}",
                pit_counts=counts if with_pit else None, z_sq_mean=zsq if with_pit else None,
            ))
    return out


@pytest.mark.filterwarnings("ignore::pytyche.calibrate.CalibrationExtrapolationWarning")
def test_fit_uses_the_scale_form_for_ate_when_records_carry_z_sq(tmp_path):
    rng = np.random.default_rng(3)
    recs = _records(rng, 1.3, units=800)  # the tolerance needs about 500 units at r = 1.3
    corr = LayeredCalibrationCorrection.fit(recs, "m", 2, "none")
    assert corr.provenance["forms"] == {"ate": "scale"}
    curve = corr.served_curve("ate", 3000)
    assert curve is not None and curve.scale is not None
    assert abs(curve.scale - 1.3) < 3 * 1.3 / math.sqrt(2 * 800)
    # one multiplier at every level: the scale itself
    for q in (0.5, 0.8, 0.9, 0.95, 0.99):
        assert corr.multiplier(q, "ate", 3000) == pytest.approx(curve.scale, rel=1e-6)
    # the units it needs follow from the records' z^2, not the indicator bound
    assert corr.min_units_by_family["ate"] == scale_min_units(
        [r.z_sq_mean for r in recs if r.nominal == 0.5], 0.03, (0.8, 0.9))
    # the form survives the JSON round trip
    again = LayeredCalibrationCorrection.from_json(corr.to_json(tmp_path / "a.json"))
    assert again.served_curve("ate", 3000).scale == curve.scale
    assert LayerCurve.from_dict(curve.to_dict()) == curve
    # half the units: the curve cannot meet +-3 pp, so the ATE stays raw (with a warning)
    few = LayeredCalibrationCorrection.fit(recs[: 6 * 250], "m", 2, "none")
    with pytest.warns(CalibrationExtrapolationWarning):
        assert few.served_curve("ate", 3000) is None
        assert few.multiplier(0.9, "ate", 3000) == 1.0


def test_records_without_z_sq_keep_the_isotonic_form():
    rng = np.random.default_rng(4)
    recs = _records(rng, 1.3, units=50, with_pit=False)
    corr = LayeredCalibrationCorrection.fit(recs, "m", 2, "none", min_units=10)
    assert corr.provenance["forms"] == {"ate": "isotonic"}
    assert corr.served_curve("ate", 3000).scale is None
    with pytest.raises(ValueError, match=r"forms\['ate'\].*lack z_sq_mean"):
        LayeredCalibrationCorrection.fit(recs, "m", 2, "none", forms={"ate": "scale"})
    with pytest.raises(ValueError, match=r"forms\['ate'\]"):
        LayeredCalibrationCorrection.fit(recs, "m", 2, "none", forms={"ate": "straight"})
    with pytest.raises(ValueError, match="'forms' parameter"):
        LayeredCalibrationCorrection.fit(recs, "m", 2, "none", forms={"lift": "scale"})
    # and the isotonic form can be asked for when z_sq_mean is there
    with_pit = _records(rng, 1.3, units=50)
    iso = LayeredCalibrationCorrection.fit(with_pit, "m", 2, "none", forms={"ate": "isotonic"}, min_units=10)
    assert iso.provenance["forms"] == {"ate": "isotonic"}


def test_forms_merge_with_the_defaults_and_duplicate_units_are_refused():
    rng = np.random.default_rng(5)
    ate = _records(rng, 1.1, units=30)
    gate = _records(rng, 1.1, units=30, family="gate")
    corr = LayeredCalibrationCorrection.fit(ate + gate, "m", 2, "none", forms={"gate": "isotonic"}, min_units=10)
    assert corr.provenance["forms"] == {"ate": "scale", "gate": "isotonic"}  # ate keeps its default
    with pytest.raises(ValueError, match=r"forms\['cate'\]"):
        LayeredCalibrationCorrection.fit(ate, "m", 2, "none", forms={"cate": "bogus"})  # checked though absent
    # two datasets whose records share a unit key: the scale form cannot tell their z^2 apart
    clash = [dataclasses.replace(r, task_id="") for r in ate]
    with pytest.raises(ValueError, match="one record per .* unit, family and level"):
        LayeredCalibrationCorrection.fit(clash + clash, "m", 2, "none")
    with pytest.raises(TypeError, match="'scale' parameter"):
        LayerCurve("ate", None, (0.9,), (0.9,), (0.9,), (1.0,), 1, 1, scale=True)
