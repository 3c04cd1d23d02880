"""Policies: the routing rule a cell uses to pick each visitor's treatment.

The :class:`Policy` protocol is one method::

    assign(visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator)
        -> (arm_index: (n,) int array, probs: (n, K) float array)

``treatments`` is the experiment's treatments universe (control first, K names); ``arm_index[i]``
indexes it; ``probs[i]`` is the assignment distribution the policy actually used for visitor ``i``
(rows sum to 1, ``arm_index[i]`` drawn from it). Generators record ``probs`` as the visitors'
propensities, which is what lets the fit correct for adaptive assignment.

Shipped policies:

- :class:`BaselinePolicy` -- always the control (``treatments[0]``),
- :class:`UniformPolicy` -- uniform over a subset (``over``; default: every treatment),
- :class:`TreePolicy` -- a policy tree plus a per-leaf allocation (Thompson weights),
- :class:`ThompsonPolicy` -- one population-wide Thompson allocation (P(best) with ε-clip).

Hypothesis injection
--------------------
An operator subclasses :class:`Policy` (or writes any class with a matching ``assign``) and puts
it in a :class:`~pytyche.experiment.Cell`; the loop, the generators, cell scoring and plots treat
it exactly like the shipped ones::

    class MobileFreeShip(Policy):
        def assign(self, visitors, treatments, rng):
            probs = np.zeros((len(visitors), len(treatments)))
            mobile = (visitors["device"] == "mobile").to_numpy()
            probs[mobile, treatments.index("free_ship")] = 1.0
            probs[~mobile, 0] = 1.0
            return sample_arms(probs, rng), probs
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from pytyche._validation import Interval, check_float, invalid, validate, wrong_type

__all__ = [
    "Policy",
    "BaselinePolicy",
    "UniformPolicy",
    "TreePolicy",
    "ThompsonPolicy",
    "sample_arms",
    "check_assignment",
    "DEFAULT_EPSILON",
    "THOMPSON_DRAWS_CONSTRAINTS",
]

#: the ε of the Thompson ε-clip (docs/concepts.md, *Thompson allocation*: fixed, not a parameter of the public API)
DEFAULT_EPSILON = 0.02

#: the scalar settings of :meth:`ThompsonPolicy.from_draws` (draws, treatments and active are checked by hand)
THOMPSON_DRAWS_CONSTRAINTS: dict[str, Any] = {"epsilon": Interval(numbers.Real, 0.0, 1.0, closed="left", loose=True)}


@runtime_checkable
class Policy(Protocol):
    """A cell's routing rule (see the module docstring for the contract)."""

    def assign(self, visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Pick a treatment per visitor.

        Parameters
        ----------
        visitors
            The visitors this cell routes (schema features; any index).
        treatments
            The treatments universe, control first.
        rng
            The generator's random stream (the only source of randomness a policy may use).

        Returns
        -------
        arm_index : np.ndarray
            ``(n,)`` int index into ``treatments``.
        probs : np.ndarray
            ``(n, K)`` the assignment probabilities actually used (rows sum to 1).
        """
        ...


def sample_arms(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one arm per row of ``probs`` ``(n, K)`` (inverse-CDF on one uniform per row)."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(n) * cdf[:, -1]
    arm = (cdf <= u[:, None]).sum(axis=1)
    # never land on a zero-probability arm through round-off at the top of the CDF
    arm = np.minimum(arm, probs.shape[1] - 1)
    bad = probs[np.arange(n), arm] <= 0
    if np.any(bad):
        arm[bad] = np.argmax(probs[bad], axis=1)
    return arm.astype(np.int64)


def check_assignment(policy: Any, arm: Any, probs: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a policy's ``assign`` output; returns it as ``(int64 (n,), float64 (n, K))``."""
    name = type(policy).__name__
    arm = np.asarray(arm)
    probs = np.asarray(probs, dtype=np.float64)
    if arm.shape != (n,) or not np.issubdtype(arm.dtype, np.integer):
        raise ValueError(f"{name}.assign must return an int arm index of shape ({n},). Got dtype {arm.dtype} shape {arm.shape}.")
    if probs.shape != (n, k):
        raise ValueError(f"{name}.assign must return probabilities of shape ({n}, {k}). Got {probs.shape}.")
    if n and (not np.all(np.isfinite(probs)) or np.any(probs < -1e-12) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)):
        raise ValueError(f"{name}.assign must return rows of probabilities in [0, 1] summing to 1.")
    if n and (np.any(arm < 0) or np.any(arm >= k)):
        raise ValueError(f"{name}.assign returned arm indices outside [0, {k}).")
    if n and np.any(probs[np.arange(n), arm] <= 0):
        raise ValueError(f"{name}.assign returned an arm its own probabilities give zero chance.")
    return arm.astype(np.int64), np.clip(probs, 0.0, 1.0)


def _index_of(names: Sequence[str], treatments: Sequence[str], where: str) -> list[int]:
    treatments = list(treatments)
    missing = [t for t in names if t not in treatments]
    if missing:
        raise invalid("treatments", where, f"a universe containing {list(names)}", treatments)
    return [treatments.index(t) for t in names]


