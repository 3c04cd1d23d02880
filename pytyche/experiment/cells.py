"""Cells: the assignment cohorts of one round.

A :class:`Cell` is an id, the :class:`~pytyche.experiment.policies.Policy` that routes its
visitors, and the share of the round's traffic it receives. The cells of a round span the whole
visitor population by weight (weights sum to 1). Not to be confused with a *segment* (a
feature-space region, e.g. a policy-tree leaf) or a *cluster* (a DGP's latent mixture component).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytyche._validation import check_float, invalid, wrong_type

__all__ = ["Cell", "validate_cells", "WEIGHT_TOLERANCE"]

#: absolute tolerance on the cell-weight sum
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Cell:
    """An assignment cohort: ``Cell(id, policy, weight)``.

    Parameters
    ----------
    id
        Non-empty identifier, unique within a round (recorded in the data's ``cell`` column).
    policy
        The routing rule: any object with the :class:`~pytyche.experiment.Policy` ``assign``
        method (shipped policies or an operator's subclass).
    weight
        Share of the round's traffic, in (0, 1].

    Examples
    --------
    >>> from pytyche.experiment import BaselinePolicy, UniformPolicy
    >>> cells = [Cell("control", BaselinePolicy(), 0.5), Cell("explore", UniformPolicy(), 0.5)]
    """

    id: str
    policy: Any
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise wrong_type("id", "Cell", "a non-empty str", self.id)
        if not self.id.strip():
            raise invalid("id", "Cell", "a non-empty str", self.id)
        if not callable(getattr(self.policy, "assign", None)):
            raise wrong_type("policy", "Cell", "a Policy (an object with an assign(visitors, treatments, rng) method)", self.policy)
        w = check_float(self.weight, "weight", "Cell", low=0.0, high=1.0, low_open=True)
        object.__setattr__(self, "weight", w)


def validate_cells(cells: Any, name: str, where: str) -> tuple[Cell, ...]:
    """Check a cell structure: a non-empty sequence of :class:`Cell`, unique ids, weights sum to 1.

    Raises
    ------
    TypeError
        When ``cells`` is not a sequence of :class:`Cell`.
    ValueError
        When it is empty, ids repeat, or the weights do not sum to 1.0.
    """
    if isinstance(cells, (str, bytes)) or not isinstance(cells, Sequence):
        raise wrong_type(name, where, "a list of Cell", cells)
    cells = tuple(cells)
    if not cells:
        raise invalid(name, where, "a non-empty list of Cell", [])
    for c in cells:
        if not isinstance(c, Cell):
            raise wrong_type(name, where, "a list of Cell", c)
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise invalid(name, where, "cells with unique ids", ids)
    total = sum(c.weight for c in cells)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise invalid(name, where, "cells whose weights sum to 1.0", f"weights summing to {total:.6g}", show=False)
    return cells
