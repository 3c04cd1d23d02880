"""SHIP spending: a sequential run's SHIP gate shares the run's error over its rounds and arms.

- The arithmetic: equal shares over a finite schedule, shares summing to 1 over an open-ended one,
  ``"none"`` leaving the single-look gate.
- The union bound, checked by simulation: calibrated looks at cumulative data of a null effect
  pass the single-look gate at some round of four far more often than 5%; the spent gate keeps
  the whole run at or under 5%.
- The loop uses it: each round's analysis, recommendations and SHIP signals decide with the spent
  thresholds, and the sweep's decision rows record them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import ndtr

from dgps import make_generator
from pytyche.compare.variants import decide
from pytyche.contracts import DecisionThresholds
from pytyche.contracts.enums import Decision
from pytyche.experiment import ExpectedLossRule, FixedSchedule, GeometricSchedule, ShipSpending, sequential_experiment
from pytyche.experiment.spending import ship_spending

from _config import TINY

pytestmark = pytest.mark.filterwarnings("ignore::pytyche.experiment.UncalibratedWarning")


def test_equal_shares_over_a_finite_schedule_and_summable_shares_over_an_open_one():
    s = ShipSpending()
    assert s.method == "bonferroni"
    assert [s.share(r, 4) for r in range(4)] == [0.25] * 4
    assert s.thresholds(DecisionThresholds(), 2, 4).p_positive_min == pytest.approx(0.9875)
    base = DecisionThresholds(p_positive_min=0.9, p_better_min=0.7, min_effect=0.02)
    spent = s.thresholds(base, 0, 2)
    assert spent.p_positive_min == pytest.approx(0.95)
    assert (spent.p_better_min, spent.min_effect, spent.p_harmful_min) == (0.7, 0.02, base.p_harmful_min)  # only SHIP spends
    open_shares = [s.share(r, None) for r in range(100_000)]
    assert open_shares[0] == pytest.approx(6 / math.pi**2) and sum(open_shares) < 1.0
    assert all(a > b for a, b in zip(open_shares, open_shares[1:]))
    none = ShipSpending("none")
    assert none.thresholds(base, 3, 4) is base and none.share(7, None) == 1.0
    assert s.thresholds(base, 0, 1) is base  # one look: nothing to share


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ShipSpending("pocock"), "'method' parameter of ShipSpending"),
        (lambda: ShipSpending("obrien_fleming").share(0, 3, [1, 0, 1]), "'sizes' parameter of ShipSpending.share"),
        (lambda: ShipSpending().share(4, 4), "'round_idx' parameter of ShipSpending.share"),
        (lambda: ShipSpending().share(-1, 4), "'round_idx' parameter of ShipSpending.share"),
        (lambda: ShipSpending().share(0, 0), "'n_rounds' parameter of ShipSpending.share"),
        (lambda: ship_spending("holm", "SequentialExperiment"), "'ship_spending' parameter of SequentialExperiment"),
        (lambda: ShipSpending(over_arms="yes"), "'over_arms' parameter of ShipSpending"),
        (lambda: ShipSpending().thresholds(DecisionThresholds(), 0, 4, n_arms=0), "'n_arms' parameter of ShipSpending.arm_alpha"),
    ],
)
def test_bad_spending_names_the_field(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_error_is_split_over_the_treated_arms_too():
    """Two treated arms at 4 rounds: each arm's looks spend 0.05 / 2, so Bonferroni's gate is
    1 - 0.05 / 8 = 0.99375 and O'Brien-Fleming's is its 2.5% boundary; ``over_arms=False`` is the
    looks-only split, and ``"none"`` ignores arms."""
    from pytyche.experiment.spending import obrien_fleming_constant

    base = DecisionThresholds()
    assert ShipSpending().thresholds(base, 1, 4, n_arms=2).p_positive_min == pytest.approx(0.99375)
    assert ShipSpending().thresholds(base, 1, 4, n_arms=1) == ShipSpending().thresholds(base, 1, 4)
    assert ShipSpending(over_arms=False).thresholds(base, 1, 4, n_arms=2).p_positive_min == pytest.approx(0.9875)
    assert ShipSpending("none").thresholds(base, 1, 4, n_arms=3) is base
    assert ShipSpending().thresholds(base, 0, 1, n_arms=2).p_positive_min == pytest.approx(0.975)  # one look, two arms
    c = obrien_fleming_constant((0.25, 0.5, 0.75, 1.0), 0.025)
    gates = [ShipSpending("obrien_fleming").thresholds(base, r, 4, n_arms=2).p_positive_min for r in range(4)]
    np.testing.assert_allclose(gates, ndtr(c / np.sqrt([0.25, 0.5, 0.75, 1.0])))


def test_splitting_over_arms_holds_a_three_arm_null_run_to_five_percent():
    """Two null arms against one control, 4 calibrated looks, 4,000 simulated runs (fixed seed).
    Each arm's z is its own noise minus the control's (correlation 1/2 between the arms). The
    looks-only split bounds each arm at 5%, so the run (either arm ships) is near 7% (7.0% here);
    the split over arms too keeps it under the union bound's 5% (3.5% here). The binomial sd at
    5% and 4,000 runs is 0.34 pp: the bounds sit over 4 sd from the expected rates."""
    rng = np.random.default_rng(12)
    n_runs, n_rounds = 4000, 4
    control, a, b = (rng.standard_normal((n_runs, n_rounds)) for _ in range(3))
    scale = np.sqrt(2 * np.arange(1, n_rounds + 1))
    z = [np.cumsum(arm - control, axis=1) / scale for arm in (a, b)]

    def rate(spending):
        gates = [spending.thresholds(DecisionThresholds(), r, n_rounds, n_arms=2).p_positive_min for r in range(n_rounds)]
        return float(np.mean(np.any([ndtr(zk) > np.array(gates) for zk in z], axis=(0, 2))))

    looks_only, arms_too = rate(ShipSpending(over_arms=False)), rate(ShipSpending())
    assert looks_only > 0.055
    assert arms_too <= 0.05 and arms_too < looks_only


def _whole_run_false_ship(method: str, n_runs: int, n_rounds: int, seed: int) -> float:
    """Share of null runs in which the SHIP gate fires at some round, when every look's
    ``p_positive`` is calibrated: the lift estimate at round r averages r equal blocks of noise,
    the posterior is normal around it with the right sd, so ``p_positive = Phi(z_r)``."""
    rng = np.random.default_rng(seed)
    blocks = rng.standard_normal((n_runs, n_rounds))
    z = np.cumsum(blocks, axis=1) / np.sqrt(np.arange(1, n_rounds + 1))
    spending = ShipSpending(method)
    fired = np.zeros(n_runs, dtype=bool)
    for r in range(n_rounds):
        th = spending.thresholds(DecisionThresholds(), r, n_rounds)
        p_pos = ndtr(z[:, r])
        # only the p_positive gate is in play: no expected loss, p_better certain
        fired |= np.array([decide(0.0, float(p), 1.0, 0.0, th)[0] is Decision.SHIP for p in p_pos])
    return float(fired.mean())


def test_obrien_fleming_gates_spend_little_early_and_follow_the_schedule_s_sizes():
    """O'Brien-Fleming at 4 equal rounds: gates Phi(C / sqrt(t_r)) with C = 1.738 (the 95%
    quantile of the Brownian motion's maximum over t = 1/4, 1/2, 3/4, 1; Jennison & Turnbull's
    tables give 1.73 for one-sided 0.05 at 4 looks), so about 0.9998, 0.993, 0.978 and 0.959.
    Unequal sizes move the gates with the information fractions; an open-ended schedule spends
    as the Bonferroni series does."""
    from pytyche.experiment.spending import obrien_fleming_constant

    of = ShipSpending("obrien_fleming")
    c = obrien_fleming_constant((0.25, 0.5, 0.75, 1.0), 0.05)
    assert abs(c - 1.73) < 0.02
    gates = [of.thresholds(DecisionThresholds(), r, 4).p_positive_min for r in range(4)]
    np.testing.assert_allclose(gates, ndtr(c / np.sqrt([0.25, 0.5, 0.75, 1.0])))
    assert all(a > b for a, b in zip(gates, gates[1:])) and 0.95 < gates[-1] < 0.97 and gates[0] > 0.999
    assert gates == [of.thresholds(DecisionThresholds(), r, 4, [3000] * 4).p_positive_min for r in range(4)]
    # a doubling schedule: the first round holds 1/15 of the visitors, so its gate is stricter still
    doubling = [of.thresholds(DecisionThresholds(), r, 4, [1000, 2000, 4000, 8000]).p_positive_min for r in range(4)]
    assert doubling[0] > gates[0] and doubling[-1] == pytest.approx(ndtr(obrien_fleming_constant((1 / 15, 3 / 15, 7 / 15, 1.0), 0.05)))
    assert of.share(3, None) == ShipSpending().share(3, None)
    with pytest.raises(ValueError, match="'sizes' parameter of ShipSpending.share"):
        of.share(0, 4, [100, 100])
    with pytest.raises(ValueError, match="'fractions' parameter of obrien_fleming_constant"):
        obrien_fleming_constant((0.5, 0.25, 1.0), 0.05)


def test_spending_holds_a_null_run_to_five_percent_where_the_single_look_gate_does_not():
    """4 looks, 4,000 simulated runs each way (fixed seed). The single-look gate's whole-run rate
    is about 12.6% for four equally spaced looks at a one-sided 5% (Armitage et al. 1969; 12.7%
    here); the spent gate's is under the union bound's 5% (3.7% here). The binomial sd at 5% and
    4,000 runs is 0.34 pp, so the bounds below (8% and 5%) sit far from the expected rates
    (over 8 and 3 sd)."""
    single = _whole_run_false_ship("none", 4000, 4, seed=11)
    spent = _whole_run_false_ship("bonferroni", 4000, 4, seed=11)
    assert single > 0.08
    assert spent <= 0.05
    assert spent < single
    # O'Brien-Fleming spends all of alpha, not a union bound's share: about 5%, within 3 sd
    # (1.0 pp) of it, and more than Bonferroni's 3.7% on the same runs
    of = _whole_run_false_ship("obrien_fleming", 4000, 4, seed=11)
    assert abs(of - 0.05) < 0.0103 and of > spent


@pytest.fixture(scope="module")
def two_rounds():
    gen = make_generator("null_effect", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = sequential_experiment(generator=gen, schedule=FixedSchedule(per_round=600, n_rounds=2), treatments=list(gen.treatments),
                                    bcf_config=TINY, seed=2)
        return exp, [next(exp), next(exp)]


def test_each_round_decides_with_the_spent_gate(two_rounds):
    exp, rounds = two_rounds
    assert exp.ship_spending == ShipSpending("bonferroni")
    for e in rounds:
        th = e.analysis.thresholds
        assert th.p_positive_min == pytest.approx(0.975)  # 1 - 0.05 / 2
        assert all(s.thresholds == th for s in e.analysis.recommendations.values())
        assert all(s.thresholds == th for per in e.analysis.segment_recommendations.values() for s in per.values())
        assert all(sig.summary.thresholds == th for sig in e.ship_signals)
        # one story: SHIP never fires below the spent gate
        for s in e.analysis.recommendations.values():
            assert s.decision is not Decision.SHIP or s.p_positive > th.p_positive_min


def test_the_rule_s_own_thresholds_are_the_base_and_none_keeps_them():
    gen = make_generator("null_effect", seed=5)
    rule = ExpectedLossRule(DecisionThresholds(p_positive_min=0.9))
    exp = sequential_experiment(generator=gen, schedule=FixedSchedule(per_round=600, n_rounds=2), treatments=list(gen.treatments),
                                bcf_config=TINY, seed=2, graduation_rule=rule)
    th, round_rule = exp._round_rule(1)
    assert th.p_positive_min == pytest.approx(0.95) and round_rule.thresholds == th
    assert round_rule.stability_threshold == rule.stability_threshold and exp.graduation_rule is rule  # the rule itself is unchanged
    plain = sequential_experiment(generator=gen, schedule=FixedSchedule(per_round=600, n_rounds=2), treatments=list(gen.treatments),
                                  bcf_config=TINY, seed=2, graduation_rule=rule, ship_spending="none")
    assert plain._round_rule(1) == (rule.thresholds, rule)
    # an open-ended schedule spends a summable share: 61% of the error at the first look
    open_ended = sequential_experiment(generator=gen, schedule=GeometricSchedule(initial=600, growth=2.0), treatments=list(gen.treatments),
                                       bcf_config=TINY, seed=2)
    assert open_ended._round_rule(0)[0].p_positive_min == pytest.approx(1 - 0.05 * 6 / math.pi**2)
    with pytest.raises(ValueError, match="'ship_spending' parameter of SequentialExperiment"):
        sequential_experiment(generator=gen, schedule=FixedSchedule(per_round=600, n_rounds=2), treatments=list(gen.treatments),
                              ship_spending="sometimes")
    # three arms (two treated): each arm spends half the error over its looks
    three = make_generator("harmful_arm", seed=5)
    assert len(three.treatments) == 3
    k3 = sequential_experiment(generator=three, schedule=FixedSchedule(per_round=600, n_rounds=4), treatments=list(three.treatments),
                               bcf_config=TINY, seed=2)
    assert k3._round_rule(0)[0].p_positive_min == pytest.approx(1 - 0.05 / 8)
    looks_only = sequential_experiment(generator=three, schedule=FixedSchedule(per_round=600, n_rounds=4), treatments=list(three.treatments),
                                       bcf_config=TINY, seed=2, ship_spending=ShipSpending(over_arms=False))
    assert looks_only._round_rule(0)[0].p_positive_min == pytest.approx(1 - 0.05 / 4)
    # O'Brien-Fleming reads the schedule's own round sizes: a doubling schedule's first round
    # holds 1/7 of a 3-round run's visitors
    of = sequential_experiment(generator=gen, schedule=GeometricSchedule(initial=600, growth=2.0, n_rounds=3),
                               treatments=list(gen.treatments), bcf_config=TINY, seed=2, ship_spending="obrien_fleming")
    want = [ShipSpending("obrien_fleming").thresholds(DecisionThresholds(), r, 3, [600, 1200, 2400]).p_positive_min for r in range(3)]
    assert [of._round_rule(r)[0].p_positive_min for r in range(3)] == want
    assert want != [ShipSpending("obrien_fleming").thresholds(DecisionThresholds(), r, 3).p_positive_min for r in range(3)]
