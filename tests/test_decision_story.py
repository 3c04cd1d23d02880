"""One story per decision: the probabilities behind SHIP / STOP, the expected loss and the lift
interval come from the same lift draws, moved by the same calibration as the intervals.

- ``decision_interval`` agrees exactly with the tail probabilities ``decide`` compares: on any
  draws, the lower bound of the 90% lift interval is above 0 iff ``p_positive > 0.95``.
- ``Calibration.decision_draws`` moves draws so that their equal-tailed intervals are the
  calibrated intervals, and leaves them alone where the evidence keeps a family raw.
- An artifact whose ATE evidence is insufficient (every shipped one) leaves the ATE, and so the
  lift interval and ``p_positive``, raw.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr, ndtri

from pytyche.calibrate import Calibration, LayeredCalibrationCorrection, raw_interval
from pytyche.compare import recommendation_summary
from pytyche.compare.variants import LIFT_LEVEL, decision_interval
from pytyche.contracts import CalibrationRecord, ClaimLevel, DecisionThresholds
from tests.test_analysis import PlantedPosterior, frame, observed_from

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.sampled_from([-2.0, -1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 3.0]) | st.floats(-5, 5), min_size=1, max_size=400),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
)
def test_the_lift_interval_agrees_exactly_with_the_tail_probabilities(values, level):
    d = np.array(values)
    lo, hi = decision_interval(d, level)
    p = (1.0 + level) / 2.0
    assert (lo > 0) == (float(np.mean(d > 0)) > p)
    assert (hi < 0) == (float(np.mean(d < 0)) > p)
    assert lo <= hi or level < 0.5  # a central interval


def test_the_default_level_is_the_ship_threshold():
    assert (1.0 + LIFT_LEVEL) / 2.0 == DecisionThresholds().p_positive_min


def lift_posterior(mu, sigma, *, s=2000, n=40, seed=0):
    obs = observed_from(frame(n, seed), ("control", "a"), seed)
    rng = np.random.default_rng(seed)
    c = 1.0 + 0.001 * rng.normal(size=s)
    d = mu + sigma * rng.normal(size=s)
    draws = np.broadcast_to(np.stack([c, c + d], axis=-1)[None], (n, s, 2)).astype(np.float64)
    return PlantedPosterior(obs, np.ascontiguousarray(draws))


def widening_calibration(ratio=1.5, families=("ate", "gate", "cate")):
    """An artifact whose records plant raw intervals ``ratio`` times too narrow, with a held-out
    validation that supports the correction for ``families``."""
    rng = np.random.default_rng(0)
    recs = []
    for fam in families:
        for r in range(12):
            for q in LEVELS:
                c = rng.binomial(400, 2 * ndtr(ndtri((1 + q) / 2) / ratio) - 1) / 400
                recs.append(CalibrationRecord(r, 0, fam, q, c, 400, 1.0, "m", 2, "none", 3000, "t", f"t{r}"))
    rows = [{"family": f, "nominal": q, "raw": {"mean": float(2 * ndtr(ndtri((1 + q) / 2) / ratio) - 1), "sd": 0.05, "n_datasets": 40},
             "calibrated": {"mean": q}} for f in families for q in LEVELS]
    corr = LayeredCalibrationCorrection.fit(recs, "m", 2, "none", {"validation": {"templates": ["h"], "levels": rows}}, min_units=5)
    return Calibration.from_correction(corr, name="widening")


def test_decision_draws_give_the_calibrated_interval_and_raw_where_the_family_stays_raw():
    cal = widening_calibration(families=("ate",))
    d = np.random.default_rng(3).normal(0.2, 1.0, 4000)
    moved = cal.decision_draws(d, "ate", 3000)
    assert np.all(np.diff(moved[np.argsort(d)]) >= 0)  # order kept
    for q in (0.5, 0.8, 0.9, 0.95):
        want = np.array(cal.interval(d, level=q, family="ate", sample_size=3000))
        got = np.quantile(moved, [(1 - q) / 2, (1 + q) / 2])
        # the moved draws' quantiles are the calibrated interval up to interpolation between draws:
        # a few draw spacings at the tails (about 0.01 sd for 4000 Gaussian draws)
        np.testing.assert_allclose(got, want, atol=0.03)
    assert cal.multiplier(0.9, "ate", 3000) > 1.3
    np.testing.assert_array_equal(cal.decision_draws(d, "gate", 3000), d)  # gate not validated: raw
    np.testing.assert_array_equal(Calibration.skip().decision_draws(d, "ate", 3000), d)


@pytest.mark.parametrize("mu", [0.0, 0.01, 0.0155, 0.016, 0.0165, 0.017, 0.02, 0.03])
def test_recommendation_probabilities_and_interval_agree_calibrated_or_not(mu):
    raw = lift_posterior(mu, 0.01)
    cal = dataclasses.replace(raw, calibration=widening_calibration())
    for post in (raw, cal):
        r = recommendation_summary(post, "a")
        assert (r.lift_ci[0] > 0) == (r.p_positive > 0.95), (mu, r.lift_ci, r.p_positive)
    r_raw, r_cal = recommendation_summary(raw, "a"), recommendation_summary(cal, "a")
    assert r_cal.claim_level is ClaimLevel.CALIBRATED and r_raw.claim_level is ClaimLevel.UNCALIBRATED
    # the correction widens around the median: the calibrated lift is no surer of its sign
    # (up to one draw in 2000 where the median sits on zero)
    assert abs(r_cal.p_positive - 0.5) <= abs(r_raw.p_positive - 0.5) + 1 / 2000
    assert r_cal.lift_ci[1] - r_cal.lift_ci[0] > 1.3 * (r_raw.lift_ci[1] - r_raw.lift_ci[0])


def test_shipped_artifacts_leave_the_ate_raw():
    """Every default-config artifact's held-out ATE evidence is one indicator per dataset (40
    datasets: about +-12 pp), which cannot show raw off nominal: its ATE intervals, and so the
    lift interval and p_positive, stay raw, while its CATE is corrected where validated."""
    cal = Calibration.from_sweep("rpv_k2_joint_v1")
    assert cal.family_status()["ate"] == "raw" and cal.family_status()["cate"] == "partial"
    d = np.random.default_rng(5).normal(0.1, 1.0, size=(3, 500))
    np.testing.assert_array_equal(np.stack(cal.interval(d, level=0.9, family="ate", sample_size=3000)),
                                  np.stack(raw_interval(d, 0.9)))
    assert cal.multiplier(0.9, "cate", 3000) < 0.95  # CATE: narrowed where validated
    raw = lift_posterior(0.016, 0.01)
    calibrated = dataclasses.replace(raw, calibration=cal)
    raw_r, cal_r = recommendation_summary(raw, "a"), recommendation_summary(calibrated, "a")
    assert raw_r.lift_ci == cal_r.lift_ci and raw_r.p_positive == cal_r.p_positive
    assert cal_r.claim_level is ClaimLevel.UNCALIBRATED  # the ATE family is raw
