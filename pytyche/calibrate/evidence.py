"""Which families and levels of an artifact's correction its own held-out validation supports.

An artifact's ``provenance["validation"]`` (written by ``pytyche-sweep validate --write``) holds,
per quantity family and nominal level, the raw and the calibrated coverage on templates its fit
never saw: the mean over datasets, its standard deviation and the number of datasets. A
correction is applied to a family at a level only where that evidence carries it:

**The test** (per family and validated level ``q``; ``t`` the one-sided 95% Student-t quantile
with ``n - 1`` degrees of freedom, ``se = sd / sqrt(n)`` of the raw coverage over datasets):

1. *the raw interval is shown off nominal, on the side the correction moves it*: when the
   calibrated coverage is below the raw one (the correction narrows), ``raw - t * se > q``; when
   above (it widens), ``raw + t * se < q``; and
2. *the calibrated coverage is no farther from nominal than the raw one*:
   ``|calibrated - q| <= |raw - q|``.

Condition 1 is a one-sided comparison of nominal with the raw coverage's across-dataset
interval: a correction is not applied where the held-out data cannot tell raw from nominal
(e.g. ATE and GATE, one coverage indicator per dataset, where 40 datasets give about +-14 pp).
A row without ``sd`` or ``n_datasets`` cannot be tested and is not applied.

3. *the support is a run*: a level that passes 1 and 2 is applied only when a neighbouring
   validated level of the same family passes too. A correction is a curve over levels; with six
   levels and five families tested at 5% each, a lone passing level is what chance gives (the
   continuous K = 2 artifact's ATE at 50% and GATE at 90% are such), two neighbours much less so.

**Between levels.** The applied weight ``lambda`` is 1 at a level that passes and 0 at one that
fails; between validated levels it is interpolated linearly, and beyond them it is the nearest
validated level's. :class:`~pytyche.calibrate.Calibration` moves the interval's half-width in z
space by ``lambda`` of the correction's shift and keeps the result non-decreasing in the level,
so intervals stay nested across levels.

**No validation.** An artifact without a validation has no evidence: ``Calibration.from_sweep(
"auto")`` never picks it, and one loaded by name applies its correction to every family (the
caller chose it), reported as ``"unvalidated"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import t as student_t

__all__ = ["EVIDENCE_CONFIDENCE", "Evidence", "LevelEvidence", "evidence_of", "level_supported"]

#: one-sided confidence of the test that raw coverage is off nominal
EVIDENCE_CONFIDENCE = 0.95


@dataclass(frozen=True)
class LevelEvidence:
    """The evidence test at one (family, nominal level) of a validation.

    ``applied`` is the verdict and ``reason`` says why in one clause.
    """

    family: str
    nominal: float
    raw: float
    calibrated: float
    raw_sd: float | None
    n_datasets: int | None
    applied: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "nominal": self.nominal, "raw": self.raw, "calibrated": self.calibrated,
                "raw_sd": self.raw_sd, "n_datasets": self.n_datasets, "applied": self.applied, "reason": self.reason}


def level_supported(nominal: float, raw: float, calibrated: float, raw_sd: float | None, n_datasets: int | None) -> tuple[bool, str]:
    """The module's test at one level: ``(applied, reason)``."""
    q = float(nominal)
    if raw_sd is None or n_datasets is None or n_datasets < 2 or not math.isfinite(raw_sd):
        return False, "no across-dataset spread recorded: untestable"
    if calibrated == raw:
        return False, "the correction does not move coverage here"
    se = raw_sd / math.sqrt(n_datasets)
    t = float(student_t.ppf(EVIDENCE_CONFIDENCE, n_datasets - 1))
    narrows = calibrated < raw
    bound = raw - t * se if narrows else raw + t * se
    off = bound > q if narrows else bound < q
    if not off:
        side = "lower" if narrows else "upper"
        return False, (f"raw {raw:.3f} is not shown off nominal {q:.2f} ({side} one-sided "
                       f"{EVIDENCE_CONFIDENCE:.0%} bound {bound:.3f}, {n_datasets} datasets)")
    if abs(calibrated - q) > abs(raw - q):
        return False, f"calibrated {calibrated:.3f} is farther from nominal {q:.2f} than raw {raw:.3f}"
    return True, f"raw {raw:.3f} is off nominal {q:.2f} (bound {bound:.3f}) and calibrated {calibrated:.3f} is closer"


