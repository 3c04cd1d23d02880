"""Simulation-based coverage ("SBC" in pytyche's loose sense) and oracle-decision evaluation.

Given a posterior fitted on simulated data and the data's :class:`~pytyche.contracts.CalibrationTruth`
(aligned to ``posterior.observed`` rows, variant-major), this module measures

- **coverage**: how often the posterior's central intervals at each nominal level contain the
  planted truth, per quantity family, as :class:`~pytyche.contracts.CalibrationRecord` rows that a
  sweep collects and :meth:`~pytyche.calibrate.LayeredCalibrationCorrection.fit` turns into a
  correction (:func:`coverage_records`, array core :func:`interval_coverage`);
- **decisions**: whether the recommended arm per visitor and the SHIP / STOP calls match the
  oracle's, and the regret incurred (:func:`evaluate_decisions`).

This is not the rank-statistic SBC of Talts et al. (2018); see docs/concepts.md, *SBC coverage*.

Families and their truths
-------------------------
``cate``
    per-visitor CATE of every non-control arm: targets ``n * (K-1)``, truth ``truth.cate``.
``ate``
    sample-average treatment effect: the mean over the sample of the per-visitor CATE, both for
    the posterior draws and for the truth (``K-1`` targets).
``gate``
    group-average effect over each segment's members (policy-tree leaves or given masks), both
    for the draws and the truth (``n_segments * (K-1)`` targets).
``conversion_effect`` / ``severity_effect``
    hurdle fits only: per-visitor ``p_a - p_0`` and ``m_a - m_0`` from the posterior's
    decomposition against ``truth.p`` / ``truth.m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytyche._arms import one_hot
from pytyche._validation import check_float, check_int, invalid, wrong_type
from pytyche.bcf.fingerprint import MODEL_VERSION
from pytyche.calibrate.calibration import Calibration, posterior_pooling
from pytyche.calibrate.correction import DEFAULT_LEVELS, mcmc_of
from pytyche.contracts.enums import Decision
from pytyche.contracts.truth import PIT_BINS, QUANTITY_FAMILIES, CalibrationRecord, CalibrationTruth

__all__ = [
    "DecisionCheck",
    "DecisionEvaluation",
    "coverage_records",
    "evaluate_decisions",
    "family_draws",
    "interval_coverage",
    "pit_coverage",
    "pit_summary",
    "segment_masks",
]

IntervalFn = Callable[[np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------------------------
# coverage
# ---------------------------------------------------------------------------------------------
def _check_levels(levels: Any, where: str) -> tuple[float, ...]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence | np.ndarray):
        raise wrong_type("levels", where, "a sequence of levels in (0, 1)", levels)
    out = tuple(check_float(v, "levels", where, low=0.0, high=1.0, low_open=True, high_open=True) for v in levels)
    if not out:
        raise invalid("levels", where, "a non-empty sequence of levels in (0, 1)", levels)
    return out


def interval_coverage(
    draws: np.ndarray,
    truth: np.ndarray,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    axis: int = -1,
    interval: IntervalFn | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Coverage of central intervals of ``draws`` over the ``truth`` targets, per level.

    Parameters
    ----------
    draws
        Posterior draws; ``axis`` indexes draws, the other axes index targets.
    truth
        True values, shaped like ``draws`` without ``axis``.
    levels
        Nominal levels in (0, 1).
    axis
        Draws axis.
    interval
        ``interval(draws, level, axis) -> (lo, hi)``; default the raw central quantile interval.

    Returns
    -------
    coverage, mean_width
        ``(len(levels),)`` fraction of targets with ``lo <= truth <= hi`` and mean ``hi - lo``.
    n_targets
        Number of targets.
    """
    where = "interval_coverage"
    levels = _check_levels(levels, where)
    d = np.asarray(draws)
    t = np.asarray(truth, dtype=np.float64)
    if d.ndim == 0:
        raise invalid("draws", where, "an array with a draws axis", d.shape)
    ax = axis % d.ndim
    target_shape = d.shape[:ax] + d.shape[ax + 1 :]
    if t.shape != target_shape:
        raise invalid("truth", where, f"shaped like draws without the draws axis {target_shape}", t.shape)
    if d.shape[ax] < 1 or t.size < 1:
        raise invalid("draws", where, "at least one draw and one target", d.shape)
    cov = np.empty(len(levels))
    wid = np.empty(len(levels))
    if interval is None:
        qs = np.concatenate([[(1 - q) / 2 for q in levels], [(1 + q) / 2 for q in levels]])
        qv = np.quantile(d, qs, axis=ax)
        bounds = [(qv[i], qv[len(levels) + i]) for i in range(len(levels))]
    else:
        bounds = [interval(d, q, ax) for q in levels]
    for i, (lo, hi) in enumerate(bounds):
        cov[i] = np.mean((lo <= t) & (t <= hi))
        wid[i] = np.mean(np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64))
    return cov, wid, int(t.size)


