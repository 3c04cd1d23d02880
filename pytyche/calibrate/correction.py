"""``LayeredCalibrationCorrection``: the layered isotonic R(p) scale-family coverage correction.

A coverage sweep measures, for each quantity family (``cate``, ``gate``, ``ate``,
``conversion_effect``, ``severity_effect``) and each nominal level ``p``, the empirical coverage
``R(p)`` of the raw central posterior intervals. This module fits ``R`` per *layer* (family x
sample-size band) with isotonic regression and turns it into an interval correction.

Derivation of the width multiplier
----------------------------------
Write ``z(q) = Phi^{-1}((1 + q) / 2)`` for the half-width, in standard deviations, of a central
Gaussian interval of coverage ``q``. Assume the posterior has a location-scale (Gaussian) shape:
draws ``~ N(c, s^2)`` while the truth sits at ``c + t * e`` with ``e ~ N(0, 1)``. The raw nominal-``p``
interval ``c +/- z(p) s`` then covers with probability ``R(p) = 2 Phi(z(p) s / t) - 1``, that is

    z(R(p)) = z(p) / r,    r = t / s    (the true spread over the posterior spread).

So in "z space" the R(p) curve is a line through the origin whose slope ``1/r`` says how much too
narrow (``r > 1``) or too wide (``r < 1``) the posterior is. Real curves need not be straight, so
the fitted curve is kept non-parametric: the isotonic knots ``(p_j, R_j)`` are mapped to
``(a_j, b_j) = (z(p_j), z(R_j))`` and joined piecewise-linearly, anchored at ``(0, 0)`` (a zero-width
interval covers nothing) and extended past the last knot along the ray through it (constant
``r``: the Gaussian model's extrapolation). Both ends are thus consistent with the Gaussian model,
which the map reproduces exactly when the data follow it.

To make a requested level ``q`` honest we need the nominal level ``q'`` whose empirical coverage is
``q``: ``R(q') = q``, i.e. ``z(q') = g^{-1}(z(q))`` with ``g`` the z-space curve. The raw interval at
nominal ``q'`` has half-width ``z(q') s``; the raw interval at ``q`` has ``z(q) s``. Hence

    w(q) = z(q') / z(q) = g^{-1}(z(q)) / z(q),

and the corrected interval is ``median +/- w(q) * (raw half-widths at level q)``, lower and upper
half-widths scaled separately so skew is kept. Scaling the level-``q`` interval (rather than
reading raw quantiles at ``q'``) works for any ``q'`` (also ``q' > 1 - 1/S``, beyond the draws'
reach) and for every family and interval the posterior computes. Under the Gaussian
``r``-model ``w = r`` for every level; the identity curve gives ``w = 1``.

Forms
-----
The curve above is *isotonic*: fitted per nominal level from the coverage indicators. For the
families with few targets per dataset (``ate``, ``gate``) :meth:`LayeredCalibrationCorrection.fit`
uses the *scale* form instead when the records carry ``z_sq_mean``
(:mod:`pytyche.calibrate.scale_form`, :data:`DEFAULT_FORMS`): one ``r = sqrt(mean z^2)`` per
layer, every level at once, the straight line ``z(R(p)) = z(p) / r`` (multiplier ``r`` at every
level). It needs about 245 datasets for +-3 pp at 90% where indicators need 385, and 430 at 80%
where indicators need 680 (80% binds the derived minimum). The forms used
are recorded in ``provenance["forms"]``; a scale curve stores its ``r`` (``LayerCurve.scale``).

Layers and fallbacks
--------------------
A layer is ``(family, band)`` with bands cut at ``band_edges`` (default ``[0, 1k), [1k, 2k),
[2k, 5k), [5k, 10k), [10k, 20k), [20k, 50k), [50k, 100k), [100k, 200k), [200k, 500k),
[500k, 1M), [1M, inf)`` visitors). A layer is used when it holds at least ``min_units``
distinct (template, task, replication, round) units: the bands where the sweep *has data*.

How many units a curve needs follows from the tolerance it must meet
(:data:`FAMILY_TOLERANCE`: +-2 pp for per-visitor families, +-3 pp for ATE and GATE, at 95%):
``fit`` derives each family's minimum from the fit records' own spread,
``ceil((1.96 * s / tol)^2)`` with ``s`` the across-unit standard deviation of the coverage at
the 80% and 90% levels (the larger), and records it in ``min_units_by_family``. One coverage
indicator per unit (ATE, GATE at 90%: ``s = 0.3``) needs about 385 units; per-visitor CATE
coverage with ``s = 0.13`` about 160. An explicit ``min_units`` (an int) fixes one minimum for
every family instead, as artifacts fitted before this rule did.

Beyond its data (a band whose layer is missing or sparse) the artifact says what it does, in
``beyond_data``:

- ``"nearest"`` (the default of :meth:`LayeredCalibrationCorrection.fit`): the family's used
  layer of the nearest band (by band index; the lower band on a tie), because coverage drifts
  with the sample size (raw coverage falls as n grows), so the nearest band is the better guess;
- ``"pooled"``: the family's curve pooled over all bands (the behaviour of format-1 artifacts).

Either way, when no curve of the family has enough units the identity (no correction) is used,
and every interval computed beyond the data emits :class:`CalibrationExtrapolationWarning`.

Regime
------
An artifact applies to posteriors of one metric, K and pooling, fitted with the MCMC settings that
shape interval width: ``mcmc`` holds ``num_trees_mu``, ``num_trees_tau``, ``num_draws`` and
``num_chains`` (checked by :meth:`pytyche.calibrate.Calibration.applies_to`) and ``num_burnin``
(recorded, not checked). Artifacts of format 1 (``"pytyche.calibration/1"``) predate these fields:
they load as *legacy* artifacts whose MCMC settings are unknown and unchecked, with
:class:`LegacyCalibrationWarning`.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from pytyche._files import atomic_write_text
from pytyche._validation import check_choice, check_float, check_int, check_str, invalid, wrong_type
from pytyche.contracts.enums import MetricFamily
from pytyche.calibrate.scale_form import fit_scale, scale_coverage, scale_min_units
from pytyche.contracts.truth import OPTIONAL_RECORD_FIELDS, QUANTITY_FAMILIES, CalibrationRecord

__all__ = [
    "BEYOND_DATA",
    "CHECKED_MCMC_FIELDS",
    "CalibrationExtrapolationWarning",
    "CalibrationWarning",
    "DEFAULT_BAND_EDGES",
    "LegacyCalibrationWarning",
    "MCMC_FIELDS",
    "DEFAULT_LEVELS",
    "DEFAULT_MIN_UNITS",
    "FAMILY_TOLERANCE",
    "CURVE_FORMS",
    "DEFAULT_FORMS",
    "derived_min_units",
    "FORMAT",
    "LayerCurve",
    "LayeredCalibrationCorrection",
    "raw_interval",
    "records_frame",
]

#: nominal levels measured by default in coverage sweeps
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: interior cut points of the sample-size bands: [0, 1k), [1k, 2k), [2k, 5k), [5k, 10k), ...,
#: [500k, 1M), [1M, inf)
DEFAULT_BAND_EDGES: tuple[float, ...] = (
    1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0, 100000.0, 200000.0, 500000.0, 1000000.0,
)
#: distinct (template, task, replication, round) units a layer needs before it is used, when
#: ``fit`` is given no tolerance-derived minimum (artifacts fitted before the derived one)
DEFAULT_MIN_UNITS = 10
#: the half-width (95%) a family's coverage curve must meet: the per-visitor targets +-2 pp,
#: the ATE and GATE targets +-3 pp
FAMILY_TOLERANCE: dict[str, float] = {"cate": 0.02, "conversion_effect": 0.02, "severity_effect": 0.02, "ate": 0.03, "gate": 0.03}
#: the levels whose across-unit spread sets the derived minimum
TOLERANCE_LEVELS = (0.8, 0.9)
#: the forms a family's curves can take (``LayeredCalibrationCorrection.fit``'s ``forms``)
CURVE_FORMS = ("isotonic", "scale")
#: the default form per family when the records carry ``z_sq_mean``: the scale form for the
#: families with few targets per dataset (every level at once, fewer units for the same
#: precision); isotonic for the per-visitor families, whose thousands of targets per dataset
#: make the per-level curve precise and whose shape need not be a straight line in z space
DEFAULT_FORMS: dict[str, str] = {"ate": "scale", "gate": "scale"}
#: artifact format tag written to the JSON
FORMAT = "pytyche.calibration/2"
#: older format tags still read (as legacy artifacts: MCMC settings unknown)
LEGACY_FORMATS = ("pytyche.calibration/1",)
#: the GPUBCFConfig fields an artifact records in ``mcmc``
MCMC_FIELDS = ("num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains")
#: the ones that shape interval width and are checked against a posterior's config
CHECKED_MCMC_FIELDS = ("num_trees_mu", "num_trees_tau", "num_draws", "num_chains")
#: what an artifact does at sample sizes beyond its data (see the module docstring)
BEYOND_DATA = ("nearest", "pooled")
#: outcome families an artifact may declare it serves: the values of pytyche.contracts.MetricFamily
METRIC_FAMILIES = tuple(f.value for f in MetricFamily)


class CalibrationWarning(UserWarning):
    """Base class of the warnings a calibration artifact emits about its own validity."""


class LegacyCalibrationWarning(CalibrationWarning):
    """An artifact records no MCMC settings (format 1): they cannot be checked against a posterior."""


class CalibrationExtrapolationWarning(CalibrationWarning):
    """An interval was corrected at a sample size outside the bands the artifact has data for."""

_POOLINGS = ("joint", "independent", "none")
_CLIP = 1e-6  # coverages are clipped to [_CLIP, 1 - _CLIP] before the probit-type transform
_RECORD_FIELDS = tuple(f.name for f in fields(CalibrationRecord))
#: record fields that older records (and shards) may lack
_OPTIONAL_FIELDS = ("template", "task_id", *(f.name for f in fields(CalibrationRecord) if f.name in OPTIONAL_RECORD_FIELDS))


def _z(level: np.ndarray | float) -> np.ndarray:
    """Half-width in SDs of a central Gaussian interval of coverage ``level``."""
    return ndtri((1.0 + np.asarray(level, dtype=np.float64)) / 2.0)


def _cov(z: np.ndarray | float) -> np.ndarray:
    """Coverage of a central Gaussian interval of half-width ``z`` SDs (inverse of ``_z``)."""
    return 2.0 * ndtr(np.asarray(z, dtype=np.float64)) - 1.0


def _check_level(level: Any, where: str) -> float:
    return check_float(level, "level", where, low=0.0, high=1.0, low_open=True, high_open=True)


def _check_family(family: Any, where: str) -> str:
    return check_choice(family, "family", where, QUANTITY_FAMILIES)


def _check_sample_size(n: Any, where: str) -> int:
    return check_int(n, "sample_size", where, low=0)


def raw_interval(draws: np.ndarray, level: float, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Central quantile interval of ``draws`` along ``axis``: the uncalibrated interval.

    Parameters
    ----------
    draws
        Posterior draws; ``axis`` indexes the draws.
    level
        Nominal coverage in (0, 1).
    axis
        The draws axis (removed from the outputs).

    Returns
    -------
    lo, hi
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    """
    where = "raw_interval"
    level = _check_level(level, where)
    d = np.asarray(draws)
    if d.ndim == 0 or d.shape[axis] < 1:
        raise invalid("draws", where, "an array with at least one draw along 'axis'", d.shape)
    q = np.quantile(d, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=axis)
    return q[0], q[1]


