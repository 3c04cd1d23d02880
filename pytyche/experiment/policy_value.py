"""Off-policy value of the recommended policy: cross-fitted AIPW (doubly robust) with known propensities.

Real-data mode has no truth, so each round estimates what the recommended policy (each visitor gets
the treatment their policy-tree segment recommends) is worth, against always-control and against
uniform random allocation over the fitted treatments, from the data the experiment collected.

For visitor ``i`` with features ``x_i``, delivered treatment ``A_i``, outcome ``y_i`` and design
propensities ``e_i(a) = P(A_i = a | x_i)``, the AIPW score of treatment ``a`` is::

    Gamma_i(a) = mu_hat(x_i, a) + 1[A_i = a] / e_i(a) * (y_i - mu_hat(x_i, A_i))

and the value of a policy ``pi`` is ``mean_i Gamma_i(pi(x_i))`` (control: ``Gamma_i(control)``;
uniform: ``mean_a Gamma_i(a)``). Because ``e`` is known (the design), the estimate is unbiased
whatever the outcome model; the outcome model only reduces variance. The outcome model is
**cross-fitted**: visitors are split into ``n_folds`` folds and ``mu_hat`` for a fold is fitted on
the other folds only (one scikit-learn regressor per treatment, default
:class:`~sklearn.ensemble.HistGradientBoostingRegressor`), so no visitor's outcome both trains the
model and is scored by it. Intervals are normal with the influence-function standard error
``sd_i(psi_i) / sqrt(n)``, ``psi_i`` the per-visitor score of the contrast.

Design propensities. A visitor's recorded propensities are those of the cell that routed them,
which give zero chance to every treatment other cells deliver (a Control-cell visitor never gets
a treatment), so they cannot weight the policy's treatments for everyone. The design propensity
is the mixture over the round's cells, ``e_i(a) = sum_c weight_c * pi_c(a | x_i)`` -- the plan's
cell weights times each cell's policy probabilities, which for the visitor's own cell are the
recorded ones when the platform follows the plan. It is positive for every treatment the Explore
cell covers. A visitor whose delivered treatment has zero design propensity (the platform deviated
from the plan; see the SRM check) contributes only through the outcome model and is counted in
``n_unsupported``.

The policy is cross-fitted too (``learner``, used by the sequential loop). The recommended
policy is learned by the BCF from the same cumulative data it would be scored on, so scoring it
in-sample is optimistic (the winner's curse). With a ``learner``, the policy that scores fold
``f`` is learned on the other folds only: a policy tree of the recommended tree's depth and
minimum segment share, fitted to the other folds' AIPW scores (the doubly robust policy learning
of Athey & Wager 2021), each leaf recommending the arm with the highest mean score among its
training members, restricted to the active treatments. The estimate is then the value of that
learning procedure at this sample size, scored only on visitors it did not learn from; ``arms``
holds the cross-fitted policy's treatment for each visitor (its truth is what
:meth:`PolicyValue.true_values` computes), and ``agreement`` says for what share of visitors it
matches the recommended policy. ``in_sample_vs_control`` keeps the recommended policy's own,
optimistic, in-sample contrast for reference. Without a ``learner`` the given ``policy_arm`` is
treated as fixed (learned elsewhere), which is exact when it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from pytyche._validation import check_float, check_int, invalid
from pytyche.experiment.cumulative import design_propensities

__all__ = ["PolicyValue", "PolicyTreeLearner", "aipw_scores", "estimate_policy_value", "design_propensities", "DEFAULT_FOLDS"]

DEFAULT_FOLDS = 5
_MIN_ARM_ROWS = 20


@dataclass(frozen=True, eq=False)
class PolicyValue:
    """The off-policy (AIPW, cross-fitted) value of a recommended policy.

    Attributes
    ----------
    value, value_se
        Estimated mean outcome per visitor under the policy, and its standard error.
    control_value, uniform_value
        Estimated mean outcome under always-control and under uniform allocation over
        ``treatments``.
    vs_control, vs_control_se
        ``value - control_value`` and its standard error (from the paired scores).
    vs_uniform, vs_uniform_se
        ``value - uniform_value`` and its standard error.
    level
        Coverage of the ``*_interval`` properties (default 0.95).
    n, n_folds, n_unsupported
        Visitors scored, cross-fitting folds, visitors whose delivered treatment had zero design
        propensity (scored through the outcome model only).
    treatments
        The fitted treatments, control first (the columns ``arms`` index).
    arms
        ``(n,)`` the scored policy's treatment per cumulative visitor (index into ``treatments``):
        the cross-fitted policy's when ``policy == "cross-fitted"``, else the given policy's.
    policy
        ``"cross-fitted"`` (the policy scoring each fold was learned on the other folds) or
        ``"fixed"`` (the given policy, scored as if learned elsewhere).
    agreement
        Share of visitors for whom ``arms`` equals the recommended policy's treatment (1 when fixed).
    in_sample_vs_control, in_sample_vs_control_se
        The recommended policy's own AIPW contrast against control on the same data it was
        learned from: optimistic, for reference only (equal to ``vs_control`` when fixed).
    """

    value: float
    value_se: float
    control_value: float
    uniform_value: float
    vs_control: float
    vs_control_se: float
    vs_uniform: float
    vs_uniform_se: float
    n: int
    n_folds: int
    treatments: tuple[str, ...]
    arms: np.ndarray = field(repr=False)
    n_unsupported: int = 0
    level: float = 0.95
    policy: str = "fixed"
    agreement: float = 1.0
    in_sample_vs_control: float | None = None
    in_sample_vs_control_se: float | None = None

    def _ci(self, est: float, se: float, level: float | None) -> tuple[float, float]:
        lv = self.level if level is None else check_float(level, "level", "PolicyValue", low=0.0, high=1.0, low_open=True, high_open=True)
        z = NormalDist().inv_cdf(0.5 + lv / 2.0)
        return est - z * se, est + z * se

    def value_interval(self, level: float | None = None) -> tuple[float, float]:
        return self._ci(self.value, self.value_se, level)

    def vs_control_interval(self, level: float | None = None) -> tuple[float, float]:
        return self._ci(self.vs_control, self.vs_control_se, level)

    def vs_uniform_interval(self, level: float | None = None) -> tuple[float, float]:
        return self._ci(self.vs_uniform, self.vs_uniform_se, level)

    def true_values(self, truth: Any) -> dict[str, float]:
        """The same quantities from sim-mode truth aligned to the scored visitors.

        ``truth`` is a :class:`~pytyche.contracts.CalibrationTruth` whose rows are the cumulative
        visitors (``Experiment.cumulative_truth``); arms are matched by name. The policy's true
        value is the mean over visitors of ``expected_outcome[i, arms[i]]``.
        """
        cols = [list(truth.treatments).index(t) for t in self.treatments]
        eo = np.asarray(truth.expected_outcome, dtype=np.float64)[:, cols]
        if eo.shape[0] != self.arms.shape[0]:
            raise invalid("truth", "PolicyValue.true_values", f"{self.arms.shape[0]} rows (the scored visitors)", eo.shape[0])
        value = float(eo[np.arange(eo.shape[0]), self.arms].mean())
        control, uniform = float(eo[:, 0].mean()), float(eo.mean())
        return {"value": value, "control_value": control, "uniform_value": uniform,
                "vs_control": value - control, "vs_uniform": value - uniform}

    def __str__(self) -> str:
        lo, hi = self.vs_control_interval()
        ulo, uhi = self.vs_uniform_interval()
        return (
            f"value {self.value:.4g} per visitor; vs control {self.vs_control:+.4g} [{lo:+.4g}, {hi:+.4g}], "
            f"vs uniform {self.vs_uniform:+.4g} [{ulo:+.4g}, {uhi:+.4g}] ({self.level:.0%} intervals, AIPW, "
            f"{self.n_folds}-fold cross-fitted"
            + (f" outcome model and policy; the cross-fitted policy agrees with the recommended one for {self.agreement:.0%} of visitors)"
               if self.policy == "cross-fitted" else " outcome model, fixed policy)")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value, "value_se": self.value_se, "control_value": self.control_value,
            "uniform_value": self.uniform_value, "vs_control": self.vs_control, "vs_control_se": self.vs_control_se,
            "vs_uniform": self.vs_uniform, "vs_uniform_se": self.vs_uniform_se, "n": self.n, "n_folds": self.n_folds,
            "treatments": list(self.treatments), "arms": [int(a) for a in self.arms],
            "n_unsupported": self.n_unsupported, "level": self.level, "policy": self.policy,
            "agreement": self.agreement, "in_sample_vs_control": self.in_sample_vs_control,
            "in_sample_vs_control_se": self.in_sample_vs_control_se,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyValue":
        kw = dict(d)
        kw["treatments"] = tuple(kw["treatments"])
        kw["arms"] = np.asarray(kw["arms"], dtype=np.int64)
        return cls(**kw)


@dataclass(frozen=True)
class PolicyTreeLearner:
    """Learns a policy from AIPW scores: the recommended policy's tree class, fitted per fold.

    A ``DecisionTreeClassifier`` of depth ``max_depth`` with leaves of at least
    ``min_segment_share`` of the training visitors, fitted (like the policy tree) to each training
    visitor's best arm with the regret of its second-best arm as the weight, here from the AIPW
    scores instead of the posterior means; each leaf then recommends the arm with the highest mean
    score over its training members. Only the arms marked in ``allowed`` (default all) are
    recommended.
    """

    max_depth: int = 3
    min_segment_share: float = 0.10
    allowed: tuple[bool, ...] | None = None

    def fit_predict(self, x_train: np.ndarray, scores: np.ndarray, x_test: np.ndarray, seed: int = 0) -> np.ndarray:
        """``(n_test,)`` arm indices of the policy learned from ``(x_train, scores)`` at ``x_test``."""
        import math

        from pytyche.analysis.policy_tree import policy_labels, policy_weights
        from pytyche.analysis.stability import policy_tree_estimator

        k = scores.shape[1]
        allowed = np.ones(k, dtype=bool) if self.allowed is None else np.asarray(self.allowed, dtype=bool)
        arms = np.flatnonzero(allowed)
        if arms.size < 2:
            return np.full(x_test.shape[0], int(arms[0]), dtype=np.int64)
        # the policy tree's own labels and weights, on the allowed arms' scores against the first
        sub = scores[:, arms]
        gain = sub[:, 1:] - sub[:, :1]
        min_leaf = max(1, math.ceil(self.min_segment_share * x_train.shape[0]))
        tree = policy_tree_estimator(self.max_depth, min_leaf, seed).fit(
            x_train, policy_labels(gain), sample_weight=policy_weights(gain)
        )
        # each leaf's arm: the highest mean score over its training members (every leaf has some)
        leaves, member = np.unique(tree.apply(x_train), return_inverse=True)
        sums = np.zeros((leaves.size, arms.size))
        np.add.at(sums, member, sub)
        best = arms[np.argmax(sums, axis=1)]
        return best[np.searchsorted(leaves, tree.apply(x_test))].astype(np.int64)


def _default_model(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=50, max_leaf_nodes=15, min_samples_leaf=20, early_stopping=False, random_state=seed)


def _cross_fit(x: np.ndarray, y: np.ndarray, arm: np.ndarray, k: int, folds: np.ndarray, n_folds: int, model: Any, seed: int) -> np.ndarray:
    from sklearn.base import clone

    n = y.shape[0]
    mu = np.zeros((n, k))
    for f in range(n_folds):
        test = folds == f
        train = ~test
        for a in range(k):
            rows = train & (arm == a)
            if rows.sum() >= _MIN_ARM_ROWS:
                m = clone(model if model is not None else _default_model(seed)).fit(x[rows], y[rows])
                mu[test, a] = m.predict(x[test])
            else:
                mu[test, a] = float(y[rows].mean()) if rows.any() else float(y[train].mean())
    return mu


def _gamma(x: np.ndarray, y: np.ndarray, arm: np.ndarray, e: np.ndarray, folds: np.ndarray, n_folds: int, model: Any, seed: int) -> np.ndarray:
    """``(n, K)`` AIPW scores with the outcome model cross-fitted over ``folds``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):  # small fits: threads only contend
        mu = _cross_fit(x, y, arm, e.shape[1], folds, n_folds, model, seed)
    rows = np.arange(y.shape[0])
    e_obs = e[rows, arm]
    supported = e_obs > 0
    gamma = mu.copy()
    gamma[rows, arm] += np.where(supported, (y - mu[rows, arm]) / np.where(supported, e_obs, 1.0), 0.0)
    return gamma


