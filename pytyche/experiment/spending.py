"""How a sequential run spends the SHIP gate's error over its looks.

A run checks the SHIP gate every round. With the single-look gate ``p_positive > 0.95`` at every
one of ``R`` rounds, an arm with no effect has up to ``R`` chances to pass it, so the chance that
it passes at least once over the run grows with ``R`` (looks at cumulative data are correlated,
so less than ``R`` times 5%, but well above 5%: 12.6% at four equally spaced looks whose
probabilities are calibrated, ``tests/test_ship_spending.py``). The run's error is controlled by giving each look
a share of it: round ``r`` ships only when ``p_positive > 1 - alpha * share(r)``, where
``alpha = 1 - p_positive_min`` is the run's error and the shares sum to at most 1. When each
look's ``p_positive`` is calibrated, the union bound then holds the chance of a false SHIP
anywhere in the run to ``alpha``.

``"bonferroni"`` (the default) splits ``alpha`` equally over a finite schedule's ``R`` rounds
(``share = 1 / R``; at 4 rounds the gate is ``p_positive > 0.9875``, i.e. the one-sided 98.75%
bound above 0). An open-ended schedule spends ``6 / (pi^2 (r + 1)^2)`` at round ``r`` (0-based),
which sums to 1 over all rounds: 61% of ``alpha`` at the first look, 15% at the second, and so on.
``"none"`` applies ``p_positive_min`` at every round, the rule before spending (each look
controlled, the run not).

Only the SHIP gate spends: STOP (harm, futility) keeps its thresholds. The other SHIP conditions
(``expected_loss < tolerance``, ``p_better > p_better_min``) are unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pytyche._validation import check_int, invalid
from pytyche.contracts.results import DecisionThresholds

__all__ = ["DEFAULT_SHIP_SPENDING", "SHIP_SPENDING_METHODS", "ShipSpending", "ship_spending"]

#: the spending methods :class:`ShipSpending` knows
SHIP_SPENDING_METHODS = ("bonferroni", "none")

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
        ``"bonferroni"`` (default) or ``"none"``.
    """

    method: str = DEFAULT_SHIP_SPENDING

    def __post_init__(self) -> None:
        if self.method not in SHIP_SPENDING_METHODS:
            raise invalid("method", "ShipSpending", "one of " + ", ".join(repr(m) for m in SHIP_SPENDING_METHODS), self.method)

    def share(self, round_idx: int, n_rounds: int | None) -> float:
        """The share of the run's error the SHIP gate spends at ``round_idx`` (0-based) of a
        schedule of ``n_rounds`` rounds (``None``: open-ended)."""
        where = "ShipSpending.share"
        round_idx = check_int(round_idx, "round_idx", where, low=0)
        if self.method == "none":
            return 1.0
        if n_rounds is None:
            return 6.0 / (math.pi**2 * (round_idx + 1) ** 2)
        n_rounds = check_int(n_rounds, "n_rounds", where, low=1)
        if round_idx >= n_rounds:
            raise invalid("round_idx", where, f"a round of the {n_rounds}-round schedule (0 to {n_rounds - 1})", round_idx)
        return 1.0 / n_rounds

    def thresholds(self, base: DecisionThresholds, round_idx: int, n_rounds: int | None) -> DecisionThresholds:
        """``base`` with the SHIP gate of round ``round_idx``:
        ``p_positive_min = 1 - (1 - base.p_positive_min) * share(round_idx, n_rounds)``."""
        if not isinstance(base, DecisionThresholds):
            raise invalid("base", "ShipSpending.thresholds", "a DecisionThresholds", base)
        share = self.share(round_idx, n_rounds)
        if share == 1.0:
            return base
        return dataclasses.replace(base, p_positive_min=1.0 - (1.0 - base.p_positive_min) * share)


def ship_spending(value: Any, where: str) -> ShipSpending:
    """A :class:`ShipSpending` from itself or a method name (the ``ship_spending`` parameter)."""
    if isinstance(value, ShipSpending):
        return value
    if isinstance(value, str) and value in SHIP_SPENDING_METHODS:
        return ShipSpending(value)
    raise invalid("ship_spending", where, "a ShipSpending or one of " + ", ".join(repr(m) for m in SHIP_SPENDING_METHODS), value)