def scaled_interval(draws: np.ndarray, level: float, w: float, axis: int = -1, where: str = "scaled_interval") -> tuple[np.ndarray, np.ndarray]:
    """``median -/+ w * (median - q_lo, q_hi - median)``: the raw central interval at ``level``
    with its half-widths scaled by ``w`` around the median (the one form every corrected interval
    takes; ``w = 1`` returns the raw quantiles exactly, as :func:`raw_interval` does)."""
    d = np.asarray(draws)
    if d.ndim == 0 or d.shape[axis] < 1:
        raise invalid("draws", where, "an array with at least one draw along 'axis'", d.shape)
    q = np.quantile(d, [(1.0 - level) / 2.0, 0.5, (1.0 + level) / 2.0], axis=axis)
    lo, med, hi = q[0], q[1], q[2]
    if w == 1.0:  # raw: the quantiles themselves, not median -/+ 1 * (median - quantile)
        return lo, hi
    return med - w * (med - lo), med + w * (hi - med)


@dataclass(frozen=True)
class LayerCurve:
    """One fitted R(p) curve: nominal levels and their (isotonic) empirical coverage.

    Attributes
    ----------
    family
        Quantity family the records measured.
    band
        Index of the sample-size band, or ``None`` for the family's curve pooled over bands.
    nominal
        Distinct nominal levels of the records, increasing.
    empirical
        Isotonic (non-decreasing) fit of the coverage at each nominal level, weighted by
        ``n_targets``.
    raw
        The ``n_targets``-weighted mean coverage at each nominal level before the isotonic fit.
    weight
        Total ``n_targets`` behind each nominal level.
    n_records, n_units
        Records in the layer and distinct (template, task, replication, round) units among them.
    scale
        ``None`` for the isotonic form. For the scale form (:mod:`pytyche.calibrate.scale_form`)
        the fitted ``r``: ``empirical`` is then ``2 Phi(z(p) / r) - 1`` and the multiplier is ``r``
        at every level.
    """

    family: str
    band: int | None
    nominal: tuple[float, ...]
    empirical: tuple[float, ...]
    raw: tuple[float, ...]
    weight: tuple[float, ...]
    n_records: int
    n_units: int
    scale: float | None = None

    def __post_init__(self) -> None:
        where = "LayerCurve"
        _check_family(self.family, where)
        if self.band is not None:
            check_int(self.band, "band", where, low=0)
        arrays = {k: tuple(float(v) for v in getattr(self, k)) for k in ("nominal", "empirical", "raw", "weight")}
        n = len(arrays["nominal"])
        if n < 1 or any(len(a) != n for a in arrays.values()):
            raise invalid("nominal", where, "non-empty, with empirical/raw/weight of the same length", {k: len(a) for k, a in arrays.items()})
        nom = np.array(arrays["nominal"])
        emp = np.array(arrays["empirical"])
        if np.any(nom <= 0) or np.any(nom >= 1) or np.any(np.diff(nom) <= 0):
            raise invalid("nominal", where, "strictly increasing levels in (0, 1)", arrays["nominal"])
        if np.any(emp < 0) or np.any(emp > 1) or np.any(np.diff(emp) < 0):
            raise invalid("empirical", where, "non-decreasing coverages in [0, 1]", arrays["empirical"])
        for k, v in arrays.items():
            object.__setattr__(self, k, v)
        check_int(self.n_records, "n_records", where, low=1)
        check_int(self.n_units, "n_units", where, low=1)
        if self.scale is not None:
            if isinstance(self.scale, bool):
                raise wrong_type("scale", where, "None or a positive number", self.scale)
            object.__setattr__(self, "scale", check_float(self.scale, "scale", where, low=0.0, low_open=True))

    # z-space knots with flat runs merged so the map is strictly increasing (invertible)
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        a = _z(np.array(self.nominal))
        b = _z(np.clip(np.array(self.empirical), _CLIP, 1.0 - _CLIP))
        ub, inv = np.unique(b, return_inverse=True)
        ua = np.array([a[inv == i].mean() for i in range(len(ub))])
        return ua, ub

    def coverage_of(self, nominal: np.ndarray | float) -> np.ndarray:
        """Forward map ``R``: empirical coverage of a raw interval at ``nominal``."""
        a, b = self._knots()
        x = _z(nominal)
        inside = np.interp(x, np.r_[0.0, a], np.r_[0.0, b])
        y = np.where(x <= a[-1], inside, x * (b[-1] / a[-1]))
        return _cov(y)

    def _inverse_z(self, level: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``(z(R^{-1}(level)), z(level))``: the inverse map in z space, past the last knot along its ray."""
        a, b = self._knots()
        y = _z(level)
        inside = np.interp(y, np.r_[0.0, b], np.r_[0.0, a])
        return np.where(y <= b[-1], inside, y * (a[-1] / b[-1])), y

    def nominal_for(self, level: np.ndarray | float) -> np.ndarray:
        """Inverse map ``R^{-1}``: nominal level whose raw interval covers ``level``."""
        x, _ = self._inverse_z(level)
        return _cov(x)

    def multiplier(self, level: np.ndarray | float) -> np.ndarray:
        """Half-width multiplier ``w = z(R^{-1}(level)) / z(level)`` (see the module docstring)."""
        x, y = self._inverse_z(level)
        return x / y

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "band": self.band,
            "nominal": list(self.nominal),
            "empirical": list(self.empirical),
            "raw": list(self.raw),
            "weight": list(self.weight),
            "n_records": self.n_records,
            "n_units": self.n_units,
            **({} if self.scale is None else {"scale": self.scale}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LayerCurve":
        return cls(
            family=d["family"],
            band=None if d["band"] is None else int(d["band"]),
            nominal=tuple(d["nominal"]),
            empirical=tuple(d["empirical"]),
            raw=tuple(d["raw"]),
            weight=tuple(d["weight"]),
            n_records=int(d["n_records"]),
            n_units=int(d["n_units"]),
            scale=None if d.get("scale") is None else float(d["scale"]),
        )


def records_frame(records: Any) -> dict[str, np.ndarray]:
    """Columns of ``records`` (CalibrationRecords, dicts, or a DataFrame) as numpy arrays."""
    where = "LayeredCalibrationCorrection.fit"
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(records, pd.DataFrame):
        missing = [c for c in _RECORD_FIELDS if c not in records.columns and c not in _OPTIONAL_FIELDS]
        if missing:
            raise invalid("records", where, f"a frame with the CalibrationRecord columns (missing {missing})", list(records.columns))
        cols = {c: records[c].to_numpy() for c in _RECORD_FIELDS if c in records.columns}
        n = len(records)
    else:
        if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
            raise wrong_type("records", where, "a sequence of CalibrationRecord (or dicts) or a DataFrame", records)
        rows = [r.to_dict() if isinstance(r, CalibrationRecord) else r for r in records]
        for r in rows:
            if not isinstance(r, Mapping):
                raise wrong_type("records", where, "a sequence of CalibrationRecord (or dicts) or a DataFrame", r)
        n = len(rows)
        cols = {}
        for c in _RECORD_FIELDS:
            if c in ("converters", "pit_counts"):  # a list per record; not needed to fit
                continue
            if all(c in r for r in rows):
                cols[c] = np.array([r[c] for r in rows], dtype=object)
            elif c not in _OPTIONAL_FIELDS:
                raise invalid("records", where, f"records carrying every CalibrationRecord field (missing {c!r})", f"{n} records")
    cols.setdefault("template", np.full(n, "", dtype=object))
    cols.setdefault("task_id", np.full(n, "", dtype=object))
    out = {
        "family": np.asarray(cols["family"]).astype(str),
        "nominal": np.asarray(cols["nominal"], dtype=np.float64),
        "coverage": np.asarray(cols["coverage"], dtype=np.float64),
        "n_targets": np.asarray(cols["n_targets"], dtype=np.float64),
        "sample_size": np.asarray(cols["sample_size"], dtype=np.float64),
        "metric": np.asarray(cols["metric"]).astype(str),
        "n_treatments": np.asarray(cols["n_treatments"], dtype=np.int64),
        "pooling": np.asarray(cols["pooling"]).astype(str),
        "replication": np.asarray(cols["replication"]).astype(str),
        "round_idx": np.asarray(cols["round_idx"]).astype(str),
        "template": np.asarray(cols["template"]).astype(str),
        "task_id": np.asarray(cols["task_id"]).astype(str),
        "calibrated": _bools(cols.get("calibrated"), n),
    }
    for name in MCMC_FIELDS:
        out[name] = _ints(cols.get(name), n)
    out["model_version"] = _ints(cols.get("model_version"), n)
    # every level at once (the scale form): each record's mean squared standardized error
    out["z_sq_mean"] = _floats(cols.get("z_sq_mean"), n)
    if n:
        bad = ~np.isin(out["family"], QUANTITY_FAMILIES)
        if bad.any():
            raise invalid("records", where, f"records whose family is one of {QUANTITY_FAMILIES}", sorted(set(out["family"][bad])))
        if np.any((out["nominal"] <= 0) | (out["nominal"] >= 1)):
            raise invalid("records", where, "records with nominal levels in (0, 1)", "a nominal outside (0, 1)", show=False)
        if np.any((out["coverage"] < 0) | (out["coverage"] > 1)) or not np.all(np.isfinite(out["coverage"])):
            raise invalid("records", where, "records with coverage in [0, 1]", "a coverage outside [0, 1]", show=False)
        if np.any(out["n_targets"] < 1):
            raise invalid("records", where, "records with n_targets >= 1", "a record with n_targets < 1", show=False)
    return out


def _records_model_version(versions: np.ndarray, where: str) -> int | None:
    """The one model version of a regime's records, or ``None`` when none carries one."""
    known = versions[~np.isnan(versions)]
    if known.size == 0:
        return None
    found = sorted({int(v) for v in known})
    if len(found) > 1 or known.size < versions.size:
        got = ", ".join(str(v) for v in found) + (" and records with none" if known.size < versions.size else "")
        raise invalid("records", where, "records of one model (one model_version): an artifact describes one model", f"versions {got}", show=False)
    return found[0]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _floats(values: Any, n: int) -> np.ndarray:
    """Optional float column as float64 with NaN for missing (None/NaN) entries."""
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if _missing(v) else float(v) for v in values], dtype=np.float64)