def _split(n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_folds)


def aipw_scores(
    observed: Any, propensity: np.ndarray, *, n_folds: int = DEFAULT_FOLDS, seed: int = 0, outcome_model: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(n, K)`` cross-fitted AIPW scores ``Gamma_i(a)``, the fold of each visitor and its support.

    Inputs as for :func:`estimate_policy_value` (validated there). ``supported[i]`` is whether
    visitor ``i``'s delivered treatment had a positive design propensity.
    """
    n = observed.n_visitors
    x, _ = observed.feature_matrix(observed.categories())
    y = np.asarray(observed.outcome, dtype=np.float64)
    arm = np.asarray(observed.arm, dtype=np.int64)
    e = np.asarray(propensity, dtype=np.float64)
    folds = _split(n, n_folds, np.random.default_rng(seed))
    supported = e[np.arange(n), arm] > 0
    return _gamma(x, y, arm, e, folds, n_folds, outcome_model, seed), folds, supported


def _nested_scores(
    observed: Any, e: np.ndarray, folds: np.ndarray, n_folds: int, learner: "PolicyTreeLearner", model: Any, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted policy and its held-out AIPW scores: fold ``f`` never touches its own scoring.

    For each fold ``f``: the policy is learned on the other folds' AIPW scores, whose outcome
    model is cross-fitted among those folds only; fold ``f``'s scores use an outcome model
    cross-fitted within fold ``f`` (2 inner folds), so no outcome of fold ``f`` trains the policy
    and no outcome that trained the policy enters fold ``f``'s scores.
    """
    n = observed.n_visitors
    x, _ = observed.feature_matrix(observed.categories())
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(observed.outcome, dtype=np.float64)
    arm = np.asarray(observed.arm, dtype=np.int64)
    rng = np.random.default_rng([seed, 1])
    scored = np.empty(n, dtype=np.int64)
    gamma = np.empty(e.shape)
    for f in range(n_folds):
        test, train = folds == f, folds != f
        inner = np.searchsorted(np.unique(folds[train]), folds[train])  # the other folds, renumbered
        g_train = _gamma(x[train], y[train], arm[train], e[train], inner, n_folds - 1, model, seed)
        scored[test] = learner.fit_predict(x32[train], g_train, x32[test], seed=seed)
        gamma[test] = _gamma(x[test], y[test], arm[test], e[test], _split(int(test.sum()), 2, rng), 2, model, seed)
    return scored, gamma


def estimate_policy_value(
    observed: Any,
    policy_arm: np.ndarray,
    propensity: np.ndarray,
    *,
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    outcome_model: Any = None,
    level: float = 0.95,
    learner: PolicyTreeLearner | None = None,
) -> PolicyValue:
    """Cross-fitted AIPW value of a deterministic policy (see the module docstring).

    Parameters
    ----------
    observed
        The (cumulative) :class:`~pytyche.contracts.ObservedExperimentData`, variant-major.
    policy_arm
        ``(n,)`` the policy's treatment per visitor, an index into ``observed.variant_names``.
    propensity
        ``(n, K)`` design propensities over ``observed.variant_names`` (rows sum to at most 1).
    n_folds
        Cross-fitting folds (>= 2).
    seed
        Seed of the fold split (and of the default outcome model).
    outcome_model
        A scikit-learn regressor (cloned per fold and treatment); default a small
        ``HistGradientBoostingRegressor``.
    level
        Interval coverage.
    learner
        When given, the scored policy is cross-fitted: fold ``f`` is scored with the policy this
        learner fits on the other folds' AIPW scores, and ``policy_arm`` (the recommended policy)
        only sets ``agreement`` and the in-sample reference contrast. Without one, ``policy_arm``
        is scored as a fixed policy.

    Raises
    ------
    ValueError
        When shapes disagree, a propensity is outside [0, 1], or ``n_folds`` exceeds the visitors.
    """
    w = "estimate_policy_value"
    n_folds = check_int(n_folds, "n_folds", w, low=2)
    seed = check_int(seed, "seed", w, low=0)
    level = check_float(level, "level", w, low=0.0, high=1.0, low_open=True, high_open=True)
    names = tuple(observed.variant_names)
    k = len(names)
    n = observed.n_visitors
    pi = np.asarray(policy_arm, dtype=np.int64)
    if pi.shape != (n,) or np.any(pi < 0) or np.any(pi >= k):
        raise invalid("policy_arm", w, f"an ({n},) array of treatment indices in [0, {k})", f"shape {pi.shape}", show=False)
    e = np.asarray(propensity, dtype=np.float64)
    if e.shape != (n, k) or not np.all(np.isfinite(e)) or np.any(e < 0) or np.any(e > 1 + 1e-9):
        raise invalid("propensity", w, f"an ({n}, {k}) array of probabilities", f"shape {e.shape}", show=False)
    if n < 2 * n_folds:
        raise invalid("n_folds", w, f"at most half the visitors ({n})", n_folds)
    if learner is not None and not isinstance(learner, PolicyTreeLearner):
        raise invalid("learner", w, "a PolicyTreeLearner or None", learner)
    if learner is not None and learner.allowed is not None and len(learner.allowed) != k:
        raise invalid("learner", w, f"a PolicyTreeLearner whose 'allowed' has {k} entries", len(learner.allowed))
    gamma, folds, supported = aipw_scores(observed, e, n_folds=n_folds, seed=seed, outcome_model=outcome_model)
    rows = np.arange(n)
    psi_c = gamma[:, 0]
    psi_u = gamma.mean(axis=1)

    def mean_se(v: np.ndarray) -> tuple[float, float]:
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(n))

    in_sample, in_sample_se = mean_se(gamma[rows, pi] - psi_c)
    scored = pi
    if learner is not None:
        scored, gamma = _nested_scores(observed, e, folds, n_folds, learner, outcome_model, seed)
        psi_c, psi_u = gamma[:, 0], gamma.mean(axis=1)
    psi_pi = gamma[rows, scored]
    value, value_se = mean_se(psi_pi)
    vs_c, vs_c_se = mean_se(psi_pi - psi_c)
    vs_u, vs_u_se = mean_se(psi_pi - psi_u)
    return PolicyValue(
        value=value,
        value_se=value_se,
        control_value=float(psi_c.mean()),
        uniform_value=float(psi_u.mean()),
        vs_control=vs_c,
        vs_control_se=vs_c_se,
        vs_uniform=vs_u,
        vs_uniform_se=vs_u_se,
        n=n,
        n_folds=n_folds,
        treatments=names,
        arms=scored,
        n_unsupported=int((~supported).sum()),
        level=level,
        policy="fixed" if learner is None else "cross-fitted",
        agreement=float(np.mean(scored == pi)),
        in_sample_vs_control=in_sample,
        in_sample_vs_control_se=in_sample_se,
    )