def _fixed(weights: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    probs = np.tile(weights, (n, 1))
    return sample_arms(probs, rng), probs


class BaselinePolicy(Policy):
    """Always delivers the control treatment (``treatments[0]``): the Control cell's policy."""

    def assign(self, visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = len(treatments)
        probs = np.zeros((len(visitors), k))
        probs[:, 0] = 1.0
        return np.zeros(len(visitors), dtype=np.int64), probs

    def __repr__(self) -> str:
        return "BaselinePolicy()"

    def __eq__(self, other: object) -> bool:
        return type(other) is BaselinePolicy

    def __hash__(self) -> int:
        return hash("BaselinePolicy")


class UniformPolicy(Policy):
    """Uniform-random over a subset of treatments: the Explore cell's policy.

    Parameters
    ----------
    over
        Treatment names to randomise over (non-empty, unique), or ``None`` for every treatment
        of the universe passed to :meth:`assign`.
    """

    def __init__(self, over: Sequence[str] | None = None) -> None:
        if over is not None:
            if isinstance(over, str) or not isinstance(over, Sequence):
                raise wrong_type("over", "UniformPolicy", "a sequence of treatment names or None", over)
            over = tuple(over)
            if not over or any(not isinstance(t, str) or not t for t in over) or len(set(over)) != len(over):
                raise invalid("over", "UniformPolicy", "a non-empty sequence of unique treatment names", list(over))
        self.over: tuple[str, ...] | None = over

    def assign(self, visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = len(treatments)
        idx = list(range(k)) if self.over is None else _index_of(self.over, treatments, "UniformPolicy.assign")
        w = np.zeros(k)
        w[idx] = 1.0 / len(idx)
        return _fixed(w, len(visitors), rng)

    def __repr__(self) -> str:
        return f"UniformPolicy(over={None if self.over is None else list(self.over)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is UniformPolicy and other.over == self.over

    def __hash__(self) -> int:
        return hash(("UniformPolicy", self.over))


def _check_allocation(alloc: Any, name: str, where: str) -> dict[str, float]:
    if not isinstance(alloc, Mapping) or not alloc:
        raise wrong_type(name, where, "a non-empty mapping of treatment name to weight", alloc)
    out: dict[str, float] = {}
    for t, w in alloc.items():
        if not isinstance(t, str) or not t:
            raise invalid(name, where, "keyed by non-empty treatment names", t)
        out[t] = check_float(w, name, where, low=0.0, high=1.0)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise invalid(name, where, "weights summing to 1.0", round(total, 9))
    return out


class TreePolicy(Policy):
    """A policy tree plus a per-leaf allocation over treatments (an Optimized cell's policy).

    Each visitor is routed to its leaf, then gets a treatment drawn from
    ``allocation_map[leaf]`` (the leaf's Thompson allocation).

    Parameters
    ----------
    tree
        A :class:`~pytyche.contracts.PolicyTreeResult` (routing through its ``leaf_of``, which
        applies the schema's categorical coding), or a fitted sklearn tree (anything with
        ``apply``); the latter reads the columns ``features`` (default: its
        ``feature_names_in_``) as numbers, integer-coding the columns listed in ``categories``.
    allocation_map
        ``{leaf_id: {treatment: weight}}``; each leaf's weights sum to 1. Treatments missing from a
        leaf get weight 0.
    features, categories
        Only for a raw sklearn tree, see above.

    Raises
    ------
    ValueError
        When a leaf's weights do not sum to 1, or (at :meth:`assign`) when a visitor lands in a
        leaf without an allocation or a weighted treatment is not in the universe.
    """

    def __init__(
        self,
        tree: Any,
        allocation_map: Mapping[int, Mapping[str, float]],
        *,
        features: Sequence[str] | None = None,
        categories: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        w = "TreePolicy"
        if not (hasattr(tree, "leaf_of") or hasattr(tree, "apply")):
            raise wrong_type("tree", w, "a PolicyTreeResult or a fitted sklearn tree", tree)
        if not isinstance(allocation_map, Mapping) or not allocation_map:
            raise wrong_type("allocation_map", w, "a non-empty mapping leaf_id -> {treatment: weight}", allocation_map)
        self.tree = tree
        self.allocation_map: dict[int, dict[str, float]] = {
            int(leaf): _check_allocation(a, "allocation_map", w) for leaf, a in allocation_map.items()
        }
        if not hasattr(tree, "leaf_of"):
            if features is None:
                features = getattr(tree, "feature_names_in_", None)
                if features is None:
                    raise invalid("features", w, "given when the tree was not fitted on a DataFrame", None)
            features = [str(f) for f in features]
        self.features = None if features is None else tuple(features)
        self.categories = {k: list(v) for k, v in (categories or {}).items()}

    def leaves(self, visitors: pd.DataFrame) -> np.ndarray:
        """Leaf id of each visitor."""
        if hasattr(self.tree, "leaf_of"):
            return np.asarray(self.tree.leaf_of(visitors))
        cols = []
        for f in self.features or ():
            if f in self.categories:
                cols.append(pd.Categorical(visitors[f], categories=self.categories[f]).codes.astype(np.float64))
            else:
                cols.append(visitors[f].to_numpy(dtype=np.float64))
        x = np.column_stack(cols) if cols else np.zeros((len(visitors), 0))
        if getattr(self.tree, "feature_names_in_", None) is not None:
            x = pd.DataFrame(x, columns=list(self.features or ()))  # as fitted: no feature-name warning
        return np.asarray(self.tree.apply(x))

    def assign(self, visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = len(treatments)
        n = len(visitors)
        probs = np.zeros((n, k))
        if n:
            leaves = self.leaves(visitors)
            for leaf in np.unique(leaves):
                alloc = self.allocation_map.get(int(leaf))
                if alloc is None:
                    raise ValueError(
                        f"TreePolicy.assign routed visitors to leaf {int(leaf)}, which has no allocation "
                        f"(allocation_map leaves: {sorted(self.allocation_map)})."
                    )
                row = np.zeros(k)
                for t, wt in alloc.items():
                    if wt > 0:
                        row[_index_of([t], treatments, "TreePolicy.assign")[0]] = wt
                probs[leaves == leaf] = row / row.sum()
        return sample_arms(probs, rng), probs

    def __repr__(self) -> str:
        return f"TreePolicy(leaves={sorted(self.allocation_map)})"


class ThompsonPolicy(Policy):
    """One population-wide Thompson allocation: share of traffic proportional to P(best).

    ``ThompsonPolicy(allocation)`` routes every visitor by the same ``{treatment: weight}``
    (weights sum to 1). Build one from posterior draws with :meth:`from_draws` or
    :meth:`from_posterior`: each active treatment gets ``P(it has the highest mean outcome)``,
    ε-clipped so that every active treatment keeps at least ``ε / K_active`` of the traffic
    (ε = :data:`DEFAULT_EPSILON` = 0.02); inactive treatments get 0. This is the same rule that
    produces a :class:`TreePolicy`'s per-leaf allocation, applied to the whole population.

    Parameters
    ----------
    allocation
        ``{treatment: weight}`` summing to 1.
    """

    def __init__(self, allocation: Mapping[str, float]) -> None:
        self.allocation = _check_allocation(allocation, "allocation", "ThompsonPolicy")

    @classmethod
    def from_draws(
        cls,
        draws: np.ndarray,
        treatments: Sequence[str],
        *,
        active: Sequence[str] | None = None,
        epsilon: float = DEFAULT_EPSILON,
    ) -> "ThompsonPolicy":
        """Allocation from ``(S, K)`` posterior draws of each treatment's mean outcome.

        Parameters
        ----------
        draws
            ``(S, K)`` draws, columns in the order of ``treatments``.
        treatments
            Names of the K columns.
        active
            Treatments eligible for traffic (default: all).
        epsilon
            ε of the ε-clip, in [0, 1).
        """
        from pytyche.analysis.thompson import thompson_allocation

        w = "ThompsonPolicy.from_draws"
        draws = np.asarray(draws, dtype=np.float64)
        treatments = tuple(treatments)
        if draws.ndim != 2 or draws.shape[1] != len(treatments):
            raise invalid("draws", w, f"an (S, K) array with K = len(treatments) = {len(treatments)}", draws.shape)
        epsilon = validate({"epsilon": epsilon}, THOMPSON_DRAWS_CONSTRAINTS, w)["epsilon"]
        names = treatments if active is None else tuple(active)
        unknown = [t for t in names if t not in treatments]
        if unknown or not names:
            raise invalid("active", w, f"a non-empty subset of {list(treatments)}", list(names))
        mask = np.array([t in names for t in treatments])
        alloc = np.asarray(thompson_allocation(draws, mask, epsilon), dtype=np.float64)
        return cls({t: float(a) for t, a in zip(treatments, alloc) if a > 0})

    @classmethod
    def from_posterior(
        cls,
        posterior: Any,
        *,
        active: Sequence[str] | None = None,
        epsilon: float = DEFAULT_EPSILON,
    ) -> "ThompsonPolicy":
        """Allocation from a BCF posterior: the population mean outcome per treatment and draw."""
        draws = np.asarray(posterior.outcome_samples, dtype=np.float64).mean(axis=0)
        return cls.from_draws(draws, posterior.treatments, active=active, epsilon=epsilon)

    def assign(self, visitors: pd.DataFrame, treatments: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = len(treatments)
        w = np.zeros(k)
        for t, wt in self.allocation.items():
            if wt > 0:
                w[_index_of([t], treatments, "ThompsonPolicy.assign")[0]] = wt
        return _fixed(w / w.sum(), len(visitors), rng)

    def __repr__(self) -> str:
        body = ", ".join(f"{t!r}: {w:.3f}" for t, w in self.allocation.items())
        return f"ThompsonPolicy({{{body}}})"