def pit_summary(draws: np.ndarray, truth: np.ndarray, *, axis: int = -1) -> tuple[tuple[int, ...], float | None]:
    """Every level at once: the truths' probability integral transforms among the draws, binned,
    and the mean squared standardized error (:class:`~pytyche.contracts.CalibrationRecord`'s
    ``pit_counts`` and ``z_sq_mean``).

    The PIT of a target is the share of its draws below the truth, ties counted half; it falls in
    bin ``min(floor(PIT * PIT_BINS), PIT_BINS - 1)``. The standardized error is
    ``(truth - mean) / sd`` over the draws (``ddof = 0``); targets whose draws do not vary are
    left out of ``z_sq_mean`` (``None`` when every target's are constant).
    """
    d = np.asarray(draws, dtype=np.float64)
    ax = axis % d.ndim
    t = np.expand_dims(np.asarray(truth, dtype=np.float64), ax)
    pit = (np.mean(d < t, axis=ax) + 0.5 * np.mean(d == t, axis=ax)).ravel()
    bins = np.minimum(np.floor(pit * PIT_BINS).astype(np.int64), PIT_BINS - 1)
    counts = tuple(int(c) for c in np.bincount(bins, minlength=PIT_BINS))
    sd = np.std(d, axis=ax).ravel()
    z = (np.squeeze(t, ax).ravel() - np.mean(d, axis=ax).ravel())
    ok = sd > 0
    z_sq = float(np.mean((z[ok] / sd[ok]) ** 2)) if ok.any() else None
    return counts, (z_sq if z_sq is None or np.isfinite(z_sq) else None)


def pit_coverage(pit_counts: Any, level: float, side: str = "central") -> float:
    """Coverage read from a :class:`~pytyche.contracts.CalibrationRecord`'s ``pit_counts``: the share of targets inside the ``level``
    interval, ``"central"`` (PIT within ``[(1 - level) / 2, (1 + level) / 2]``), ``"upper"``
    (the truth below the draws' ``level`` quantile: PIT <= level) or ``"lower"`` (PIT >=
    1 - level). The interval's ends must fall on bin edges (multiples of ``1 / PIT_BINS``)."""
    w = "pit_coverage"
    c = np.asarray(pit_counts, dtype=np.float64)
    if c.shape != (PIT_BINS,) or c.sum() <= 0:
        raise invalid("pit_counts", w, f"{PIT_BINS} counts with a positive sum", pit_counts, show=False)
    ends = {"central": ((1 - level) / 2, (1 + level) / 2), "upper": (0.0, level), "lower": (1 - level, 1.0)}
    if side not in ends:
        raise invalid("side", w, "'central', 'upper' or 'lower'", side)
    lo, hi = (e * PIT_BINS for e in ends[side])
    if not (0 < level < 1) or abs(lo - round(lo)) > 1e-9 or abs(hi - round(hi)) > 1e-9:
        raise invalid("level", w, f"a level in (0, 1) whose interval ends are multiples of 1/{PIT_BINS}", level)
    return float(c[int(round(lo)) : int(round(hi))].sum() / c.sum())


