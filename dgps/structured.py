"""The ``structured_*`` templates' shared parts: the effect structures a
calibration fit population must span (issue 24: no effect, a uniform shift, a harmful arm, sparse
segments, broad smooth effects, effects that cross zero, and opposing conversion and basket effects).

Every structure is a pair of shapes over the visitors' features ``x1``, ``x2``, ``x3`` (numeric)
and ``tier`` (categorical), used as *relative* lifts by the hurdle and binary templates (the
conversion shape moves ``p``, the size shape moves the basket ``m``) and as an absolute shift in
outcome sds by the continuous one (conversion shape only). ``effect_scale`` multiplies both, so a
population drawn over it spans effect-to-noise from 0 upwards.

=========  ===========================================  =========================================
structure  conversion shape ``h``                        size shape ``g`` (hurdle basket)
=========  ===========================================  =========================================
none       0                                             0
uniform    1 everywhere                                  0.5 everywhere
harmful    -1 everywhere                                 -0.5 everywhere
sparse     2 on the ~16% with ``x1 > 1``, else 0         1 on the same visitors, else 0
smooth     ``0.3 + 0.7 tanh(x2)`` (broad, mostly > 0)    half of it
crossing   +1 for silver / gold, -1 for bronze (~50%)    half of it
opposing   -0.5 everywhere (conversion falls)            ``3 sigmoid(2 x3)`` (baskets rise)
=========  ===========================================  =========================================

Under ``opposing`` revenue per visitor rises for about 50-70% of visitors (large ``x3``, where the
basket gain outweighs the lost conversions) and falls for the rest, at every ``effect_scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dgps.base import FeatureTemplate, integer, param, real
from pytyche._validation import Options

__all__ = ["STRUCTURES", "TIERS", "StructuredTemplate", "base_conversion", "draw_structured_features", "shapes", "tier_values"]

#: the effect structures, in the order of the table above
STRUCTURES: tuple[str, ...] = ("none", "uniform", "harmful", "sparse", "smooth", "crossing", "opposing")
#: the ``tier`` feature's levels and shares
TIERS: tuple[str, ...] = ("bronze", "silver", "gold")
_TIER_SHARES = (0.5, 0.35, 0.15)

#: the structures the second treatment arm may take (K = 3)
_ARM_STRUCTURE = Options(STRUCTURES)


def draw_structured_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``x1``, ``x2``, ``x3`` independent ``N(0, 1)`` rounded to 0.01, and ``tier``."""
    x = np.round(rng.standard_normal((n, 3)), 2)
    tier = np.asarray(TIERS, dtype=object)[rng.choice(len(TIERS), size=n, p=_TIER_SHARES)]
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "tier": tier})


def tier_values(visitors: pd.DataFrame, table: dict[str, float]) -> np.ndarray:
    """``table[tier]`` per visitor."""
    return np.array([table[v] for v in visitors["tier"].to_numpy()], dtype=np.float64)


#: the control conversion's multiplier by tier (revenue and conversion templates)
TIER_CONVERSION = {"bronze": 0.8, "silver": 1.0, "gold": 1.4}


def base_conversion(visitors: pd.DataFrame, rate: float) -> np.ndarray:
    """The control conversion of the revenue and conversion templates:
    ``rate * (1 + 0.4 tanh(x1 + 0.5 x3)) * t``, ``t`` 0.8 / 1.0 / 1.4 by tier."""
    x1 = visitors["x1"].to_numpy(dtype=np.float64)
    x3 = visitors["x3"].to_numpy(dtype=np.float64)
    return rate * (1.0 + 0.4 * np.tanh(x1 + 0.5 * x3)) * tier_values(visitors, TIER_CONVERSION)


def shapes(structure: str, visitors: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The conversion and size shapes ``(h, g)`` of ``structure`` for these visitors (table above)."""
    n = len(visitors)
    x1 = visitors["x1"].to_numpy(dtype=np.float64)
    x2 = visitors["x2"].to_numpy(dtype=np.float64)
    x3 = visitors["x3"].to_numpy(dtype=np.float64)
    if structure == "none":
        h = np.zeros(n)
        return h, h
    if structure == "uniform":
        return np.ones(n), np.full(n, 0.5)
    if structure == "harmful":
        return -np.ones(n), np.full(n, -0.5)
    if structure == "sparse":
        seg = (x1 > 1.0).astype(np.float64)
        return 2.0 * seg, seg
    if structure == "smooth":
        h = 0.3 + 0.7 * np.tanh(x2)
        return h, 0.5 * h
    if structure == "crossing":
        h = np.where(visitors["tier"].to_numpy() == "bronze", -1.0, 1.0)
        return h, 0.5 * h
    if structure == "opposing":
        return np.full(n, -0.5), 3.0 / (1.0 + np.exp(-2.0 * x3))
    raise ValueError(f"structure must be one of {list(STRUCTURES)}. Got {structure!r} instead.")


@dataclass(frozen=True)
class StructuredTemplate(FeatureTemplate):
    """Features ``x1``, ``x2``, ``x3``, ``tier`` (+ ``n_noise``), arms named by ``n_arms``, and an
    effect of ``structure`` (arm 1) and ``second_structure`` (arm 2, when ``n_arms = 3``) scaled by
    ``effect_scale``. A family base (revenue, conversion, continuous) turns the shapes into a
    surface."""

    structure: str = param("uniform", _ARM_STRUCTURE)
    second_structure: str = param("harmful", _ARM_STRUCTURE)
    effect_scale: float = param(1.0, real(low=0.0, high=3.0))
    n_arms: int = param(2, integer(2, 3))

    features = {"x1": "numeric", "x2": "numeric", "x3": "numeric", "tier": "categorical"}

    @property
    def treatments(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("control", "treatment", "treatment_b")[: self.n_arms]

    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        return draw_structured_features(rng, n)

    def arm_shapes(self, visitors: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(h, g)`` per treated arm (arm 1, then arm 2 when ``n_arms = 3``)."""
        arms = (self.structure, self.second_structure)[: self.n_arms - 1]
        return [shapes(s, visitors) for s in arms]
