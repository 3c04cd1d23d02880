"""The data contract of the whole system: ``ObservedExperimentData``.

One experiment (or one round of a sequential experiment): an id, the outcome metric, and one
``VariantData`` per treatment (control first), each holding a visitors DataFrame with the
schema's feature columns, the outcome column, and the reserved columns:

- ``cell``: the id of the cell that routed the visitor (required by the sequential loop; optional
  for a single-shot test),
- ``propensity`` (K = 2: probability of the treatment arm) or ``propensity_1..propensity_{K-1}``
  (K >= 3: probability of each non-control arm): the assignment probabilities the routing policy
  actually used. Optional; when absent the empirical arm shares are used.

Validated at construction: every violation raises ``ValueError``/``TypeError`` naming the field.
Arrays for the estimators come out through :meth:`ObservedExperimentData.aligned` in the
variant-major row order (all rows of the first variant, then the next, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from pytyche._validation import invalid, violated, wrong_type
from pytyche.contracts.arrays import AlignedVisitorArray

FeatureType = Literal["numeric", "categorical", "binary"]
_FEATURE_TYPES = ("numeric", "categorical", "binary")
CELL_COLUMN = "cell"


def propensity_columns(n_variants: int) -> tuple[str, ...]:
    """The reserved propensity column names at K = ``n_variants``."""
    if n_variants == 2:
        return ("propensity",)
    return tuple(f"propensity_{a}" for a in range(1, n_variants))


@dataclass(frozen=True)
class VisitorSchema:
    """Feature names and types of the visitors frames, and the outcome column's name.

    Parameters
    ----------
    feature_types
        Ordered mapping feature name -> ``"numeric"``, ``"categorical"`` or ``"binary"``.
    outcome
        Name of the outcome column (default ``"outcome"``).
    id_column
        Optional name of a visitor-id column (the caller's key). When set, every visitors frame
        must carry it, ids are unique across the data (across all rounds of a sequential
        experiment: an id names one visit), and every per-visitor output
        (:meth:`~pytyche.contracts.AnalysisResult.cate_frame`) carries it so it joins back to the
        caller's rows. It is never a model feature.
    """

    feature_types: Mapping[str, FeatureType]
    outcome: str = "outcome"
    id_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.feature_types, Mapping):
            raise wrong_type("feature_types", "VisitorSchema", "a mapping of feature name to type", self.feature_types)
        if not isinstance(self.outcome, str) or not self.outcome:
            raise invalid("outcome", "VisitorSchema", "a non-empty str", self.outcome)
        if self.id_column is not None:
            if not isinstance(self.id_column, str) or not self.id_column:
                raise invalid("id_column", "VisitorSchema", "None or a non-empty str", self.id_column)
            if self.id_column in (CELL_COLUMN, self.outcome, "propensity") or self.id_column.startswith("propensity_"):
                raise violated(
                    "'id_column' parameter", "VisitorSchema",
                    f"not name a reserved column ('cell', 'propensity*', or the outcome {self.outcome!r}). Got {self.id_column!r} instead.",
                )
            if self.id_column in self.feature_types:
                raise violated("'id_column' parameter", "VisitorSchema", f"not also be a feature. Got {self.id_column!r}, which 'feature_types' lists.")
        reserved = {CELL_COLUMN, self.outcome, "propensity"}
        for name, kind in self.feature_types.items():
            if not isinstance(name, str) or not name:
                raise violated("'feature_types' parameter", "VisitorSchema", f"have non-empty str keys. Got {name!r} instead.")
            if name in reserved or name.startswith("propensity_"):
                raise violated(
                    "'feature_types' parameter", "VisitorSchema",
                    f"not name a reserved column ('cell', 'propensity*', or the outcome {self.outcome!r}). Got {name!r} instead.",
                )
            if kind not in _FEATURE_TYPES:
                raise violated(
                    "'feature_types' parameter", "VisitorSchema",
                    f"map each feature to one of 'numeric', 'categorical', 'binary'. Got {kind!r} for feature {name!r} instead.",
                )
        object.__setattr__(self, "feature_types", dict(self.feature_types))

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.feature_types)

    @classmethod
    def infer(cls, df: pd.DataFrame, outcome: str = "outcome", id_column: str | None = None) -> "VisitorSchema":
        """Infer a schema from a frame: numeric dtypes -> numeric (0/1 -> binary), others -> categorical.

        ``id_column`` (if given) is recorded as the visitor-id column, not a feature."""
        types: dict[str, FeatureType] = {}
        for col in df.columns:
            if col == outcome or col == CELL_COLUMN or col == "propensity" or str(col).startswith("propensity_") or col == id_column:
                continue
            s = df[col]
            if pd.api.types.is_bool_dtype(s):
                types[col] = "binary"
            elif pd.api.types.is_numeric_dtype(s):
                types[col] = "binary" if set(pd.unique(s.dropna())) <= {0, 1} else "numeric"
            else:
                types[col] = "categorical"
        return cls(types, outcome, id_column)


@dataclass(frozen=True)
class VariantData:
    """One treatment's visitors: a DataFrame with features, outcome and reserved columns."""

    name: str
    visitors: pd.DataFrame

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise invalid("name", "VariantData", "a non-empty str", self.name)
        if not isinstance(self.visitors, pd.DataFrame):
            raise wrong_type("visitors", "VariantData", "a pandas DataFrame", self.visitors)

    @property
    def n(self) -> int:
        return len(self.visitors)


@dataclass(frozen=True)
class ObservedExperimentData:
    """Observed data of one experiment: the system's data contract.

    Parameters
    ----------
    experiment_id
        Identifies the experiment; constant across the rounds of a sequential experiment.
    metric
        Name of the outcome metric, e.g. ``"revenue_per_visitor"`` or ``"conversion_rate"``.
        Calibration artifacts are matched on it.
    variants
        One :class:`VariantData` per treatment, control first. At least two, unique names.
    schema
        Feature types and the outcome column's name.
    round_idx
        Round of a sequential experiment this data came from (``None`` for single-shot data).

    Raises
    ------
    ValueError, TypeError
        Naming the field: empty id or metric, fewer than two variants, duplicate names, a frame
        missing a schema feature or the outcome, a non-numeric or non-finite outcome, missing
        feature values, a variant with no visitors, propensity columns not matching K or outside
        (0, 1), or a ``cell`` column with missing ids.
    """

    experiment_id: str
    metric: str
    variants: tuple[VariantData, ...]
    schema: VisitorSchema
    round_idx: int | None = None

    def __post_init__(self) -> None:
        where = "ObservedExperimentData"
        if not isinstance(self.experiment_id, str) or not self.experiment_id.strip():
            raise invalid("experiment_id", where, "a non-empty str", self.experiment_id)
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise invalid("metric", where, "a non-empty str", self.metric)
        if not isinstance(self.schema, VisitorSchema):
            raise wrong_type("schema", where, "a VisitorSchema", self.schema)
        if isinstance(self.variants, (str, bytes, Mapping)) or not isinstance(self.variants, Sequence):
            raise wrong_type("variants", where, "a sequence of VariantData, control first", self.variants)
        variants = tuple(self.variants)
        object.__setattr__(self, "variants", variants)
        if len(variants) < 2:
            raise violated("'variants' parameter", where, f"hold at least 2 variants (control first). Got {len(variants)} instead.")
        for v in variants:
            if not isinstance(v, VariantData):
                raise violated("'variants' parameter", where, f"hold VariantData instances. Got {type(v).__name__} instead.", exc=TypeError)
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise violated("'variants' parameter", where, f"have unique names. Got {names} instead.")
        if self.round_idx is not None and (isinstance(self.round_idx, bool) or not isinstance(self.round_idx, (int, np.integer)) or self.round_idx < 0):
            raise invalid("round_idx", where, "None or an int >= 0", self.round_idx)
        k = len(variants)
        prop_cols = propensity_columns(k)
        outcome = self.schema.outcome
        for v in variants:
            df = v.visitors
            label = f"variants[{v.name!r}].visitors"
            if len(df) == 0:
                raise violated(f"'{label}' field", where, "hold at least one visitor. Got an empty frame instead.")
            missing = [f for f in self.schema.features if f not in df.columns]
            if missing:
                raise violated(f"'{label}' field", where, f"have every schema feature as a column. Missing {missing}.")
            if outcome not in df.columns:
                raise violated(f"'{label}' field", where, f"have the outcome column {outcome!r}. Got columns {list(df.columns)} instead.")
            y = df[outcome]
            if not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
                raise violated(f"'{label}[{outcome!r}]' column", where, f"be numeric. Got dtype {y.dtype} instead.")
            if not np.all(np.isfinite(y.to_numpy(dtype=float))):
                raise violated(f"'{label}[{outcome!r}]' column", where, "be finite (no NaN/inf). Got non-finite values.")
            for f, kind in self.schema.feature_types.items():
                col = df[f]
                if col.isna().any():
                    raise violated(f"'{label}[{f!r}]' column", where, "have no missing values.")
                if kind in ("numeric", "binary") and not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                    raise violated(f"'{label}[{f!r}]' column", where, f"be numeric (schema says {kind!r}). Got dtype {col.dtype} instead.")
                if kind == "binary" and not set(pd.unique(col.astype(float))) <= {0.0, 1.0}:
                    raise violated(f"'{label}[{f!r}]' column", where, "hold only 0/1 (schema says 'binary').")
            id_col = self.schema.id_column
            if id_col is not None:
                if id_col not in df.columns:
                    raise violated(f"'{label}' field", where, f"have the visitor-id column {id_col!r} (schema.id_column). Got columns {list(df.columns)} instead.")
                if df[id_col].isna().any():
                    raise violated(f"'{label}[{id_col!r}]' column", where, "have an id for every visitor.")
            if CELL_COLUMN in df.columns and df[CELL_COLUMN].isna().any():
                raise violated(f"'{label}[{CELL_COLUMN!r}]' column", where, "have a cell id for every visitor.")
            present = [c for c in df.columns if c == "propensity" or str(c).startswith("propensity_")]
            if present:
                if sorted(present) != sorted(prop_cols):
                    raise violated(f"'{label}' field", where, f"carry the propensity columns {list(prop_cols)} at K={k}. Got {present} instead.")
                p = df[list(prop_cols)].to_numpy(dtype=float)
                if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1) or np.any(p.sum(axis=1) > 1 + 1e-9):
                    raise violated(f"'{label}' propensity columns", where, "be probabilities in [0, 1] whose sum over non-control arms is at most 1.")
        if self.schema.id_column is not None:
            ids = pd.concat([v.visitors[self.schema.id_column] for v in variants], ignore_index=True)
            dup = ids[ids.duplicated()]
            if len(dup):
                raise violated(
                    f"'{self.schema.id_column}' id column", where,
                    "hold unique visitor ids (across variants and, in a sequential experiment, across rounds: an id names one visit). "
                    f"Got {len(dup)} repeated, e.g. {dup.iloc[0]!r}.",
                )
        has = [all(c in v.visitors.columns for c in prop_cols) for v in variants]
        if any(has) and not all(has):
            raise violated("'variants' parameter", where, "carry propensity columns in every variant or in none.")

    # ---- views -----------------------------------------------------------------------------
    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def n_variants(self) -> int:
        return len(self.variants)

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def n_visitors(self) -> int:
        return sum(v.n for v in self.variants)

    @property
    def has_cells(self) -> bool:
        return all(CELL_COLUMN in v.visitors.columns for v in self.variants)

    @property
    def has_propensity(self) -> bool:
        cols = propensity_columns(self.n_variants)
        return all(all(c in v.visitors.columns for c in cols) for v in self.variants)

    def variant(self, name: str) -> VariantData:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValueError(f"Unknown variant {name!r}: this experiment has {list(self.variant_names)}.")

    def visitors(self) -> pd.DataFrame:
        """All visitors in variant-major order, with a ``variant`` column (a new frame)."""
        frames = [v.visitors.assign(variant=v.name) for v in self.variants]
        return pd.concat(frames, ignore_index=True)

    def features_frame(self) -> pd.DataFrame:
        """Schema features of all visitors in variant-major order (a new frame)."""
        feats = list(self.schema.features)
        return pd.concat([v.visitors[feats] for v in self.variants], ignore_index=True)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Row offsets of each variant in the variant-major order (length K + 1)."""
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum([v.n for v in self.variants])]))

    def aligned(self, values: np.ndarray) -> AlignedVisitorArray:
        """Wrap a per-visitor array (first axis n, variant-major) with this data's alignment."""
        return AlignedVisitorArray(np.asarray(values), self.variant_names, self.offsets)

    @cached_property
    def arm(self) -> np.ndarray:
        """Integer arm index per visitor (0 = control), variant-major."""
        return np.repeat(np.arange(self.n_variants, dtype=np.int32), [v.n for v in self.variants])

    @cached_property
    def outcome(self) -> np.ndarray:
        """Outcome per visitor as float64, variant-major."""
        y = np.concatenate([v.visitors[self.schema.outcome].to_numpy(dtype=np.float64) for v in self.variants])
        y.setflags(write=False)
        return y

    def propensity(self) -> np.ndarray:
        """``(n, K-1)`` assignment probabilities of each non-control arm.

        From the reserved propensity columns when present; otherwise the empirical arm shares
        (a complete randomisation reading)."""
        k = self.n_variants
        if self.has_propensity:
            cols = list(propensity_columns(k))
            return np.concatenate([v.visitors[cols].to_numpy(dtype=np.float64) for v in self.variants])
        shares = np.array([v.n for v in self.variants[1:]], dtype=np.float64) / self.n_visitors
        return np.tile(shares, (self.n_visitors, 1))

    def visitor_ids(self) -> np.ndarray | None:
        """The caller's visitor id per visitor (variant-major), or ``None`` without ``schema.id_column``."""
        col = self.schema.id_column
        if col is None:
            return None
        return np.concatenate([v.visitors[col].to_numpy() for v in self.variants])

    def cells(self) -> np.ndarray:
        """Cell id per visitor (variant-major), object array; raises when the column is absent."""
        if not self.has_cells:
            raise ValueError("This ObservedExperimentData has no reserved 'cell' column in every variant.")
        return np.concatenate([v.visitors[CELL_COLUMN].to_numpy(dtype=object) for v in self.variants])

    def feature_matrix(self, categories: Mapping[str, Sequence] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
        """Numeric design matrix ``(n, p)`` of the schema features, variant-major.

        Numeric and binary features pass through; categorical features are integer-coded in the
        order of ``categories[f]`` (default: sorted unique values), which keeps tree splits on
        codes readable back into category sets.
        """
        frame = self.features_frame()
        cols, names = [], []
        for f, kind in self.schema.feature_types.items():
            if kind == "categorical":
                cats = list(categories[f]) if categories and f in categories else sorted(pd.unique(frame[f]).tolist(), key=str)
                codes = pd.Categorical(frame[f], categories=cats).codes.astype(np.float64)
                cols.append(codes)
            else:
                cols.append(frame[f].to_numpy(dtype=np.float64))
            names.append(f)
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0)), tuple(names)

    def categories(self) -> dict[str, list]:
        """Sorted category values of each categorical feature."""
        frame = self.features_frame()
        return {
            f: sorted(pd.unique(frame[f]).tolist(), key=str)
            for f, kind in self.schema.feature_types.items()
            if kind == "categorical"
        }