def _ints(values: Any, n: int) -> np.ndarray:
    """Optional int column as float64 with NaN for missing (None/NaN) entries."""
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values], dtype=np.float64)


def _bools(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=bool)
    return np.array([bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else False for v in values], dtype=bool)


def mcmc_of(config: Any) -> dict[str, int]:
    """The :data:`MCMC_FIELDS` of a ``GPUBCFConfig`` (or any object / mapping carrying them)."""
    if isinstance(config, Mapping):
        return {k: int(config[k]) for k in MCMC_FIELDS if config.get(k) is not None}
    return {k: int(getattr(config, k)) for k in MCMC_FIELDS if getattr(config, k, None) is not None}


def _check_mcmc(value: Any, name: str, where: str) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        value = mcmc_of(value)
        if not value:
            raise wrong_type(name, where, "None, a mapping of MCMC settings or a GPUBCFConfig", value)
    unknown = set(value) - set(MCMC_FIELDS)
    missing = [k for k in CHECKED_MCMC_FIELDS if k not in value]
    if unknown or missing:
        raise invalid(name, where, f"a mapping with {', '.join(CHECKED_MCMC_FIELDS)} (and optionally num_burnin) only", dict(value))
    return {k: check_int(value[k], f"{name}.{k}", where, low=1) for k in MCMC_FIELDS if k in value}