def segment_masks(segments: Any, observed: Any, n: int) -> np.ndarray:
    """``(G, n)`` boolean membership masks from a PolicyTreeResult, labels or masks.

    ``segments`` may be a :class:`~pytyche.contracts.PolicyTreeResult` (leaves of
    ``observed``'s visitors), a length-``n`` label array (one segment per distinct label, in
    sorted order), or a ``(G, n)`` boolean array / sequence of length-``n`` boolean masks. Empty
    segments are dropped.
    """
    where = "segment_masks"
    if hasattr(segments, "leaf_of") and hasattr(segments, "segments"):
        leaves = np.asarray(segments.leaf_of(observed.features_frame()))
        ids = [s.id for s in segments.segments] or sorted(set(leaves.tolist()))
        masks = np.stack([leaves == i for i in ids]) if ids else np.zeros((0, n), bool)
    else:
        arr = np.asarray(segments)
        if arr.ndim == 1 and arr.dtype != bool:
            if arr.shape[0] != n:
                raise invalid("segments", where, f"a label array of length {n}", arr.shape)
            masks = np.stack([arr == v for v in np.unique(arr)])
        elif arr.ndim == 2 and arr.dtype == bool:
            masks = arr
        elif arr.ndim == 1 and arr.dtype == bool:
            masks = arr[None, :]
        else:
            raise invalid("segments", where, "a PolicyTreeResult, a label array (n,) or boolean masks (G, n)", f"array {arr.shape} {arr.dtype}", show=False)
    if masks.shape[1] != n:
        raise invalid("segments", where, f"masks over the {n} visitors", masks.shape)
    return masks[masks.any(axis=1)]


def _check_alignment(posterior: Any, truth: CalibrationTruth, where: str) -> int:
    if not isinstance(truth, CalibrationTruth):
        raise wrong_type("truth", where, "a CalibrationTruth", truth)
    observed = posterior.observed
    n = int(observed.n_visitors)
    if truth.n != n:
        raise invalid("truth", where, f"aligned to posterior.observed ({n} rows)", f"{truth.n} rows", show=False)
    if tuple(truth.treatments) != tuple(observed.variant_names):
        raise invalid("truth", where, f"naming the posterior's treatments {list(observed.variant_names)}", list(truth.treatments))
    return n


