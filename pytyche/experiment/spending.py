"""How a sequential run spends the SHIP gate's error over its looks.

A run checks the SHIP gate every round. With the single-look gate ``p_positive > 0.95`` at every
one of ``R`` rounds, an arm with no effect has up to ``R`` chances to pass it, so the chance that
it passes at least once over the run grows with ``R`` (looks at cumulative data are correlated,
so less than ``R`` times 5%, but well above 5%: 12.6% at four equally spaced looks whose
probabilities are calibrated, ``tests/test_ship_spending.py``). The run's error is controlled by giving each look
a share of it: round ``r`` ships only when ``p_positive > 1 - alpha * share(r)``, where
``alpha = 1 - p_positive_min`` is the run's error. Under ``"bonferroni"`` and the open-ended
series the shares sum to at most 1, so when each look's ``p_positive`` is calibrated the union
bound holds the chance of a false SHIP anywhere in the run to ``alpha``; under
``"obrien_fleming"`` the looks' shares sum to more than 1 (1.4 at four equal rounds) and the
joint probability itself is ``alpha``.

``"bonferroni"`` (the default) splits ``alpha`` equally over a finite schedule's ``R`` rounds
(``share = 1 / R``; at 4 rounds and one treated arm the gate is ``p_positive > 0.9875``, i.e. the
one-sided 98.75% bound above 0). An open-ended schedule spends ``6 / (pi^2 (r + 1)^2)`` at round ``r`` (0-based),
which sums to 1 over all rounds: 61% of ``alpha`` at the first look, 15% at the second, and so on.
``"obrien_fleming"`` spends little early and most at the end (O'Brien & Fleming 1979, as group
sequential trials do). With ``t_r = N_r / N_R`` the cumulative share of a finite schedule's
visitors at round ``r``, the gate is ``p_positive > Phi(C / sqrt(t_r))``, where ``C`` solves
``P(max_r W(t_r) > C) = alpha`` for a standard Brownian motion ``W``: the exact chance that a
calibrated null arm crosses the boundary at some look (cumulative-data looks are the Brownian
motion's values; :func:`obrien_fleming_constant`). At 4 equal rounds and ``alpha = 0.05`` the
gates are about 0.9998, 0.993, 0.978 and 0.958: the last look nearly the single-look gate, the
first nearly closed. An open-ended schedule has no final size, so it spends as ``"bonferroni"``
does there.
``"none"`` applies ``p_positive_min`` at every round, the rule before spending (each look
controlled, the run not).

Arms. A run with ``K - 1`` treated arms checks the gate for each of them at every look, so an
experiment where no arm is better has ``K - 1`` chances per look to ship one falsely. With
``over_arms=True`` (the default) the error is split over the arms as well: each arm's looks spend
``alpha / (K - 1)`` by the method above, so the chance that *any* arm ships falsely over the run
is at most ``alpha`` (union bound over the arms). At 4 rounds and three arms (two treated) the
Bonferroni gate is ``p_positive > 1 - 0.05 / 8 = 0.99375``. Measured before the split: on the
held-out null ``clustered_realistic`` (three arms, 4 x 3,000) the looks-only split shipped falsely
in 3 of 21 runs (``bench/RESULTS.md``). ``K - 1`` counts the experiment's treatments universe, not
the arms still active at a round: an arm stopped early leaves its share unspent (conservative).
A save from before the split loads with ``over_arms=False``, the rule it ran.

Only the SHIP gate spends: STOP (harm, futility) keeps its thresholds. The other SHIP conditions
(``expected_loss < tolerance``, ``p_better > p_better_min``) are unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import ndtr

from pytyche._validation import check_int, invalid
from pytyche.contracts.results import DecisionThresholds

__all__ = ["DEFAULT_SHIP_SPENDING", "SHIP_SPENDING_METHODS", "ShipSpending", "obrien_fleming_constant", "ship_spending"]

#: the spending methods :class:`ShipSpending` knows
SHIP_SPENDING_METHODS = ("bonferroni", "obrien_fleming", "none")

#: Monte Carlo paths behind :func:`obrien_fleming_constant` (the run's error it gives is within
#: about 0.0004 of ``alpha``; a fixed seed makes every threshold reproducible)
_OF_PATHS = 400_000


@lru_cache(maxsize=64)
def obrien_fleming_constant(fractions: tuple[float, ...], alpha: float) -> float:
    """``C`` with ``P(max_r W(t_r) > C) = alpha`` for a standard Brownian motion ``W`` at the
    cumulative information fractions ``t_r`` (increasing, the last 1): the (1 - alpha) quantile
    of the maximum over the looks, by Monte Carlo over :data:`_OF_PATHS` paths (seed 0)."""
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or t[0] <= 0 or abs(t[-1] - 1.0) > 1e-12:
        raise invalid("fractions", "obrien_fleming_constant", "increasing information fractions in (0, 1], the last 1", list(fractions))
    if not 0.0 < alpha < 1.0:
        raise invalid("alpha", "obrien_fleming_constant", "a run error in (0, 1)", alpha)
    rng = np.random.default_rng(0)
    sd = np.sqrt(np.diff(np.r_[0.0, t]))
    maxima = np.empty(_OF_PATHS)
    chunk = 50_000  # bounded memory whatever the number of rounds
    for start in range(0, _OF_PATHS, chunk):
        stop = min(start + chunk, _OF_PATHS)
        maxima[start:stop] = np.cumsum(rng.standard_normal((stop - start, t.size)) * sd, axis=1).max(axis=1)
    return float(np.quantile(maxima, 1.0 - alpha))

#: the default method of a :class:`~pytyche.experiment.SequentialExperiment`
DEFAULT_SHIP_SPENDING = "bonferroni"

#: the method of a save from before spending existed (it ran each look at ``p_positive_min``)
LEGACY_SHIP_SPENDING = "none"


@dataclass(frozen=True)
class ShipSpending:
    """The SHIP gate's share of the run's error at each round (see the module docstring).

    Parameters
    ----------
    method
        ``"bonferroni"`` (default), ``"obrien_fleming"`` or ``"none"``.
    over_arms
        Whether the run's error is also split over the treated arms (default ``True``): each
        arm spends ``alpha / n_arms`` over its looks. Ignored by ``"none"``.
    """

    method: str = DEFAULT_SHIP_SPENDING
    over_arms: bool = True

    def __post_init__(self) -> None:
        if self.method not in SHIP_SPENDING_METHODS:
            raise invalid("method", "ShipSpending", "one of " + ", ".join(repr(m) for m in SHIP_SPENDING_METHODS), self.method)
        if not isinstance(self.over_arms, (bool, np.bool_)):
            raise invalid("over_arms", "ShipSpending", "a bool", self.over_arms)

    def share(self, round_idx: int, n_rounds: int | None, sizes: Sequence[int] | None = None, alpha: float = 0.05) -> float:
        """The share of the run's error ``alpha`` the SHIP gate spends at ``round_idx``
        (0-based) of a schedule of ``n_rounds`` rounds (``None``: open-ended): the look's gate is
        ``p_positive > 1 - alpha * share``.

        ``sizes`` (the finite schedule's round sizes; default equal) and ``alpha`` matter to
        ``"obrien_fleming"`` only, whose looks' nominal shares are not a split of ``alpha`` (their
        joint crossing probability is ``alpha``).
        """
        where = "ShipSpending.share"
        round_idx = check_int(round_idx, "round_idx", where, low=0)
        if self.method == "none":
            return 1.0
        if n_rounds is None:
            return 6.0 / (math.pi**2 * (round_idx + 1) ** 2)
        n_rounds = check_int(n_rounds, "n_rounds", where, low=1)
        if round_idx >= n_rounds:
            raise invalid("round_idx", where, f"a round of the {n_rounds}-round schedule (0 to {n_rounds - 1})", round_idx)
        if self.method == "bonferroni":
            return 1.0 / n_rounds
        sizes = [1] * n_rounds if sizes is None else [check_int(v, "sizes", where, low=1) for v in sizes]
        if len(sizes) != n_rounds:
            raise invalid("sizes", where, f"one size per round of the {n_rounds}-round schedule", list(sizes))
        cum = np.cumsum(sizes, dtype=np.float64)
        fractions = tuple(float(v) for v in cum / cum[-1])
        c = obrien_fleming_constant(fractions, float(alpha))
        return float(1.0 - ndtr(c / math.sqrt(fractions[round_idx]))) / alpha

    def arm_alpha(self, alpha: float, n_arms: int) -> float:
        """Each treated arm's share of the run's error ``alpha``: ``alpha / n_arms`` when the
        error is split over the arms (``over_arms`` and a spending method), else ``alpha``."""
        n_arms = check_int(n_arms, "n_arms", "ShipSpending.arm_alpha", low=1)
        return alpha / n_arms if self.over_arms and self.method != "none" else alpha

    def thresholds(self, base: DecisionThresholds, round_idx: int, n_rounds: int | None, sizes: Sequence[int] | None = None,
                   n_arms: int = 1) -> DecisionThresholds:
        """``base`` with the SHIP gate of round ``round_idx`` for a run with ``n_arms`` treated
        arms: ``p_positive_min = 1 - a * share(round_idx, n_rounds, sizes, alpha=a)`` with
        ``a = arm_alpha(1 - base.p_positive_min, n_arms)``."""
        if not isinstance(base, DecisionThresholds):
            raise invalid("base", "ShipSpending.thresholds", "a DecisionThresholds", base)
        alpha = self.arm_alpha(1.0 - base.p_positive_min, n_arms)
        share = self.share(round_idx, n_rounds, sizes, alpha=alpha) if alpha > 0 else 1.0
        gate = 1.0 - alpha * share
        if gate == base.p_positive_min:
            return base
        return dataclasses.replace(base, p_positive_min=gate)


def ship_spending(value: Any, where: str) -> ShipSpending:
    """A :class:`ShipSpending` from itself or a method name (the ``ship_spending`` parameter; a
    name splits over the arms, ``over_arms=True``)."""
    if isinstance(value, ShipSpending):
        return value
    if isinstance(value, str) and value in SHIP_SPENDING_METHODS:
        return ShipSpending(value)
    raise invalid("ship_spending", where, "a ShipSpending or one of " + ", ".join(repr(m) for m in SHIP_SPENDING_METHODS), value)