def _fit_curve(family: str, band: int | None, cols: dict[str, np.ndarray], mask: np.ndarray) -> LayerCurve:
    from sklearn.isotonic import IsotonicRegression

    nominal = cols["nominal"][mask]
    coverage = cols["coverage"][mask]
    weight = cols["n_targets"][mask]
    levels = np.unique(nominal)
    tot = np.array([weight[nominal == v].sum() for v in levels])
    mean = np.array([np.sum(weight[nominal == v] * coverage[nominal == v]) for v in levels]) / tot
    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    # Fitting on the per-level weighted means with their total weights gives the same solution as
    # fitting every record weighted by n_targets (the isotonic loss separates by distinct x).
    fitted = iso.fit(levels, mean, sample_weight=tot).predict(levels)
    fitted = np.maximum.accumulate(np.clip(fitted, 0.0, 1.0))
    units = set(_unit_keys(cols, mask))
    return LayerCurve(
        family=family,
        band=band,
        nominal=tuple(float(v) for v in levels),
        empirical=tuple(float(v) for v in fitted),
        raw=tuple(float(v) for v in mean),
        weight=tuple(float(v) for v in tot),
        n_records=int(mask.sum()),
        n_units=len(units),
    )


def _unit_keys(cols: dict[str, np.ndarray], mask: np.ndarray) -> list[tuple[str, str, str, str]]:
    return list(zip(cols["template"][mask], cols["task_id"][mask], cols["replication"][mask], cols["round_idx"][mask]))


def _per_unit(cols: dict[str, np.ndarray], mask: np.ndarray, name: str) -> dict[tuple[str, str, str, str], Any]:
    """One value of ``name`` per unit: a unit's records of one family repeat it at every level."""
    out: dict[tuple[str, str, str, str], Any] = {}
    for key, value in zip(_unit_keys(cols, mask), cols[name][mask]):
        out.setdefault(key, value)
    return out


def has_z_sq(cols: dict[str, np.ndarray], mask: np.ndarray) -> bool:
    """Whether every record under ``mask`` carries ``z_sq_mean`` (the scale form can be fitted)."""
    return bool(mask.any()) and bool(np.all(np.isfinite(cols["z_sq_mean"][mask])))


def _fit_scale_curve(family: str, band: int | None, cols: dict[str, np.ndarray], mask: np.ndarray) -> LayerCurve:
    """The scale form: ``r`` from the units' mean squared standardized errors (each weighted by
    its targets), and the curve it implies at the recorded levels."""
    iso = _fit_curve(family, band, cols, mask)  # raw means, weights and unit counts, as recorded
    per_level = collections.Counter(zip(_unit_keys(cols, mask), cols["nominal"][mask]))
    if max(per_level.values()) > 1:
        (key, level), _ = per_level.most_common(1)[0]
        raise invalid(
            "records", "LayeredCalibrationCorrection.fit",
            "one record per (template, task_id, replication, round_idx) unit, family and level (the scale form reads one z_sq_mean per unit)",
            f"several {family} records at level {level} for the unit {key}", show=False,
        )
    z_sq = _per_unit(cols, mask, "z_sq_mean")
    n_targets = _per_unit(cols, mask, "n_targets")
    r = fit_scale(list(z_sq.values()), [n_targets[k] for k in z_sq])
    empirical = np.maximum.accumulate(np.clip(scale_coverage(iso.nominal, r), 0.0, 1.0))
    return LayerCurve(family, band, iso.nominal, tuple(float(v) for v in empirical), iso.raw, iso.weight, iso.n_records, iso.n_units, scale=r)


def derived_min_units(family: str, cols: dict[str, np.ndarray], confidence_z: float = 1.959963984540054, *, form: str = "isotonic") -> int:
    """Units a ``family`` curve needs to meet :data:`FAMILY_TOLERANCE` at 95%.

    Isotonic form: ``ceil((z * s / tol)^2)``, ``s`` the across-unit sd of the coverage at
    :data:`TOLERANCE_LEVELS` (the larger; the binomial bound ``sqrt(q (1 - q))`` when fewer than
    two units measure a level). Scale form: from the units' mean squared standardized errors
    (:func:`~pytyche.calibrate.scale_form.scale_min_units`).
    """
    fam = cols["family"] == family
    if form == "scale":
        z_sq = np.array(list(_per_unit(cols, fam, "z_sq_mean").values()), dtype=np.float64)
        return scale_min_units(z_sq, FAMILY_TOLERANCE[family], TOLERANCE_LEVELS, confidence_z)
    spreads = []
    for q in TOLERANCE_LEVELS:
        m = fam & np.isclose(cols["nominal"], q)
        if not m.any():
            continue
        keys = _unit_keys(cols, m)
        cov, w = cols["coverage"][m], cols["n_targets"][m]
        units: dict[Any, list[float]] = {}
        for k, c, wt in zip(keys, cov, w):
            units.setdefault(k, [0.0, 0.0])
            units[k][0] += c * wt
            units[k][1] += wt
        per_unit = np.array([a / b for a, b in units.values() if b > 0])
        spreads.append(float(per_unit.std(ddof=1)) if per_unit.size >= 2 else math.sqrt(q * (1 - q)))
    s = max(spreads) if spreads else math.sqrt(0.9 * 0.1)
    return max(2, math.ceil((confidence_z * s / FAMILY_TOLERANCE[family]) ** 2))


