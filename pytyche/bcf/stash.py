"""Observed-data stashing: how a posterior holds the data it was fit on (``observed_copy``).

Three modes (docs/concepts.md, *observed_copy*):

``"view"`` (default)
    A shallow clone of the :class:`~pytyche.contracts.ObservedExperimentData` whose visitors
    DataFrames are rebuilt over read-only numpy views of the original columns. No data buffer
    is copied. In-place mutation through the stash (``stash.variants[0].visitors.loc[0, "x"] =
    ...``) raises ``ValueError("assignment destination is read-only")``. The buffers are shared,
    so mutation through the caller's original handle is reflected in the stash.

    Columns stored in Apache Arrow (pandas' default ``str`` dtype when pyarrow is installed) are
    immutable buffers to begin with: the stash wraps the same buffers in a new array object, so an
    assignment through the stash can only replace the stash's own column (pandas' copy-on-write)
    and never reaches the caller's data.
``"deep"``
    ``copy.deepcopy(observed)``: a bit-stable stash independent of later mutation of the
    original, at twice the memory.
``"ref"``
    The caller's object itself (``posterior.observed is observed``): no wrappers, no protection.
"""

from __future__ import annotations

import copy
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from pytyche._validation import Options, check, wrong_type
from pytyche.contracts.observed import ObservedExperimentData, VariantData

__all__ = ["OBSERVED_COPY_MODES", "ObservedCopy", "check_observed_copy", "stash_observed"]

ObservedCopy = Literal["view", "deep", "ref"]
OBSERVED_COPY_MODES: tuple[str, ...] = ("view", "deep", "ref")


def check_observed_copy(value: object, where: str) -> str:
    """Validate an ``observed_copy`` argument; the error names the three valid modes."""
    return check(value, "observed_copy", where, Options(OBSERVED_COPY_MODES))


def stash_observed(observed: ObservedExperimentData, observed_copy: str = "view", *, where: str = "stash_observed") -> ObservedExperimentData:
    """Return the stash of ``observed`` for a posterior, per ``observed_copy``.

    Raises
    ------
    TypeError
        If ``observed`` is not an :class:`ObservedExperimentData`.
    ValueError
        If ``observed_copy`` is not ``"view"``, ``"deep"`` or ``"ref"``.
    """
    if not isinstance(observed, ObservedExperimentData):
        raise wrong_type("observed", where, "an ObservedExperimentData", observed)
    mode = check_observed_copy(observed_copy, where)
    if mode == "ref":
        return observed
    if mode == "deep":
        return copy.deepcopy(observed)
    return _read_only_clone(observed)


def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _read_only_column(s: pd.Series):  # noqa: ANN202 - numpy array or ExtensionArray
    """A read-only view of one column's storage (no copy of the data buffer)."""
    from pandas.core.arrays import BaseMaskedArray
    from pandas.core.arrays._mixins import NDArrayBackedExtensionArray

    if isinstance(s.dtype, np.dtype):
        return _read_only(s.to_numpy(copy=False))
    arr = s.array
    if isinstance(arr, NDArrayBackedExtensionArray):  # Categorical codes, datetimes, python strings
        return arr._from_backing_data(_read_only(arr._ndarray))
    if isinstance(arr, BaseMaskedArray):  # nullable Int64 / Float64 / boolean
        return type(arr)(_read_only(arr._data), _read_only(arr._mask))
    # Arrow-backed (immutable buffers) and any other extension array: a new array object over
    # the same storage with the same dtype (a slice of everything), never the original object
    return arr[:]


def _read_only_frame(df: pd.DataFrame) -> pd.DataFrame:
    # positional keys, then the original column index (keeps duplicate or non-str names)
    cols = {j: _read_only_column(df.iloc[:, j]) for j in range(df.shape[1])}
    out = pd.DataFrame(cols, index=df.index, copy=False)
    out.columns = df.columns
    out.attrs = dict(df.attrs)
    return out


def _read_only_clone(observed: ObservedExperimentData) -> ObservedExperimentData:
    variants = tuple(VariantData(v.name, _read_only_frame(v.visitors)) for v in observed.variants)
    clone = copy.copy(observed)
    # drop cached per-visitor arrays of the original (e.g. ``arm``, which is writable) so the
    # clone derives its own from the read-only frames
    for klass in type(observed).__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, cached_property):
                clone.__dict__.pop(name, None)
    object.__setattr__(clone, "variants", variants)
    return clone