def family_draws(posterior: Any, truth: CalibrationTruth, family: str, *, segments: Any = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Draws, truth and draws axis of one quantity family (see the module docstring).

    Returns
    -------
    draws, truth_values, axis
        ``truth_values`` is shaped like ``draws`` without ``axis``.

    Raises
    ------
    ValueError
        For an unknown family, ``gate`` without segments, or a decomposition family on a
        non-hurdle posterior or truth.
    """
    where = "family_draws"
    if family not in QUANTITY_FAMILIES:
        raise invalid("family", where, "one of " + ", ".join(QUANTITY_FAMILIES), family)
    n = _check_alignment(posterior, truth, where)
    if family in ("conversion_effect", "severity_effect"):
        dec = getattr(posterior, "decomposition", None)
        if dec is None or truth.p is None:
            raise invalid("family", where, "'cate', 'ate' or 'gate' for a non-hurdle posterior or truth", family)
        if family == "conversion_effect":
            return dec.conversion_effect_samples, truth.p[:, 1:] - truth.p[:, :1], 1
        return dec.severity_effect_samples, truth.m[:, 1:] - truth.m[:, :1], 1
    cate = np.asarray(posterior.cate_samples)
    if cate.ndim != 3 or cate.shape[0] != n or cate.shape[2] != truth.cate.shape[1]:
        raise invalid("posterior", where, f"cate_samples of shape (n={n}, S, K-1={truth.cate.shape[1]})", cate.shape)
    if family == "cate":
        return cate, truth.cate, 1
    if family == "ate":
        return cate.mean(axis=0, dtype=np.float64), truth.cate.mean(axis=0), 0
    if segments is None:
        raise invalid("segments", where, "given (a PolicyTreeResult, labels or masks) for the 'gate' family", None)
    masks = segment_masks(segments, posterior.observed, n)
    if masks.shape[0] == 0:
        raise invalid("segments", where, "at least one non-empty segment", "none", show=False)
    weights = masks / masks.sum(axis=1, keepdims=True)
    gate_draws = np.tensordot(weights, cate, axes=(1, 0))  # (G, S, K-1)
    return gate_draws, weights @ truth.cate, 1


def coverage_records(
    posterior: Any,
    truth: CalibrationTruth,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    families: Sequence[str] | None = None,
    segments: Any = None,
    replication: int = 0,
    round_idx: int | None = None,
    template: str = "",
    task_id: str = "",
    use_calibration: bool = False,
) -> list[CalibrationRecord]:
    """Coverage records of a posterior against planted truth, one per (family, level).

    Parameters
    ----------
    posterior
        A fitted posterior (``outcome_samples``/``cate_samples``, ``observed``, ``decomposition``
        for hurdle fits).
    truth
        Ground truth aligned to ``posterior.observed`` (cumulative, variant-major).
    levels
        Nominal levels (default 0.5, 0.6, 0.7, 0.8, 0.9, 0.95).
    families
        Families to measure; default ``cate`` and ``ate``, plus ``gate`` when ``segments`` is
        given and the two decomposition families when the posterior and the truth are hurdle.
    segments
        For ``gate``: a PolicyTreeResult, per-visitor labels or ``(G, n)`` boolean masks.
    replication, round_idx, template, task_id
        Identify the record's unit (``round_idx`` defaults to ``posterior.observed.round_idx``
        or 0).
    use_calibration
        ``False`` (default): raw quantile intervals, as a sweep needs to fit a correction.
        ``True``: the posterior's attached calibration (raw when none or skipped), to measure
        calibrated coverage; the records are then marked ``calibrated=True`` (and never feed a
        correction).

    Returns
    -------
    list of CalibrationRecord
        Each carries the posterior's MCMC settings (``posterior.config``) and the fit-time
        observables of :class:`~pytyche.contracts.CalibrationRecord` (converters per arm,
        posterior sd and |posterior mean| of the family's targets relative to the outcome's sd),
        and every level at once (:func:`pit_summary` of the raw draws: ``pit_counts``,
        ``z_sq_mean``).
    """
    where = "coverage_records"
    levels = _check_levels(levels, where)
    n = _check_alignment(posterior, truth, where)
    replication = check_int(replication, "replication", where, low=0)
    observed = posterior.observed
    if round_idx is None:
        round_idx = observed.round_idx if observed.round_idx is not None else 0
    round_idx = check_int(round_idx, "round_idx", where, low=0)
    hurdle = getattr(posterior, "decomposition", None) is not None and truth.p is not None
    if families is None:
        families = ["cate", "ate"] + (["gate"] if segments is not None else []) + (
            ["conversion_effect", "severity_effect"] if hurdle else []
        )
    elif isinstance(families, str) or not isinstance(families, Sequence):
        raise wrong_type("families", where, "a sequence of family names", families)
    for f in families:
        if f not in QUANTITY_FAMILIES:
            raise invalid("families", where, "names among " + ", ".join(QUANTITY_FAMILIES), f)
    interval: IntervalFn | None = None
    cal = getattr(posterior, "calibration", None)
    if use_calibration and isinstance(cal, Calibration) and not cal.skipped:
        def interval_for(fam: str) -> IntervalFn:
            return lambda d, q, ax: cal.interval(d, level=q, family=fam, sample_size=n, axis=ax)
    else:
        def interval_for(fam: str) -> IntervalFn | None:
            return interval
    metric, k, pooling = observed.metric, observed.n_variants, posterior_pooling(posterior)
    calibrated = bool(use_calibration and isinstance(cal, Calibration) and not cal.skipped)
    mcmc = mcmc_of(getattr(posterior, "config", None) or {})
    converters, y_sd = _outcome_observables(observed)
    out: list[CalibrationRecord] = []
    for fam in families:
        draws, tv, ax = family_draws(posterior, truth, fam, segments=segments)
        cov, wid, nt = interval_coverage(draws, tv, levels, axis=ax, interval=interval_for(fam))
        sd_rel, signal = _draw_observables(draws, ax, y_sd)
        pit_counts, z_sq_mean = pit_summary(draws, tv, axis=ax)  # of the raw draws, calibrated or not
        for q, c, w in zip(levels, cov, wid):
            out.append(
                CalibrationRecord(
                    replication=replication, round_idx=round_idx, family=fam, nominal=float(q),
                    coverage=float(c), n_targets=nt, mean_width=float(w), metric=metric,
                    n_treatments=k, pooling=pooling, sample_size=n, template=template, task_id=task_id,
                    **mcmc, calibrated=calibrated, converters=converters,
                    min_converters=None if converters is None else min(converters),
                    posterior_sd_rel=sd_rel, effect_to_noise=signal, pit_counts=pit_counts, z_sq_mean=z_sq_mean,
                    model_version=MODEL_VERSION,
                )
            )
    return out


def _outcome_observables(observed: Any) -> tuple[tuple[int, ...] | None, float | None]:
    """Converters (non-zero outcomes) per arm for binary/hurdle data (``None`` for a continuous
    outcome with no zeros) and the sd of the observed outcome (``None`` when it is 0)."""
    y = np.asarray(observed.outcome, dtype=np.float64)
    arm = np.asarray(observed.arm)
    zeros = bool(np.any(y == 0))
    binary = bool(np.all((y == 0) | (y == 1)))
    converters = None
    if zeros or binary:
        converters = tuple(int(np.count_nonzero(y[arm == a])) for a in range(observed.n_variants))
    sd = float(np.std(y))
    return converters, (sd if np.isfinite(sd) and sd > 0 else None)


def _draw_observables(draws: np.ndarray, axis: int, y_sd: float | None) -> tuple[float | None, float | None]:
    """Mean posterior sd and mean |posterior mean| of the targets, each over the outcome's sd."""
    if y_sd is None:
        return None, None
    d = np.asarray(draws, dtype=np.float64)
    sd = float(np.mean(np.std(d, axis=axis)))
    signal = float(np.mean(np.abs(np.mean(d, axis=axis))))
    if not (np.isfinite(sd) and np.isfinite(signal)):
        return None, None
    return sd / y_sd, signal / y_sd


