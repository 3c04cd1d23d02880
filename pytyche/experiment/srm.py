"""Sample ratio mismatch (SRM): did the platform deliver the split the plan asked for?

Each round's observed counts are tested against what the round's plan implies, with Pearson
chi-square tests (:func:`scipy.stats.chisquare`):

- **cells**: visitors per cell against ``n * weight`` (``C - 1`` degrees of freedom);
- **arms**: within each cell, visitors per treatment against the sum over the cell's visitors of
  the probability the cell's policy gives that treatment. Visitors are grouped into strata of
  identical probability vectors (one per policy-tree leaf, one for a uniform or baseline cell);
  within a stratum the arm counts are multinomial, so the stratum's statistic is chi-square with
  (arms - 1) degrees of freedom. Strata smaller than :data:`MIN_STRATUM` visitors are pooled per
  cell (their expected counts summed), which is conservative.

The probabilities come from the plan itself, evaluated on the round's visitors, so a platform that
recorded propensities but delivered something else is still caught; a visitor delivered a
treatment the plan gave zero chance makes the round flagged outright (``p_value = 0``). Whether
the recorded propensities agree with the plan is reported separately
(``propensity_mismatch_share``). Categories with an expected count below :data:`MIN_EXPECTED`
are merged (smallest first) so the chi-square approximation holds.

The components are independent given the cell counts, so their statistics add: the round's
``p_value`` is the chi-square tail of the total at the total degrees of freedom, and a round is
``flagged`` when ``p_value < alpha`` (0.001, the threshold GrowthBook, Eppo and Statsig use).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pytyche._arms import one_hot

__all__ = [
    "SRM_ALPHA",
    "MIN_EXPECTED",
    "MIN_STRATUM",
    "SRMResult",
    "SampleRatioMismatchWarning",
    "srm_check",
    "srm_test",
    "warn_srm",
]

#: a round is flagged when its SRM p-value is below this
SRM_ALPHA = 0.001
#: categories with a smaller expected count are merged before the chi-square test
MIN_EXPECTED = 5.0
#: strata with fewer visitors are pooled per cell
MIN_STRATUM = 20


class SampleRatioMismatchWarning(UserWarning):
    """A round's observed cell or treatment counts do not match its plan (SRM p < 0.001).

    The estimates of such a round may be biased: the platform did not route visitors the way the
    plan says (a broken variant, bot filtering on one arm, a redirect that loses visitors...).
    Inspect ``experiment.srm`` and the platform's assignment logs before trusting the round.
    """


@dataclass(frozen=True)
class SRMResult:
    """The sample-ratio-mismatch test of one round.

    Attributes
    ----------
    p_value
        Chi-square p-value of the cells and arms tests together (0 when a visitor got a treatment
        the plan gave zero chance).
    flagged
        ``p_value < alpha``.
    statistic, df
        The total Pearson statistic and its degrees of freedom.
    cell_p_value, arm_p_value
        The two components' own p-values (1.0 when a component has no degrees of freedom).
    cell_counts, expected_cell_counts
        Visitors per cell, observed and planned.
    arm_counts, expected_arm_counts
        ``{cell: {treatment: count}}`` observed and expected from the plan's policies.
    impossible
        Visitors delivered a treatment their cell's policy gives zero probability.
    propensity_mismatch_share
        Share of visitors whose recorded propensities differ (by more than 1e-6) from the plan's
        probabilities, or ``None`` when the data carry no propensity columns.
    alpha
        The flagging threshold.
    """

    p_value: float
    flagged: bool
    statistic: float
    df: int
    cell_p_value: float
    arm_p_value: float
    cell_counts: Mapping[str, int] = field(default_factory=dict)
    expected_cell_counts: Mapping[str, float] = field(default_factory=dict)
    arm_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    expected_arm_counts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    impossible: int = 0
    propensity_mismatch_share: float | None = None
    alpha: float = SRM_ALPHA

    def __str__(self) -> str:
        head = f"SRM p = {self.p_value:.3g}" + (" (FLAGGED)" if self.flagged else "")
        cells = ", ".join(f"{c} {self.cell_counts[c]}/{self.expected_cell_counts[c]:.0f}" for c in self.cell_counts)
        extra = f"; {self.impossible} visitor(s) got a treatment the plan gave zero chance" if self.impossible else ""
        return f"{head}: cells observed/planned {cells}{extra}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value, "flagged": self.flagged, "statistic": self.statistic, "df": self.df,
            "cell_p_value": self.cell_p_value, "arm_p_value": self.arm_p_value,
            "cell_counts": dict(self.cell_counts), "expected_cell_counts": dict(self.expected_cell_counts),
            "arm_counts": {c: dict(v) for c, v in self.arm_counts.items()},
            "expected_arm_counts": {c: dict(v) for c, v in self.expected_arm_counts.items()},
            "impossible": self.impossible, "propensity_mismatch_share": self.propensity_mismatch_share,
            "alpha": self.alpha,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SRMResult":
        return cls(**dict(d))


def _pearson(observed: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """Pearson statistic and df over categories with positive expectation, sparse ones merged."""
    keep = expected > 0
    o = np.asarray(observed, dtype=np.float64)[keep]
    e = np.asarray(expected, dtype=np.float64)[keep]
    if e.size < 2:
        return 0.0, 0
    order = np.argsort(e, kind="stable")
    o, e = list(o[order]), list(e[order])
    while len(e) >= 2 and e[0] < MIN_EXPECTED:  # merge the smallest category into the next one
        o = [o[0] + o[1], *o[2:]]
        e = [e[0] + e[1], *e[2:]]
        pairs = sorted(zip(e, o))
        e, o = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(e) < 2:
        return 0.0, 0
    oa, ea = np.asarray(o), np.asarray(e)
    ea = ea * (oa.sum() / ea.sum())  # expected sums to n up to float round-off
    res = stats.chisquare(oa, ea)
    return float(res.statistic), len(e) - 1


def _tail(stat: float, df: int) -> float:
    return 1.0 if df == 0 else float(stats.chi2.sf(stat, df))


def srm_test(
    cell: np.ndarray,
    arm: np.ndarray,
    plan: Any,
    visitors: pd.DataFrame,
    recorded: np.ndarray | None = None,
    *,
    alpha: float = SRM_ALPHA,
) -> SRMResult:
    """SRM test from raw per-visitor arrays (see the module docstring).

    Parameters
    ----------
    cell
        ``(n,)`` cell id per visitor.
    arm
        ``(n,)`` index of the delivered treatment in ``plan.treatments``.
    plan
        The :class:`~pytyche.experiment.NextRoundPlan` the round shipped.
    visitors
        ``(n,)`` rows with the features the plan's policies read, in the same order.
    recorded
        Optional ``(n, K)`` recorded propensities over ``plan.treatments``, NaN where not recorded
        (compared with the plan's probabilities).
    alpha
        Flagging threshold.
    """
    treatments = tuple(plan.treatments)
    k = len(treatments)
    cell = np.asarray(cell, dtype=object)
    arm = np.asarray(arm, dtype=np.int64)
    n = cell.shape[0]
    weights = np.array([c.weight for c in plan.cells], dtype=np.float64)
    weights = weights / weights.sum()
    ids = [c.id for c in plan.cells]
    cell_obs = np.array([int(np.sum(cell == c)) for c in ids])
    cell_exp = n * weights
    cell_stat, cell_df = _pearson(cell_obs, cell_exp)
    rng = np.random.default_rng(0)  # the policies' probabilities do not depend on it
    arm_stat, arm_df, impossible = 0.0, 0, 0
    arm_counts: dict[str, dict[str, int]] = {}
    arm_expected: dict[str, dict[str, float]] = {}
    mismatched = 0
    for c in plan.cells:
        rows = np.flatnonzero(cell == c.id)
        if rows.size == 0:
            arm_counts[c.id] = {}
            arm_expected[c.id] = {}
            continue
        _, probs = c.policy.assign(visitors.iloc[rows], treatments, rng)
        probs = np.asarray(probs, dtype=np.float64)
        a = arm[rows]
        onehot = one_hot(a, k)
        impossible += int(np.sum(probs[np.arange(rows.size), a] <= 0))
        if recorded is not None:
            diff = np.abs(recorded[rows] - probs)
            mismatched += int(np.sum(np.any(np.nan_to_num(diff, nan=0.0) > 1e-6, axis=1)))
        arm_counts[c.id] = {t: int(v) for t, v in zip(treatments, onehot.sum(axis=0)) if v > 0}
        arm_expected[c.id] = {t: float(v) for t, v in zip(treatments, probs.sum(axis=0)) if v > 0}
        _, stratum = np.unique(np.round(probs, 12), axis=0, return_inverse=True)
        stratum = np.asarray(stratum).reshape(-1)
        pooled_o, pooled_e = np.zeros(k), np.zeros(k)
        for s in np.unique(stratum):
            sel = stratum == s
            o, e = onehot[sel].sum(axis=0), probs[sel].sum(axis=0)
            if sel.sum() < MIN_STRATUM:
                pooled_o += o
                pooled_e += e
                continue
            st_, df_ = _pearson(o, e)
            arm_stat += st_
            arm_df += df_
        if pooled_o.sum() > 0:
            st_, df_ = _pearson(pooled_o, pooled_e)
            arm_stat += st_
            arm_df += df_
    stat, df = cell_stat + arm_stat, cell_df + arm_df
    p = 0.0 if impossible else _tail(stat, df)
    return SRMResult(
        p_value=p,
        flagged=bool(p < alpha),
        statistic=float(stat),
        df=int(df),
        cell_p_value=_tail(cell_stat, cell_df),
        arm_p_value=0.0 if impossible else _tail(arm_stat, arm_df),
        cell_counts={c: int(v) for c, v in zip(ids, cell_obs)},
        expected_cell_counts={c: float(v) for c, v in zip(ids, cell_exp)},
        arm_counts=arm_counts,
        expected_arm_counts=arm_expected,
        impossible=impossible,
        propensity_mismatch_share=None if recorded is None else mismatched / n if n else 0.0,
        alpha=alpha,
    )


def _recorded(observed: Any, treatments: Sequence[str]) -> np.ndarray | None:
    """``(n, K)`` recorded propensities over ``treatments`` (variant-major), or ``None``."""
    if not observed.has_propensity:
        return None
    p = observed.propensity()
    full = np.full((observed.n_visitors, len(treatments)), np.nan)  # NaN: not recorded
    cols = [list(treatments).index(v) for v in observed.variant_names]
    full[:, cols[1:]] = p  # the round's first variant's probability is implied (and may absorb absent arms)
    return full


def srm_check(observed: Any, plan: Any, *, alpha: float = SRM_ALPHA) -> SRMResult:
    """SRM test of one round's :class:`~pytyche.contracts.ObservedExperimentData` against its plan.

    The data must carry the reserved ``cell`` column; variants must be treatments of the plan.
    """
    treatments = list(plan.treatments)
    arm = np.repeat([treatments.index(v) for v in observed.variant_names], [v.n for v in observed.variants])
    return srm_test(observed.cells(), arm, plan, observed.visitors(), _recorded(observed, treatments), alpha=alpha)


def warn_srm(result: SRMResult, round_idx: int, stacklevel: int = 2) -> None:
    """Emit :class:`SampleRatioMismatchWarning` for a flagged round."""
    if result.flagged:
        warnings.warn(
            f"Round {round_idx} failed the sample ratio mismatch check ({result}). The platform did not deliver "
            "the planned split; the round's estimates may be biased.",
            SampleRatioMismatchWarning,
            stacklevel=stacklevel + 1,
        )
