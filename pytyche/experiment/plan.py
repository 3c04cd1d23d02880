"""The next round plan: the handoff between the recommendation engine and the operator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pytyche._validation import check_int, invalid, wrong_type
from pytyche.experiment.cells import Cell, validate_cells
from pytyche.experiment.policies import check_assignment, sample_arms

__all__ = ["NextRoundPlan", "PlanAssignment"]


def _names(value: Any, name: str, where: str, *, allow_empty: bool) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise wrong_type(name, where, "a sequence of treatment names", value)
    out = tuple(value)
    for t in out:
        if not isinstance(t, str) or not t:
            raise invalid(name, where, "a sequence of non-empty treatment names", list(out))
    if len(set(out)) != len(out):
        raise invalid(name, where, "a sequence of unique treatment names", list(out))
    if not allow_empty and not out:
        raise invalid(name, where, "a non-empty sequence of treatment names", [])
    return out


@dataclass(frozen=True, eq=False)
class PlanAssignment:
    """How a plan routed a batch of visitors (row order of the visitors passed in).

    ``cell`` ``(n,)`` cell ids; ``arm`` ``(n,)`` index into ``treatments``; ``probs`` ``(n, K)``
    the assignment probabilities the visitor's cell policy used (its propensities).
    """

    cell: np.ndarray
    arm: np.ndarray
    probs: np.ndarray
    treatments: tuple[str, ...]

    @property
    def arm_names(self) -> np.ndarray:
        return np.asarray(self.treatments, dtype=object)[self.arm]


@dataclass(frozen=True)
class NextRoundPlan:
    """The cell structure, treatments and rationale for one round.

    Parameters
    ----------
    cells
        The round's cells (unique ids, weights summing to 1.0).
    active_treatments
        Treatments the engine keeps allocating (control first when present).
    dropped_treatments
        Universe treatments dropped as dominated everywhere.
    rationale
        Prose explaining the plan.
    round_idx
        The round this plan is for.
    n_visitors
        The round's visitor count, set by the loop from the schedule before the plan is handed to
        the generator (``None`` on a recommendation whose round is beyond a bounded schedule).
    treatments
        The full treatments universe, control first (default: ``active_treatments +
        dropped_treatments``). Policies index into it.

    Raises
    ------
    ValueError
        When the cells' weights do not sum to 1.0, cell ids repeat, treatment lists overlap or do
        not partition ``treatments``.
    """

    cells: tuple[Cell, ...]
    active_treatments: tuple[str, ...]
    dropped_treatments: tuple[str, ...]
    rationale: str
    round_idx: int
    n_visitors: int | None = None
    treatments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        w = "NextRoundPlan"
        object.__setattr__(self, "cells", validate_cells(self.cells, "cells", w))
        active = _names(self.active_treatments, "active_treatments", w, allow_empty=False)
        dropped = _names(self.dropped_treatments, "dropped_treatments", w, allow_empty=True)
        if set(active) & set(dropped):
            raise invalid("dropped_treatments", w, "disjoint from active_treatments", sorted(set(active) & set(dropped)))
        universe = active + dropped if self.treatments is None else _names(self.treatments, "treatments", w, allow_empty=False)
        if set(universe) != set(active) | set(dropped):
            raise invalid("treatments", w, f"exactly active_treatments + dropped_treatments ({sorted(set(active) | set(dropped))})", list(universe))
        if not isinstance(self.rationale, str):
            raise wrong_type("rationale", w, "a str", self.rationale)
        object.__setattr__(self, "active_treatments", active)
        object.__setattr__(self, "dropped_treatments", dropped)
        object.__setattr__(self, "treatments", universe)
        object.__setattr__(self, "round_idx", check_int(self.round_idx, "round_idx", w, low=0))
        if self.n_visitors is not None:
            object.__setattr__(self, "n_visitors", check_int(self.n_visitors, "n_visitors", w, low=1))

    @property
    def control(self) -> str:
        """The control treatment (first of the universe)."""
        return self.treatments[0]  # type: ignore[index]

    @property
    def cell_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cells)

    @property
    def weights(self) -> dict[str, float]:
        return {c.id: c.weight for c in self.cells}

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise ValueError(f"Unknown cell id {cell_id!r}: this plan's cells are {list(self.cell_ids)}.")

    def assign(self, visitors: pd.DataFrame, rng: np.random.Generator) -> PlanAssignment:
        """Route visitors through the plan: a cell by weight, then the cell's policy.

        This is what a platform (or a sim generator) does with a plan; the returned probabilities
        are the ones to record in the propensity columns.

        Parameters
        ----------
        visitors
            One row per visitor with the schema features the policies read.
        rng
            A numpy ``Generator``; the only randomness used.
        """
        if not isinstance(visitors, pd.DataFrame):
            raise wrong_type("visitors", "NextRoundPlan.assign", "a pandas DataFrame", visitors)
        if not isinstance(rng, np.random.Generator):
            raise wrong_type("rng", "NextRoundPlan.assign", "a numpy.random.Generator", rng)
        n = len(visitors)
        treatments = self.treatments
        k = len(treatments)  # type: ignore[arg-type]
        weights = np.array([c.weight for c in self.cells])
        which = sample_arms(np.tile(weights / weights.sum(), (n, 1)), rng)
        cell = np.empty(n, dtype=object)
        arm = np.zeros(n, dtype=np.int64)
        probs = np.zeros((n, k))
        for j, c in enumerate(self.cells):
            rows = np.flatnonzero(which == j)
            cell[rows] = c.id
            if rows.size == 0:
                continue
            sub = visitors.iloc[rows]
            a, p = c.policy.assign(sub, treatments, rng)
            a, p = check_assignment(c.policy, a, p, rows.size, k)
            arm[rows] = a
            probs[rows] = p
        return PlanAssignment(cell, arm, probs, treatments)  # type: ignore[arg-type]

    def with_size(self, n_visitors: int) -> "NextRoundPlan":
        """A copy carrying the round's visitor count."""
        import dataclasses

        return dataclasses.replace(self, n_visitors=n_visitors)

    # ---- export ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plan as a JSON-ready dict (see :meth:`to_json`)."""
        from pytyche.experiment.plan_io import plan_to_dict

        return plan_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, policies: Any = None) -> "NextRoundPlan":
        """Rebuild a plan from :meth:`to_dict`'s output (see :meth:`from_json`)."""
        from pytyche.experiment.plan_io import plan_from_dict

        return plan_from_dict(data, policies)

    def to_json(self, indent: int | None = 2) -> str:
        """The plan as JSON for a platform's router (schema: ``docs/plan_schema.md``).

        Covers the cells and their weights and every shipped policy: baseline, uniform over a
        set, a population-wide Thompson allocation, and a policy tree as readable split rules
        (numeric thresholds, category sets) with per-leaf allocations. An operator-defined
        policy is exported only when it provides ``to_dict()`` and a ``from_dict(params)``
        classmethod; otherwise a ``TypeError`` names the cell.

        Raises
        ------
        TypeError
            When a cell's policy is operator-defined without ``to_dict``/``from_dict``.
        """
        from pytyche.experiment.plan_io import plan_to_json

        return plan_to_json(self, indent)

    @classmethod
    def from_json(cls, text: str, policies: Any = None) -> "NextRoundPlan":
        """Read a plan written by :meth:`to_json`; it routes identically (same ``assign`` for the same rng).

        Parameters
        ----------
        text
            The JSON document.
        policies
            The registry resolving operator-defined policies: a mapping ``name -> class`` (keyed
            by ``"module:QualName"`` or the bare class name) or a sequence of classes. A plan never
            imports code: a custom class missing from it is a ``ValueError``.

        Raises
        ------
        ValueError
            For malformed JSON, another document type, a newer format version, or an unknown
            policy kind or class.
        """
        from pytyche.experiment.plan_io import plan_from_json

        return plan_from_json(text, policies)

    def to_sql(self, table: str = "visitors") -> str:
        """A SQL query adding each visitor's leaf and routing probabilities to ``table``.

        See :func:`pytyche.experiment.plan_io.plan_to_sql` for the columns. Operator-defined
        policies have no SQL form (``ValueError``).
        """
        from pytyche.experiment.plan_io import plan_to_sql

        return plan_to_sql(self, table)

    def describe(self) -> str:
        """One line per cell: id, weight, policy."""
        return "\n".join(f"{c.id}: {c.weight:.1%} {c.policy!r}" for c in self.cells)