@dataclass(frozen=True)
class Evidence:
    """Per-family, per-level verdicts of an artifact's held-out validation.

    ``validated`` is ``False`` when the artifact has no validation: then :meth:`weight` is 1
    everywhere (a correction loaded by name is applied as it is) and :attr:`status` says
    ``"unvalidated"``.
    """

    validated: bool
    rows: tuple[LevelEvidence, ...] = ()
    templates: tuple[str, ...] = ()

    def _family_rows(self, family: str) -> list[LevelEvidence]:
        return sorted((r for r in self.rows if r.family == family), key=lambda r: r.nominal)

    def weight(self, family: str, level: float | np.ndarray) -> np.ndarray:
        """The applied weight ``lambda`` in [0, 1] at ``level`` (see the module docstring)."""
        level = np.asarray(level, dtype=np.float64)
        if not self.validated:
            return np.ones_like(level)
        rows = self._family_rows(family)
        if not rows:
            return np.zeros_like(level)
        q = np.array([r.nominal for r in rows])
        lam = np.array([1.0 if r.applied else 0.0 for r in rows])
        return np.interp(level, q, lam)  # flat beyond the validated range: the nearest level's

    def applied_levels(self, family: str) -> tuple[float, ...]:
        """Validated levels of ``family`` where the correction is applied."""
        if not self.validated:
            return ()
        return tuple(r.nominal for r in self._family_rows(family) if r.applied)

    def status(self, family: str) -> str:
        """``"calibrated"`` (every validated level applies), ``"partial"`` (some do), ``"raw"``
        (none does, or the family was not validated) or ``"unvalidated"`` (no validation)."""
        if not self.validated:
            return "unvalidated"
        rows = self._family_rows(family)
        n = sum(r.applied for r in rows)
        return "raw" if n == 0 else "calibrated" if n == len(rows) else "partial"

    @property
    def any_applied(self) -> bool:
        """Whether the validation supports the correction at any (family, level)."""
        return (not self.validated) or any(r.applied for r in self.rows)

    def describe(self) -> str:
        """One line per family: its status and the levels where the correction applies."""
        if not self.validated:
            return "no held-out validation: the correction is applied as loaded, to every family"
        out = []
        for fam in sorted({r.family for r in self.rows}):
            lv = ", ".join(f"{q:.0%}" for q in self.applied_levels(fam))
            out.append(f"{fam}: {self.status(fam)}" + (f" (applied at {lv})" if lv else ""))
        return "; ".join(out)


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _runs_only(rows: list[LevelEvidence]) -> list[LevelEvidence]:
    """Condition 3: a passing level without a passing neighbour (same family) is not applied."""
    out = []
    for fam in dict.fromkeys(r.family for r in rows):
        mine = sorted((r for r in rows if r.family == fam), key=lambda r: r.nominal)
        for i, r in enumerate(mine):
            neighbour = any(0 <= j < len(mine) and mine[j].applied for j in (i - 1, i + 1))
            if r.applied and not neighbour:
                r = replace(r, applied=False, reason=r.reason + ", but no neighbouring level passes (a lone pass is what chance gives)")
            out.append(r)
    return out


def evidence_of(provenance: Mapping[str, Any] | None) -> Evidence:
    """The :class:`Evidence` of an artifact's provenance (``validated=False`` without a validation)."""
    val = provenance.get("validation") if isinstance(provenance, Mapping) else None
    if not isinstance(val, Mapping):
        return Evidence(validated=False)
    rows = []
    for row in val.get("levels", []) or []:
        if not isinstance(row, Mapping) or not isinstance(row.get("raw"), Mapping) or not isinstance(row.get("calibrated"), Mapping):
            continue
        q, raw, cal = _number(row.get("nominal")), _number(row["raw"].get("mean")), _number(row["calibrated"].get("mean"))
        if q is None or raw is None or cal is None or not isinstance(row.get("family"), str):
            continue
        sd = _number(row["raw"].get("sd"))
        n = row["raw"].get("n_datasets", val.get("n_datasets"))
        n = int(n) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) else None
        ok, why = level_supported(q, raw, cal, sd, n)
        rows.append(LevelEvidence(row["family"], q, raw, cal, sd, n, ok, why))
    rows = _runs_only(rows)
    templates = tuple(str(t) for t in val.get("templates", []) or [])
    return Evidence(validated=True, rows=tuple(rows), templates=templates)
