"""Cumulative data of a sequential experiment: every round so far, in variant-major order.

The cumulative row order is variant-major: all rounds of the first-seen variant, then all rounds
of the next (the universe's control is always placed first so the estimators see it as the
baseline). Within a variant, rows keep round order and, inside a round, that round's own order.

:func:`_build_cumulative` also returns the *position map*: for round ``r`` an int array ``pos[r]``
with ``pos[r][i]`` = the cumulative row of round ``r``'s row ``i`` (in the round's own
variant-major concatenation). Per-round artifacts aligned to a round (truth arrays, the cell
column) are re-indexed into cumulative order with it: ``cum[pos[r]] = round_values``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pytyche._validation import violated
from pytyche.contracts.observed import ObservedExperimentData, VariantData, propensity_columns
from pytyche.contracts.truth import CalibrationTruth

__all__ = ["_build_cumulative", "cumulative_order", "round_design", "design_in_order", "design_propensities", "reindex", "cumulative_truth", "cumulative_cells", "round_of_rows"]


def cumulative_order(rounds: Sequence[ObservedExperimentData], control: str | None = None) -> tuple[str, ...]:
    """Variant names in first-seen order across rounds, with ``control`` moved to the front."""
    seen: list[str] = []
    for r in rounds:
        for name in r.variant_names:
            if name not in seen:
                seen.append(name)
    if control is not None and control in seen:
        seen.remove(control)
        seen.insert(0, control)
    return tuple(seen)


def _full_probs(obs: ObservedExperimentData, order: tuple[str, ...]) -> np.ndarray:
    """``(n_round, K_cum)`` per-visitor probability of every cumulative arm, round variant-major.

    From the round's propensity columns when present (the round's control gets the remainder,
    arms the round never saw get 0); otherwise the round's empirical arm shares.
    """
    k_cum = len(order)
    n = obs.n_visitors
    full = np.zeros((n, k_cum))
    cols = [order.index(v) for v in obs.variant_names]
    if obs.has_propensity:
        p = obs.propensity()  # (n, K_r - 1) for the round's non-control arms
        full[:, cols[1:]] = p
        full[:, cols[0]] = np.clip(1.0 - p.sum(axis=1), 0.0, 1.0)
    else:
        shares = np.array([v.n for v in obs.variants], dtype=np.float64) / n
        full[:, cols] = shares
    return full


def round_design(obs: ObservedExperimentData, plan: Any) -> pd.DataFrame:
    """Design propensities of one round's visitors: a ``(n_round, arms)`` frame over ``plan.treatments``.

    ``sum_c w_c * pi_c(a | x)`` over the plan's cells: the probability that the round's
    randomisation (a cell drawn with the plan's weight, then the cell's policy) delivers arm ``a``
    to a visitor with features ``x``. Rows are the round's visitors (round variant-major). A round's
    design depends on its own plan and visitors only, so it is computed once, when the round runs,
    and mapped onto each later cumulative arm order by :func:`design_in_order`.
    """
    universe = tuple(plan.treatments)
    visitors = obs.visitors()
    weights = np.array([c.weight for c in plan.cells], dtype=np.float64)
    weights = weights / weights.sum()
    rng = np.random.default_rng(0)  # the policies' probabilities do not depend on it
    mix = np.zeros((obs.n_visitors, len(universe)))
    for c, w in zip(plan.cells, weights):
        _, probs = c.policy.assign(visitors, universe, rng)
        mix += w * np.asarray(probs, dtype=np.float64)
    return pd.DataFrame(mix, columns=list(universe))


def design_in_order(design: pd.DataFrame, order: Sequence[str]) -> np.ndarray:
    """``(n_round, len(order))`` columns of a :func:`round_design` frame; arms its plan lacked get 0."""
    return design.reindex(columns=list(order), fill_value=0.0).to_numpy(dtype=np.float64)


def design_propensities(
    rounds: Sequence[Any],
    plans: Sequence[Any] | None,
    positions: Sequence[np.ndarray],
    order: Sequence[str],
    designs: Sequence[pd.DataFrame] | None = None,
) -> np.ndarray:
    """``(N, K)`` design propensities of the cumulative visitors over the cumulative arms ``order``.

    Round ``r``'s visitors get ``sum_c w_c * pi_c(a | x)`` from ``plans[r]`` (its cells' weights and
    policies), placed at ``positions[r]``. Pass ``designs`` (the rounds' :func:`round_design`
    frames) instead of ``plans`` when they are already computed.
    """
    if designs is None:
        if plans is None:
            raise violated("'plans' parameter", "design_propensities", "be given when 'designs' is not. Got None instead.")
        designs = [round_design(obs, plan) for obs, plan in zip(rounds, plans)]
    n_total = int(sum(p.shape[0] for p in positions))
    return reindex([design_in_order(d, order) for d in designs], positions, n_total)


def _build_cumulative(
    rounds: Sequence[ObservedExperimentData],
    control: str | None = None,
    plans: Sequence[Any] | None = None,
    designs: Sequence[pd.DataFrame] | None = None,
) -> tuple[ObservedExperimentData, list[np.ndarray]]:
    """Concatenate rounds into one variant-major :class:`ObservedExperimentData`.

    Parameters
    ----------
    rounds
        The rounds' data, oldest first. They must share experiment id, metric and schema.
    control
        The universe's control, placed first (default: the first-seen variant).
    plans
        The rounds' plans (one per round). When given, the propensity columns hold the *design*
        propensities :func:`design_propensities` (each round's cells mixed by their weights),
        not the probabilities of the cell that routed each visitor: the cell is drawn at random,
        so it says nothing about the visitor, and a fit that conditions on it compares each cell
        only with itself (a holdout cell's controls never inform the treated cell's contrast).
    designs
        The rounds' :func:`round_design` frames, when the caller already has them (the sequential
        runner computes each round's once); takes the place of ``plans``.

    Returns
    -------
    cumulative : ObservedExperimentData
        All rows, variant-major in first-seen order (control first); ``round_idx`` None. The
        ``cell`` column is carried (cell ids are round-local). Propensity columns are rebuilt for
        the cumulative K from each round's design propensities when ``plans`` are given, else from
        its recorded probabilities (rounds without them use their empirical arm shares), so they
        stay meaningful when rounds saw different arm sets.
    positions : list of np.ndarray
        The position map: ``positions[r][i]`` is the cumulative row of round ``r``'s row ``i``.
    """
    if not rounds:
        raise violated("'rounds' parameter", "_build_cumulative", "hold at least one round. Got [] instead.")
    order = cumulative_order(rounds, control)
    k = len(order)
    if k < 2:
        raise ValueError(
            f"The cumulative data must hold at least 2 variants (control first). Got only {list(order)}."
        )
    first = rounds[0]
    prop_cols = propensity_columns(k)
    if plans is not None and designs is not None:
        raise violated("'designs' parameter", "_build_cumulative", "be None when 'plans' is given (pass one of them).")
    if plans is not None:
        if len(plans) != len(rounds):
            raise violated("'plans' parameter", "_build_cumulative", f"hold one plan per round ({len(rounds)}). Got {len(plans)} instead.")
        designs = [round_design(r, plan) for r, plan in zip(rounds, plans)]
    if designs is not None:
        if len(designs) != len(rounds):
            raise violated("'designs' parameter", "_build_cumulative", f"hold one design per round ({len(rounds)}). Got {len(designs)} instead.")
        probs = [design_in_order(d, order) for d in designs]
    elif any(r.has_propensity for r in rounds):
        probs = [_full_probs(r, order) for r in rounds]
    else:
        probs = None

    sizes = np.zeros((len(rounds), k), dtype=np.int64)  # visitors of variant v in round r
    for ri, r in enumerate(rounds):
        for v in r.variants:
            sizes[ri, order.index(v.name)] = v.n
    per_variant = sizes.sum(axis=0)
    var_start = np.concatenate([[0], np.cumsum(per_variant)])
    # start of (round r, variant v) block within the cumulative order
    block_start = var_start[:-1][None, :] + np.vstack([np.zeros((1, k), dtype=np.int64), np.cumsum(sizes, axis=0)[:-1]])

    positions: list[np.ndarray] = []
    for ri, r in enumerate(rounds):
        pos = np.empty(r.n_visitors, dtype=np.int64)
        off = 0
        for v in r.variants:
            j = order.index(v.name)
            pos[off : off + v.n] = block_start[ri, j] + np.arange(v.n)
            off += v.n
        positions.append(pos)

    variants = []
    for j, name in enumerate(order):
        frames = []
        for ri, r in enumerate(rounds):
            if name not in r.variant_names:
                continue
            df = r.variant(name).visitors.drop(columns=[c for c in r.variant(name).visitors.columns if c == "propensity" or str(c).startswith("propensity_")])
            if probs is not None:
                lo = r.offsets[r.variant_names.index(name)]
                rows = probs[ri][lo : lo + len(df)]
                df = df.assign(**{c: rows[:, a] for c, a in zip(prop_cols, range(1, k))})
            frames.append(df)
        variants.append(VariantData(name, pd.concat(frames, ignore_index=True)))
    cumulative = ObservedExperimentData(first.experiment_id, first.metric, tuple(variants), first.schema, None)
    return cumulative, positions


def reindex(values: Sequence[np.ndarray], positions: Sequence[np.ndarray], n_total: int) -> np.ndarray:
    """Place per-round arrays (first axis: the round's own row order) into cumulative order."""
    first = np.asarray(values[0])
    out = np.empty((n_total, *first.shape[1:]), dtype=first.dtype if first.dtype != object else object)
    filled = np.zeros(n_total, dtype=bool)
    for v, pos in zip(values, positions):
        v = np.asarray(v)
        if v.shape[0] != pos.shape[0]:
            raise ValueError(f"A per-round array has {v.shape[0]} rows but its round has {pos.shape[0]} visitors.")
        out[pos] = v
        filled[pos] = True
    if not filled.all():
        raise ValueError("The position map does not cover every cumulative row.")
    return out


def cumulative_truth(
    truths: Sequence[CalibrationTruth],
    positions: Sequence[np.ndarray],
    order: Sequence[str],
) -> CalibrationTruth:
    """Per-round truths re-indexed into cumulative order, arms selected by name in ``order``.

    Each round's truth must name every arm of ``order`` (sim generators report the truth of the
    whole treatments universe, even for arms a round happened not to allocate).
    """
    order = tuple(order)
    n_total = int(sum(p.shape[0] for p in positions))
    cols = []
    for ri, t in enumerate(truths):
        missing = [a for a in order if a not in t.treatments]
        if missing:
            raise ValueError(
                f"The truth of round {ri} must cover every cumulative treatment {list(order)}. Missing {missing}."
            )
        cols.append([t.treatments.index(a) for a in order])
    eo = reindex([t.expected_outcome[:, c] for t, c in zip(truths, cols)], positions, n_total)
    cid = reindex([t.cluster_ids for t in truths], positions, n_total)
    hurdle = all(t.p is not None for t in truths)
    p = reindex([t.p[:, c] for t, c in zip(truths, cols)], positions, n_total) if hurdle else None  # type: ignore[index]
    m = reindex([t.m[:, c] for t, c in zip(truths, cols)], positions, n_total) if hurdle else None  # type: ignore[index]
    latent = all(t.latent_expected_outcome is not None for t in truths)
    lat = (
        reindex([t.latent_expected_outcome[:, c] for t, c in zip(truths, cols)], positions, n_total)  # type: ignore[index]
        if latent
        else None
    )
    return CalibrationTruth(eo, order, cid, p, m, lat)


def cumulative_cells(rounds: Sequence[ObservedExperimentData], positions: Sequence[np.ndarray]) -> np.ndarray:
    """The rounds' ``cell`` columns re-indexed into cumulative order (object array)."""
    total = int(sum(p.shape[0] for p in positions))
    return reindex([r.cells() for r in rounds], positions, total)


def round_of_rows(positions: Sequence[np.ndarray]) -> np.ndarray:
    """``(N,)`` round index of every cumulative row."""
    total = int(sum(p.shape[0] for p in positions))
    return reindex([np.full(p.shape[0], i, dtype=np.int64) for i, p in enumerate(positions)], positions, total)