def _choose_forms(forms: Mapping[str, str] | None, cols: dict[str, np.ndarray], present: list[str], where: str) -> dict[str, str]:
    """The curve form of each present family: ``forms`` where it names the family (``"scale"``
    then requires ``z_sq_mean`` on every record of it), else :data:`DEFAULT_FORMS` where every
    record carries ``z_sq_mean``, else isotonic."""
    if forms is not None and not isinstance(forms, Mapping):
        raise wrong_type("forms", where, "None or a mapping family -> 'isotonic' / 'scale'", forms)
    asked = dict(forms or {})
    unknown = sorted(set(asked) - set(QUANTITY_FAMILIES))
    if unknown:
        raise invalid("forms", where, f"a mapping over the families {QUANTITY_FAMILIES}", unknown)
    for fam, form in asked.items():
        check_choice(form, f"forms[{fam!r}]", where, CURVE_FORMS)
    out = {}
    for fam in present:
        fmask = cols["family"] == fam
        if fam in asked:
            if asked[fam] == "scale" and not has_z_sq(cols, fmask):
                raise invalid(f"forms[{fam!r}]", where, "'isotonic' for a family whose records lack z_sq_mean (the scale form reads it)", asked[fam])
            out[fam] = asked[fam]
        else:
            form = DEFAULT_FORMS.get(fam, "isotonic")
            out[fam] = form if form == "isotonic" or has_z_sq(cols, fmask) else "isotonic"
    return out


