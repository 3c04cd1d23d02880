"""Per-visitor arrays and posterior decomposition samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytyche._validation import invalid, violated


@dataclass(frozen=True)
class AlignedVisitorArray:
    """A per-visitor array (first axis n) aligned to an experiment's variant-major row order.

    ``offsets`` has length K + 1: rows ``offsets[i]:offsets[i+1]`` belong to ``variants[i]``.
    """

    values: np.ndarray
    variants: tuple[str, ...]
    offsets: tuple[int, ...]

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if len(self.offsets) != len(self.variants) + 1:
            raise violated(
                "'offsets' parameter", "AlignedVisitorArray", f"have len(variants) + 1 = {len(self.variants) + 1} entries. Got {len(self.offsets)} instead."
            )
        if values.ndim == 0 or values.shape[0] != self.offsets[-1]:
            raise violated("'values' parameter", "AlignedVisitorArray", f"have {self.offsets[-1]} rows (one per visitor). Got shape {values.shape} instead.")
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return self.values.shape[0]

    def __array__(self, dtype=None, copy=None):  # noqa: ANN001
        return np.asarray(self.values, dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def for_variant(self, name: str) -> np.ndarray:
        """Rows of one variant."""
        if name not in self.variants:
            raise ValueError(f"Unknown variant {name!r}: this array is aligned to {list(self.variants)}.")
        i = self.variants.index(name)
        return self.values[self.offsets[i] : self.offsets[i + 1]]


@dataclass(frozen=True)
class DecompositionSamples:
    """Per-visitor, per-draw hurdle decomposition of a revenue-type outcome.

    Attributes
    ----------
    p_samples
        ``(n, S_total, K)`` conversion probability of each visitor under each arm.
    sev_samples
        ``(n, S_total, K)`` expected severity given conversion, ``m = exp(mu_log + sigma^2/2)``.
    rpv_cate_samples
        ``(n, S_total, K-1)`` revenue-per-visitor CATE of each non-control arm versus control,
        ``p_a * m_a - p_0 * m_0`` per draw.
    """

    p_samples: np.ndarray
    sev_samples: np.ndarray
    rpv_cate_samples: np.ndarray

    def __post_init__(self) -> None:
        p, m, c = (np.asarray(a) for a in (self.p_samples, self.sev_samples, self.rpv_cate_samples))
        if p.ndim != 3 or m.shape != p.shape:
            raise violated("'p_samples' and 'sev_samples' parameters", "DecompositionSamples", f"both be (n, S, K). Got {p.shape} and {m.shape} instead.")
        n, s, k = p.shape
        if c.shape != (n, s, k - 1):
            raise invalid("rpv_cate_samples", "DecompositionSamples", f"(n, S, K-1) = {(n, s, k - 1)}", c.shape, show=False)

    @property
    def conversion_effect_samples(self) -> np.ndarray:
        """``(n, S, K-1)`` change in conversion probability versus control."""
        return self.p_samples[..., 1:] - self.p_samples[..., :1]

    @property
    def severity_effect_samples(self) -> np.ndarray:
        """``(n, S, K-1)`` change in expected severity (given conversion) versus control."""
        return self.sev_samples[..., 1:] - self.sev_samples[..., :1]

    @property
    def rpv_samples(self) -> np.ndarray:
        """``(n, S, K)`` expected revenue per visitor under each arm."""
        return self.p_samples * self.sev_samples