def make_observed(
    frame: pd.DataFrame,
    *,
    variant_column: str = "variant",
    variants: Sequence[str],
    experiment_id: str,
    metric: str,
    outcome: str = "outcome",
    schema: VisitorSchema | None = None,
    round_idx: int | None = None,
    id_column: str | None = None,
) -> ObservedExperimentData:
    """Build :class:`ObservedExperimentData` from one long frame with a variant column.

    ``variants`` gives the order (control first); rows whose variant is not listed raise.
    ``id_column`` names the caller's visitor-id column (recorded as ``schema.id_column``) so
    per-visitor outputs join back to the caller's rows; to key on the frame's index, pass
    ``frame.reset_index()`` and the index's name. Rows are regrouped variant-major, so join on the
    id, never on position.
    """
    if variant_column not in frame.columns:
        raise ValueError(f"The 'frame' parameter of make_observed must have the variant column {variant_column!r}.")
    unknown = sorted(set(frame[variant_column].astype(str)) - set(variants))
    if unknown:
        raise ValueError(f"The 'frame' parameter of make_observed holds variants {unknown} not listed in 'variants' {list(variants)}.")
    body = frame.drop(columns=[variant_column])
    if schema is None:
        schema = VisitorSchema.infer(body, outcome, id_column)
    elif id_column is not None and schema.id_column != id_column:
        schema = VisitorSchema(schema.feature_types, schema.outcome, id_column)
    parts = tuple(
        VariantData(name, body[frame[variant_column].astype(str).to_numpy() == name].reset_index(drop=True))
        for name in variants
    )
    return ObservedExperimentData(experiment_id, metric, parts, schema, round_idx)