def _jsonable(value: Any, name: str, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise invalid(name, where, "JSON-serialisable (str/number/bool/None, lists, str-keyed dicts)", f"{type(value).__name__} ({err})", show=False) from None


@dataclass(frozen=True)
class LayeredCalibrationCorrection:
    """Layered R(p) scale-family correction of posterior interval coverage.

    Build it with :meth:`fit` from a sweep's :class:`~pytyche.contracts.CalibrationRecord` rows,
    save it with :meth:`to_json`, load it with :meth:`from_json`. The derivation of the width
    multiplier, the layers and the fallbacks are described in the module docstring of
    :mod:`pytyche.calibrate.correction`.

    Attributes
    ----------
    metric, n_treatments, pooling
        Regime the records came from (outcome metric, K, hurdle pooling or ``"none"``).
    band_edges
        Interior cut points of the sample-size bands (increasing, positive); band ``i`` is
        ``[edges[i-1], edges[i])`` with ``edges[-1] = 0`` and ``edges[len] = inf``.
    min_units
        Distinct units a layer (or a pooled family curve) needs before it is used, for a family
        without an entry in ``min_units_by_family``.
    min_units_by_family
        Per family, the minimum derived from the tolerance its curve must meet (module
        docstring); ``None`` for artifacts fitted with one fixed ``min_units``.
    layers
        Fitted per-band curves (every layer with records, including sparse ones, kept for
        transparency; sparse ones are skipped at lookup).
    family_curves
        Per-family curves pooled over the bands (``band is None``).
    provenance
        JSON-serialisable provenance: sweep spec, code version/commit, record counts, date.
    mcmc
        The MCMC settings of the records' fits (:data:`MCMC_FIELDS`), part of the regime; ``None``
        when unknown (legacy artifacts): then they are not checked.
    beyond_data
        What serves a band without a used layer: ``"nearest"`` band's layer or the ``"pooled"``
        family curve (see the module docstring).
    metric_family
        The outcome family the artifact serves (``"binary"``, ``"continuous"`` or ``"hurdle"``,
        :class:`~pytyche.contracts.MetricFamily`). When set, the regime check compares the
        posterior's outcome family instead of the metric's name, so an artifact fitted on one
        continuous metric serves every continuous metric (an operator's ``order_value`` as
        well as the fit sweep's ``session_minutes``); ``None`` (older artifacts): the metric's
        name must match.
    model_version
        The :data:`~pytyche.bcf.fingerprint.MODEL_VERSION` of the fits behind the records (read
        from them); ``None`` for artifacts fitted from records that predate model versions.
    """

    metric: str
    n_treatments: int
    pooling: str
    band_edges: tuple[float, ...] = DEFAULT_BAND_EDGES
    min_units: int = DEFAULT_MIN_UNITS
    layers: tuple[LayerCurve, ...] = ()
    family_curves: tuple[LayerCurve, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)
    mcmc: Mapping[str, int] | None = field(default=None, hash=False)
    beyond_data: str = "nearest"
    metric_family: str | None = None
    min_units_by_family: Mapping[str, int] | None = field(default=None, hash=False)
    model_version: int | None = None

    def __post_init__(self) -> None:
        where = "LayeredCalibrationCorrection"
        check_str(self.metric, "metric", where)
        if self.metric_family is not None:
            object.__setattr__(self, "metric_family", check_choice(self.metric_family, "metric_family", where, METRIC_FAMILIES))
        check_int(self.n_treatments, "n_treatments", where, low=2)
        check_choice(self.pooling, "pooling", where, _POOLINGS)
        edges = tuple(float(e) for e in self.band_edges)
        if any(not math.isfinite(e) or e <= 0 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
            raise invalid("band_edges", where, "strictly increasing finite positive cut points", self.band_edges)
        object.__setattr__(self, "band_edges", edges)
        check_int(self.min_units, "min_units", where, low=1)
        if self.min_units_by_family is not None:
            if not isinstance(self.min_units_by_family, Mapping):
                raise wrong_type("min_units_by_family", where, "a mapping family -> int or None", self.min_units_by_family)
            object.__setattr__(self, "min_units_by_family", {
                _check_family(f, where): check_int(v, "min_units_by_family", where, low=1) for f, v in self.min_units_by_family.items()})
        for name in ("layers", "family_curves"):
            curves = tuple(getattr(self, name))
            for c in curves:
                if not isinstance(c, LayerCurve):
                    raise wrong_type(name, where, "a sequence of LayerCurve", c)
            object.__setattr__(self, name, curves)
        seen = set()
        for c in self.layers:
            if c.band is None or c.band > len(edges):
                raise invalid("layers", where, f"curves with a band index in 0..{len(edges)}", c.band)
            if (c.family, c.band) in seen:
                raise invalid("layers", where, "one curve per (family, band)", (c.family, c.band))
            seen.add((c.family, c.band))
        fams = [c.family for c in self.family_curves]
        if any(c.band is not None for c in self.family_curves) or len(set(fams)) != len(fams):
            raise invalid("family_curves", where, "one pooled curve (band None) per family", fams)
        if not isinstance(self.provenance, Mapping):
            raise wrong_type("provenance", where, "a mapping", self.provenance)
        object.__setattr__(self, "provenance", _jsonable(dict(self.provenance), "provenance", where))
        object.__setattr__(self, "mcmc", _check_mcmc(self.mcmc, "mcmc", where))
        check_choice(self.beyond_data, "beyond_data", where, BEYOND_DATA)

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        records: Any,
        metric: str,
        n_treatments: int,
        pooling: str,
        provenance: Mapping[str, Any] | None = None,
        *,
        band_edges: Sequence[float] = DEFAULT_BAND_EDGES,
        min_units: int | None = None,
        mcmc: Any = None,
        beyond_data: str = "nearest",
        metric_family: str | None = None,
        forms: Mapping[str, str] | None = None,
    ) -> "LayeredCalibrationCorrection":
        """Fit the per-layer R(p) curves from coverage records.

        Parameters
        ----------
        records
            :class:`~pytyche.contracts.CalibrationRecord` instances, dicts with their fields, or a
            DataFrame with those columns. Records of other regimes are ignored (and counted in
            the provenance).
        metric, n_treatments, pooling
            The regime to fit (``pooling`` is ``"joint"``/``"independent"`` for hurdle fits and
            ``"none"`` for binary and continuous ones).
        provenance
            Extra JSON-serialisable provenance (sweep spec, commit...). ``code_version``,
            ``fitted_at`` and ``record_counts`` are filled in unless given.
        band_edges
            Interior sample-size cut points of the bands.
        min_units
            Distinct (template, task, replication, round) units a layer needs to be used, the
            same for every family; ``None`` (default): each family's minimum derived from the
            tolerance its curve must meet and the records' own spread (module docstring).
        mcmc
            The MCMC settings of the regime (a mapping of :data:`MCMC_FIELDS` or a
            ``GPUBCFConfig``). ``None``: read from the records, which must then hold one setting
            (records without MCMC fields give an artifact whose MCMC settings are unknown).
            Given: records carrying other settings are left out.
        beyond_data
            ``"nearest"`` or ``"pooled"``: what serves bands without data (module docstring).
        metric_family
            ``"binary"``, ``"continuous"`` or ``"hurdle"``: the artifact then applies to every
            metric of that outcome family (the records are still those of ``metric``); ``None``:
            only to ``metric``.
        forms
            The curve form per family: ``"isotonic"`` (the R(p) isotonic fit per level) or
            ``"scale"`` (one scale per layer from the records' ``z_sq_mean``, every level at once:
            :mod:`pytyche.calibrate.scale_form`). Families it does not name (all of them when
            ``None``, the default) take :data:`DEFAULT_FORMS` where every record of the family
            carries ``z_sq_mean``, else isotonic. The forms used are
            recorded in ``provenance["forms"]``.

        Records of calibrated intervals (``calibrated=True``, from a validation sweep) never
        feed a correction; they are left out and counted in the provenance.

        Returns
        -------
        LayeredCalibrationCorrection

        Raises
        ------
        ValueError
            When no record matches the regime, the records mix MCMC settings and ``mcmc`` is
            not given, or a record is malformed.
        """
        where = "LayeredCalibrationCorrection.fit"
        metric = check_str(metric, "metric", where)
        n_treatments = check_int(n_treatments, "n_treatments", where, low=2)
        pooling = check_choice(pooling, "pooling", where, _POOLINGS)
        if min_units is not None:
            min_units = check_int(min_units, "min_units", where, low=1)
        if provenance is not None and not isinstance(provenance, Mapping):
            raise wrong_type("provenance", where, "a mapping or None", provenance)
        mcmc = _check_mcmc(mcmc, "mcmc", where)
        beyond_data = check_choice(beyond_data, "beyond_data", where, BEYOND_DATA)
        if metric_family is not None:
            metric_family = check_choice(metric_family, "metric_family", where, METRIC_FAMILIES)
        cols = records_frame(records)
        n_all = len(cols["family"])
        regime = (cols["metric"] == metric) & (cols["n_treatments"] == n_treatments) & (cols["pooling"] == pooling)
        n_calibrated = int((regime & cols["calibrated"]).sum())
        regime &= ~cols["calibrated"]
        known = ~np.isnan(np.column_stack([cols[k] for k in CHECKED_MCMC_FIELDS])).any(axis=1) if n_all else np.zeros(0, bool)
        settings = sorted({tuple(int(cols[k][i]) for k in CHECKED_MCMC_FIELDS) for i in np.flatnonzero(regime & known)})
        if mcmc is not None:
            want = tuple(mcmc[k] for k in CHECKED_MCMC_FIELDS)
            same = np.all(np.column_stack([cols[k] == v for k, v in zip(CHECKED_MCMC_FIELDS, want)]), axis=1) if n_all else known
            regime &= ~known | same
        elif settings:
            if len(settings) > 1:
                raise invalid(
                    "records", where,
                    f"records of one MCMC setting ({', '.join(CHECKED_MCMC_FIELDS)}) or an explicit 'mcmc' to pick one",
                    f"settings {settings}", show=False,
                )
            mcmc = dict(zip(CHECKED_MCMC_FIELDS, settings[0]))
            burn = cols["num_burnin"][regime & known]
            if burn.size and not np.isnan(burn).any() and len(set(burn.tolist())) == 1:
                mcmc["num_burnin"] = int(burn[0])
        if not regime.any():
            present = sorted({(m, int(k), p) for m, k, p in zip(cols["metric"], cols["n_treatments"], cols["pooling"])})
            raise invalid(
                "records", where,
                f"records of the regime (metric={metric!r}, n_treatments={n_treatments}, pooling={pooling!r})",
                f"{n_all} records of regimes {present}", show=False,
            )
        cols = {k: v[regime] for k, v in cols.items()}
        model_version = _records_model_version(cols["model_version"], where)
        present = [f for f in QUANTITY_FAMILIES if (cols["family"] == f).any()]
        used_forms = _choose_forms(forms, cols, present, where)
        probe = cls(metric, n_treatments, pooling, band_edges=tuple(band_edges))
        by_family = None if min_units is not None else {
            f: derived_min_units(f, cols, form=used_forms[f]) for f in present}
        bands = np.array([probe.band_index(int(n)) for n in cols["sample_size"]])
        layers, pooled, counts = [], [], {}
        for fam in present:
            fmask = cols["family"] == fam
            fit_one = _fit_scale_curve if used_forms[fam] == "scale" else _fit_curve
            counts[fam] = int(fmask.sum())
            pooled.append(fit_one(fam, None, cols, fmask))
            for b in sorted(set(bands[fmask].tolist())):
                layers.append(fit_one(fam, int(b), cols, fmask & (bands == b)))
        prov: dict[str, Any] = {
            "code_version": _code_version(),
            "fitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "record_counts": {
                "total": int(regime.sum()), "other_regimes": int(n_all - regime.sum() - n_calibrated),
                **({"calibrated_left_out": n_calibrated} if n_calibrated else {}), **counts,
            },
            "forms": used_forms,
        }
        prov.update(dict(provenance or {}))
        return cls(
            metric, n_treatments, pooling, probe.band_edges, DEFAULT_MIN_UNITS if min_units is None else min_units,
            tuple(layers), tuple(pooled), prov, mcmc=mcmc, beyond_data=beyond_data, metric_family=metric_family,
            min_units_by_family=by_family, model_version=model_version,
        )

    @classmethod
    def identity(cls, metric: str, n_treatments: int, pooling: str, **kwargs: Any) -> "LayeredCalibrationCorrection":
        """A correction with no curves: every multiplier is 1 (raw intervals)."""
        return cls(metric, n_treatments, pooling, **kwargs)

    # ---- layers -------------------------------------------------------------------------------
    @property
    def n_bands(self) -> int:
        return len(self.band_edges) + 1

    def band_index(self, sample_size: int) -> int:
        """Index of the sample-size band holding ``sample_size``."""
        n = _check_sample_size(sample_size, "LayeredCalibrationCorrection.band_index")
        return int(np.searchsorted(np.asarray(self.band_edges), n, side="right"))

    def band_label(self, band: int) -> str:
        """Readable band, e.g. ``"[2000, 10000)"``."""
        band = check_int(band, "band", "LayeredCalibrationCorrection.band_label", low=0, high=len(self.band_edges))
        lo = 0.0 if band == 0 else self.band_edges[band - 1]
        hi = math.inf if band == len(self.band_edges) else self.band_edges[band]
        return f"[{lo:g}, {hi:g})"

    def bands_with_data(self, family: str) -> list[int]:
        """Bands whose layer of ``family`` has at least ``min_units`` units (where the sweep has data)."""
        return sorted(c.band for c in self.layers if c.family == family and c.n_units >= self.units_needed(family))  # type: ignore[misc]

    def units_needed(self, family: str) -> int:
        """Units a curve of ``family`` needs before it is used (``min_units_by_family`` or ``min_units``)."""
        return int((self.min_units_by_family or {}).get(family, self.min_units))

    def _resolve(self, family: str, band: int) -> tuple[LayerCurve | None, str]:
        used = {c.band: c for c in self.layers if c.family == family and c.n_units >= self.units_needed(family)}
        if band in used:
            return used[band], "layer"
        if self.beyond_data == "nearest" and used:
            nearest = min(used, key=lambda b: (abs(b - band), b))  # type: ignore[operator]
            return used[nearest], "nearest"
        for c in self.family_curves:
            if c.family == family and c.n_units >= self.units_needed(family):
                return c, "family"
        return None, "identity"

    def _served(self, family: str, sample_size: int, where: str) -> LayerCurve | None:
        """The curve serving an interval; warns when ``sample_size`` is beyond the data."""
        family = _check_family(family, where)
        band = self.band_index(_check_sample_size(sample_size, where))
        curve, how = self._resolve(family, band)
        if how != "layer" and (self.layers or self.family_curves):
            data = [self.band_label(b) for b in self.bands_with_data(family)]
            served = {
                "nearest": f"the nearest band's curve {self.band_label(curve.band) if curve is not None and curve.band is not None else ''}",
                "family": "the family's curve pooled over all bands",
                "identity": "no correction (raw intervals)",
            }[how]
            warnings.warn(
                f"Calibration {family!r} intervals at sample size {sample_size} (band {self.band_label(band)}) have no "
                f"curve fitted on their own band: it is beyond the artifact's data or holds fewer units than a curve "
                f"needs (bands with data: {', '.join(data) if data else 'none'}); using {served.strip()}.",
                CalibrationExtrapolationWarning,
                stacklevel=3,
            )
        return curve

    def source(self, family: str, sample_size: int) -> str:
        """Which curve serves ``(family, sample_size)``: ``"layer"`` (its own band's),
        ``"nearest"`` (the nearest band with data), ``"family"`` (pooled over bands) or
        ``"identity"``. Anything but ``"layer"`` is beyond the artifact's data."""
        where = "LayeredCalibrationCorrection.source"
        family = _check_family(family, where)
        return self._resolve(family, self.band_index(_check_sample_size(sample_size, where)))[1]

    def curve(self, family: str, band: int | None = None, *, sample_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nominal levels and fitted empirical coverage of the curve serving a layer (for plots).

        Parameters
        ----------
        family
            Quantity family.
        band
            Band index; ``None`` (and no ``sample_size``) gives the family's pooled curve.
        sample_size
            Alternatively, the sample size whose band to show.

        Returns
        -------
        nominal, empirical
            Increasing arrays; the identity ``(DEFAULT_LEVELS, DEFAULT_LEVELS)`` when the layer
            falls back to no correction.
        """
        where = "LayeredCalibrationCorrection.curve"
        family = _check_family(family, where)
        if band is not None and sample_size is not None:
            raise invalid("band", where, "None when 'sample_size' is given", band)
        if sample_size is not None:
            band = self.band_index(_check_sample_size(sample_size, where))
        if band is None:
            c = next((c for c in self.family_curves if c.family == family and c.n_units >= self.units_needed(family)), None)
        else:
            band = check_int(band, "band", where, low=0, high=len(self.band_edges))
            c = self._resolve(family, band)[0]
        if c is None:
            lv = np.array(DEFAULT_LEVELS)
            return lv, lv.copy()
        return np.array(c.nominal), np.array(c.empirical)

    # ---- the maps -----------------------------------------------------------------------------
    def coverage(self, nominal: float, *, family: str, sample_size: int) -> float:
        """Forward map ``R``: empirical coverage of the raw interval at ``nominal``."""
        where = "LayeredCalibrationCorrection.coverage"
        nominal = check_float(nominal, "nominal", where, low=0.0, high=1.0, low_open=True, high_open=True)
        c = self._served(family, sample_size, where)
        return nominal if c is None else float(c.coverage_of(nominal))

    def nominal_for(self, level: float, family: str, sample_size: int) -> float:
        """Nominal level whose raw interval has empirical coverage ``level`` (``R^{-1}``)."""
        where = "LayeredCalibrationCorrection.nominal_for"
        level = _check_level(level, where)
        c = self._served(family, sample_size, where)
        return level if c is None else float(c.nominal_for(level))

    def multiplier(self, level: float, family: str, sample_size: int) -> float:
        """Half-width multiplier ``w(level) = z(nominal_for(level)) / z(level)`` for the layer."""
        where = "LayeredCalibrationCorrection.multiplier"
        level = _check_level(level, where)
        c = self._served(family, sample_size, where)
        return 1.0 if c is None else float(c.multiplier(level))

    def interval(
        self, draws: np.ndarray, *, level: float, family: str, sample_size: int, axis: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated central interval of ``draws`` along ``axis``.

        ``median - w * (median - q_lo)`` to ``median + w * (q_hi - median)``, with ``q_lo, q_hi`` the
        raw ``(1 -/+ level) / 2`` quantiles and ``w = multiplier(level, family, sample_size)``.

        Parameters
        ----------
        draws
            Posterior draws of any shape; ``axis`` indexes the draws.
        level
            Requested (honest) coverage in (0, 1).
        family
            Quantity family of the draws (``"cate"``, ``"gate"``, ``"ate"``,
            ``"conversion_effect"``, ``"severity_effect"``).
        sample_size
            Visitors in the fit, which selects the sample-size band.
        axis
            The draws axis (removed from the outputs).

        Returns
        -------
        lo, hi
            Arrays of the draws' shape without ``axis``.
        """
        where = "LayeredCalibrationCorrection.interval"
        level = _check_level(level, where)
        return scaled_interval(draws, level, self.multiplier(level, family, sample_size), axis, where)

    def served_curve(self, family: str, sample_size: int) -> LayerCurve | None:
        """The curve serving ``(family, sample_size)`` (``None``: no correction); warns, like
        :meth:`interval`, when ``sample_size`` is beyond the artifact's data."""
        return self._served(family, sample_size, "LayeredCalibrationCorrection.served_curve")

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "metric": self.metric,
            # optional: written only when set, so an artifact without it round-trips unchanged
            **({"metric_family": self.metric_family} if self.metric_family is not None else {}),
            "n_treatments": self.n_treatments,
            "pooling": self.pooling,
            "band_edges": list(self.band_edges),
            "min_units": self.min_units,
            # optional: written only when derived, so an older artifact round-trips unchanged
            **({"min_units_by_family": dict(self.min_units_by_family)} if self.min_units_by_family is not None else {}),
            # optional: written only when known, so an older artifact round-trips unchanged
            **({"model_version": self.model_version} if self.model_version is not None else {}),
            "layers": [c.to_dict() for c in self.layers],
            "family_curves": [c.to_dict() for c in self.family_curves],
            "mcmc": None if self.mcmc is None else dict(self.mcmc),
            "beyond_data": self.beyond_data,
            # informational (recomputed on load): the bands each family has data for
            "bands_with_data": {
                c.family: [self.band_label(b) for b in self.bands_with_data(c.family)] for c in self.family_curves
            },
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> "LayeredCalibrationCorrection":
        """Rebuild an artifact from :meth:`to_dict`'s mapping.

        Parameters
        ----------
        d
            The mapping (a parsed artifact JSON).
        source
            Where it came from (the file), quoted in error messages.

        Raises
        ------
        ValueError
            For a malformed artifact: the message names the source, the field (e.g.
            ``layers[2].nominal``), what was expected and what was found.
        """
        return _artifact_from_dict(cls, d, "mapping passed to LayeredCalibrationCorrection.from_dict" if source is None else source)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact JSON atomically (:func:`pytyche._files.atomic_write_text`: fsynced,
        ordinary permissions, temporary file then rename); return the path."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> "LayeredCalibrationCorrection":
        """Load an artifact written by :meth:`to_json` (exact round trip).

        Raises
        ------
        ValueError
            When the file is not valid JSON (with the line and column) or a field is malformed;
            the message names the file and the field.
        """
        source = f"calibration artifact {str(path)!r}"
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"The {source} is not valid JSON: {err}.") from None
        return cls.from_dict(data, source=source)