# ---------------------------------------------------------------------------------------------
# decisions and regret
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecisionCheck:
    """One treatment's recommended decision against the oracle's.

    The oracle ships ``treatment`` iff its true sample-average effect versus control exceeds
    ``min_effect * |control mean|`` and stops it otherwise (it never needs to continue).
    ``correct`` is ``None`` for a CONTINUE (no call made).
    """

    treatment: str
    decision: Decision
    oracle: Decision
    true_effect: float
    correct: bool | None


@dataclass(frozen=True)
class DecisionEvaluation:
    """Truth-vs-policy metrics of one round (the fields of a *truth comparison*, docs/concepts.md).

    Attributes
    ----------
    policy_accuracy
        Share of visitors whose recommended arm is truth-optimal (ties count as optimal; for a
        stochastic policy, the expected share).
    oracle_gap_rpv
        ``rpv_oracle - rpv_policy``: per-visitor regret of the recommended policy (>= 0).
    rpv_policy, rpv_uniform, rpv_oracle
        Mean true outcome per visitor (revenue per visitor for revenue metrics) under the
        recommended policy, uniform random allocation over the arms, and the oracle policy.
    cate_rmse
        RMSE of the estimated per-visitor CATE against truth (``None`` when no estimate given).
    allocation
        ``(n, K)`` the policy's arm probabilities per visitor (one-hot for a deterministic one).
    oracle_arm
        ``(n,)`` a truth-optimal arm per visitor (lowest index among ties).
    regret
        ``(n,)`` per-visitor expected regret ``max_a E[Y|x,a] - sum_a pi(a|x) E[Y|x,a]``.
    decisions
        Per-treatment :class:`DecisionCheck` when decisions were evaluated.
    treatments
        Arm names, control first.
    """

    policy_accuracy: float
    oracle_gap_rpv: float
    rpv_policy: float
    rpv_uniform: float
    rpv_oracle: float
    cate_rmse: float | None
    allocation: np.ndarray = field(repr=False)
    oracle_arm: np.ndarray = field(repr=False)
    regret: np.ndarray = field(repr=False)
    decisions: Mapping[str, DecisionCheck] = field(default_factory=dict)
    treatments: tuple[str, ...] = ()

    @property
    def decision_accuracy(self) -> float:
        """Share of SHIP/STOP calls matching the oracle (NaN when every call is CONTINUE)."""
        made = [d.correct for d in self.decisions.values() if d.correct is not None]
        return float(np.mean(made)) if made else float("nan")

    @property
    def n_false_ship(self) -> int:
        """Treatments shipped although the oracle stops them."""
        return sum(1 for d in self.decisions.values() if d.decision is Decision.SHIP and d.oracle is Decision.STOP)


def _policy_from_tree(tree: Any, treatments: Sequence[str], use_allocation: bool, where: str) -> np.ndarray:
    leaves = np.asarray(tree.leaf_of(tree.observed.features_frame()))
    k = len(treatments)
    alloc = np.zeros((leaves.shape[0], k))
    by_leaf = {s.id: s for s in tree.segments}
    for leaf in np.unique(leaves):
        weights = tree.allocation_map.get(int(leaf), {}) if hasattr(tree.allocation_map, "get") else {}
        seg = by_leaf.get(int(leaf))
        row = np.zeros(k)
        if use_allocation and weights:
            for name, w in weights.items():
                row[list(treatments).index(name)] = float(w)
        else:
            best = seg.best_treatment if seg is not None and seg.best_treatment else None
            if best is None and weights:
                best = max(weights, key=lambda t: (weights[t], -list(treatments).index(t)))
            if best is None:
                raise invalid("policy", where, f"a policy tree with a best treatment or allocation for leaf {int(leaf)}", "none", show=False)
            row[list(treatments).index(best)] = 1.0
        alloc[leaves == leaf] = row
    return alloc


def evaluate_decisions(
    policy: Any,
    truth: CalibrationTruth | np.ndarray,
    *,
    decisions: Mapping[str, Decision | str] | None = None,
    cate_estimate: np.ndarray | None = None,
    treatments: Sequence[str] | None = None,
    min_effect: float = 0.0,
    use_allocation: bool = False,
    tie_tol: float = 1e-9,
) -> DecisionEvaluation:
    """Score a recommended policy and decisions against the oracle.

    Parameters
    ----------
    policy
        What was recommended, one of:

        - ``(n,)`` int array: the arm (0 = control) recommended to each visitor;
        - ``(n, K)`` float array: per-visitor arm probabilities (rows sum to 1);
        - a posterior: the plug-in policy, each visitor's arm of highest posterior-mean outcome
          (its posterior-mean CATE is used for ``cate_rmse``);
        - a PolicyTreeResult: each leaf's ``best_treatment`` (or its Thompson weights with
          ``use_allocation=True``);
        - an AnalysisResult: its policy tree when present, else the plug-in policy of its
          ``cate_per_visitor``; its ``recommendations`` give ``decisions`` unless passed.
    truth
        :class:`~pytyche.contracts.CalibrationTruth`, or the ``(n, K)`` true expected outcome of
        each visitor under each arm, rows aligned with the policy's.
    decisions
        ``{treatment: Decision}`` (SHIP / CONTINUE / STOP) to check against the oracle.
    cate_estimate
        ``(n, K-1)`` estimated CATE for ``cate_rmse`` (overrides one taken from ``policy``).
    treatments
        Arm names, control first (needed with an array ``truth`` when decisions are given).
    min_effect
        Oracle SHIP threshold as a share of the control arm's mean true outcome (default 0:
        ship any treatment whose true average effect is positive).
    use_allocation
        For tree policies: score the stochastic Thompson allocation instead of the best arm.
    tie_tol
        Arms within ``tie_tol * max(1, max|E[Y]|)`` of the best count as optimal.

    Returns
    -------
    DecisionEvaluation
    """
    where = "evaluate_decisions"
    if isinstance(truth, CalibrationTruth):
        eo = truth.expected_outcome
        names = tuple(truth.treatments)
    else:
        eo = np.asarray(truth, dtype=np.float64)
        if eo.ndim != 2 or eo.shape[1] < 2 or not np.all(np.isfinite(eo)):
            raise invalid("truth", where, "a CalibrationTruth or a finite (n, K >= 2) expected-outcome array", eo.shape)
        names = None
    n, k = eo.shape
    min_effect = check_float(min_effect, "min_effect", where, low=0.0)
    tie_tol = check_float(tie_tol, "tie_tol", where, low=0.0)
    if treatments is not None:
        treatments = tuple(treatments)
        if names is not None and treatments != names:
            raise invalid("treatments", where, f"the truth's treatments {list(names)}", list(treatments))
        names = treatments
    est = None
    # --- the policy ---------------------------------------------------------------------------
    if hasattr(policy, "outcome_samples"):  # a posterior
        names = names or tuple(policy.treatments)
        mean_outcome = np.asarray(policy.outcome_samples, dtype=np.float64).mean(axis=1)
        alloc = one_hot(np.argmax(mean_outcome, axis=1), k) if mean_outcome.shape == (n, k) else None
        est = mean_outcome[:, 1:] - mean_outcome[:, :1] if alloc is not None else None
    elif hasattr(policy, "recommendations") and hasattr(policy, "cate_per_visitor"):  # AnalysisResult
        names = names or tuple(policy.posterior.treatments)
        est = np.asarray(policy.cate_per_visitor, dtype=np.float64)
        if policy.policy_tree is not None:
            alloc = _policy_from_tree(policy.policy_tree, names, use_allocation, where)
        else:
            alloc = one_hot(np.argmax(np.column_stack([np.zeros(est.shape[0]), est]), axis=1), k)
        if decisions is None:
            decisions = {t: r.decision for t, r in policy.recommendations.items()}
    elif hasattr(policy, "allocation_map") and hasattr(policy, "leaf_of"):  # PolicyTreeResult
        names = names or tuple(policy.treatments)
        alloc = _policy_from_tree(policy, names, use_allocation, where)
    else:
        arr = np.asarray(policy)
        if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
            if arr.shape[0] != n or np.any(arr < 0) or np.any(arr >= k):
                raise invalid("policy", where, f"an (n={n},) array of arm indices in 0..{k - 1}", f"shape {arr.shape}, range [{arr.min()}, {arr.max()}]" if arr.size else arr.shape, show=False)
            alloc = one_hot(arr, k)
        elif arr.ndim == 2 and np.issubdtype(arr.dtype, np.floating):
            if arr.shape != (n, k) or np.any(arr < -1e-12) or not np.allclose(arr.sum(axis=1), 1.0, atol=1e-6):
                raise invalid("policy", where, f"an (n={n}, K={k}) array of arm probabilities summing to 1 per row", arr.shape)
            alloc = np.clip(arr.astype(np.float64), 0.0, None)
        else:
            raise wrong_type("policy", where, "arm indices (n,), arm probabilities (n, K), a posterior, a PolicyTreeResult or an AnalysisResult", policy)
    if alloc is None or alloc.shape != (n, k):
        raise invalid("policy", where, f"a policy over the truth's {n} visitors and {k} arms", None if alloc is None else alloc.shape)
    if names is not None and len(names) != k:
        raise invalid("treatments", where, f"{k} names (control first)", list(names))
    # --- policy metrics -----------------------------------------------------------------------
    best = eo.max(axis=1)
    tol = tie_tol * max(1.0, float(np.abs(eo).max()))
    optimal = eo >= (best - tol)[:, None]
    value = (alloc * eo).sum(axis=1)
    regret = np.maximum(best - value, 0.0)
    rpv_policy, rpv_oracle = float(value.mean()), float(best.mean())
    if cate_estimate is not None:
        est = np.asarray(cate_estimate, dtype=np.float64)
    cate_rmse = None
    if est is not None:
        true_cate = eo[:, 1:] - eo[:, :1]
        if est.shape != true_cate.shape:
            raise invalid("cate_estimate", where, f"shaped like the true CATE {true_cate.shape}", est.shape)
        cate_rmse = float(np.sqrt(np.mean((est - true_cate) ** 2)))
    # --- decisions ----------------------------------------------------------------------------
    checks: dict[str, DecisionCheck] = {}
    if decisions:
        if names is None:
            raise invalid("treatments", where, "given (control first) to read decisions by name when 'truth' is an array", None)
        if not isinstance(decisions, Mapping):
            raise wrong_type("decisions", where, "a mapping of treatment name to Decision", decisions)
        control_mean = float(eo[:, 0].mean())
        threshold = min_effect * abs(control_mean)
        for t, d in decisions.items():
            if t not in names[1:]:
                raise invalid("decisions", where, f"keyed by non-control treatments {list(names[1:])}", t)
            try:
                dec = Decision(str(d))
            except ValueError:
                raise invalid("decisions", where, "values among SHIP, CONTINUE, STOP", d) from None
            j = names.index(t)
            effect = float((eo[:, j] - eo[:, 0]).mean())
            oracle = Decision.SHIP if effect > threshold else Decision.STOP
            correct = None if dec is Decision.CONTINUE else dec is oracle
            checks[t] = DecisionCheck(t, dec, oracle, effect, correct)
    return DecisionEvaluation(
        policy_accuracy=float((alloc * optimal).sum(axis=1).mean()),
        oracle_gap_rpv=max(rpv_oracle - rpv_policy, 0.0),
        rpv_policy=rpv_policy,
        rpv_uniform=float(eo.mean()),
        rpv_oracle=rpv_oracle,
        cate_rmse=cate_rmse,
        allocation=alloc,
        oracle_arm=np.argmax(eo, axis=1),
        regret=regret,
        decisions=checks,
        treatments=tuple(names) if names is not None else tuple(f"arm_{i}" for i in range(k)),
    )