class _Malformed(ValueError):
    """A field of an artifact that is not what :meth:`LayeredCalibrationCorrection.to_dict` writes."""


def _bad_field(source: str, field: str, expected: str, got: Any) -> ValueError:
    """The error for an artifact field that is not what ``to_dict`` writes (``source``: "artifact at ...")."""
    return invalid(field, f"the {source}", expected, got, noun="field")


def _field(d: Mapping[str, Any], key: str, field: str, source: str) -> Any:
    if key not in d:
        raise _bad_field(source, field, "present", f"a mapping with keys {sorted(d)}")
    return d[key]


def _int_field(value: Any, field: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_field(source, field, "an int", value)
    return value


def _numbers_field(value: Any, field: str, source: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _bad_field(source, field, "a list of numbers", value)
    return tuple(float(v) for v in value)


def _curve_from_dict(c: Any, field: str, source: str) -> LayerCurve:
    if not isinstance(c, Mapping):
        raise _bad_field(source, field, "a mapping (a layer curve)", c)
    family = _field(c, "family", f"{field}.family", source)
    if not isinstance(family, str):
        raise _bad_field(source, f"{field}.family", "a str", family)
    band = _field(c, "band", f"{field}.band", source)
    if band is not None:
        band = _int_field(band, f"{field}.band", source)
    values = {k: _numbers_field(_field(c, k, f"{field}.{k}", source), f"{field}.{k}", source) for k in ("nominal", "empirical", "raw", "weight")}
    counts = {k: _int_field(_field(c, k, f"{field}.{k}", source), f"{field}.{k}", source) for k in ("n_records", "n_units")}
    scale = c.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise _bad_field(source, f"{field}.scale", "a positive number or absent", scale)
    try:
        return LayerCurve(family=family, band=band, **values, **counts, scale=None if scale is None else float(scale))
    except (TypeError, ValueError) as err:
        raise _Malformed(f"The '{field}' field of the {source} is not a valid layer curve: {err}") from None


def _artifact_from_dict(cls: type, d: Any, source: str) -> Any:
    if not isinstance(d, Mapping):
        raise _bad_field(source, "(top level)", "a JSON object (mapping)", type(d).__name__)
    fmt = d.get("format")
    if fmt != FORMAT and fmt not in LEGACY_FORMATS:
        raise _bad_field(source, "format", f"{FORMAT!r} (or legacy {', '.join(map(repr, LEGACY_FORMATS))})", fmt)
    legacy = fmt in LEGACY_FORMATS
    metric = _field(d, "metric", "metric", source)
    n_treatments = _int_field(_field(d, "n_treatments", "n_treatments", source), "n_treatments", source)
    pooling = _field(d, "pooling", "pooling", source)
    band_edges = _numbers_field(_field(d, "band_edges", "band_edges", source), "band_edges", source)
    min_units = _int_field(_field(d, "min_units", "min_units", source), "min_units", source)
    curves = {}
    for key in ("layers", "family_curves"):
        items = _field(d, key, key, source)
        if not isinstance(items, list):
            raise _bad_field(source, key, "a list of layer curves", items)
        curves[key] = tuple(_curve_from_dict(c, f"{key}[{i}]", source) for i, c in enumerate(items))
    provenance = d.get("provenance", {})
    if not isinstance(provenance, Mapping):
        raise _bad_field(source, "provenance", "a mapping", provenance)
    mcmc = None if legacy else _field(d, "mcmc", "mcmc", source)
    # format 1 fell back to the pooled family curve beyond its data
    beyond_data = "pooled" if legacy else _field(d, "beyond_data", "beyond_data", source)
    metric_family = d.get("metric_family")  # optional: absent in artifacts fitted before it existed
    min_units_by_family = d.get("min_units_by_family")  # optional, likewise
    model_version = d.get("model_version")  # optional: absent in artifacts fitted before model versions
    if model_version is not None and (isinstance(model_version, bool) or not isinstance(model_version, int) or model_version < 1):
        raise _bad_field(source, "model_version", "an int >= 1 (a MODEL_VERSION)", model_version)
    try:
        out = cls(
            metric=metric, n_treatments=n_treatments, pooling=pooling, band_edges=band_edges,
            min_units=min_units, provenance=provenance, mcmc=mcmc, beyond_data=beyond_data,
            metric_family=metric_family, min_units_by_family=min_units_by_family, model_version=model_version, **curves,
        )
    except (TypeError, ValueError) as err:
        # the constructor's message names the field (its parameter) and the value
        raise _Malformed(f"The {source} is not a valid artifact: {err}") from None
    if out.mcmc is None:
        warnings.warn(
            f"The {source} (format {fmt!r}) records no MCMC settings (trees, draws, chains), so "
            "its regime check cannot verify that it was fitted at the posterior's MCMC configuration, which "
            "shapes interval width. Refit it with a current sweep to get a regime-checked artifact.",
            LegacyCalibrationWarning,
            stacklevel=3,
        )
    return out


def _code_version() -> str:
    from pytyche._version import __version__

    return __version__
