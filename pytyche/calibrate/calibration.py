"""``Calibration``: an SBC-fitted correction with its regime, or an explicit "uncalibrated".

Three construction paths (glossary, *calibration*)::

    pt.Calibration.from_sweep("clustered_realistic_v1")   # shipped artifact (registry name)
    pt.Calibration.from_sweep("/path/to/sweep.json")      # user-fitted artifact
    pt.Calibration.skip()                                 # uncorrected, labelled as such

Registry artifacts are JSON files shipped as package data in ``pytyche/calibrate/registry/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pytyche._validation import invalid, wrong_type
from pytyche.calibrate.correction import LayeredCalibrationCorrection, raw_interval
from pytyche.contracts.enums import ClaimLevel

__all__ = ["Calibration", "posterior_pooling", "registry_names"]


def _registry_dir() -> Path:
    return Path(str(resources.files("pytyche.calibrate"))) / "registry"


def registry_names() -> list[str]:
    """Names of the calibration artifacts shipped with the package (sorted; may be empty)."""
    d = _registry_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.json") if p.is_file())


def posterior_pooling(posterior: Any) -> str:
    """The pooling regime of a posterior: its ``pooling`` (hurdle fits) or ``"none"``."""
    pooling = getattr(posterior, "pooling", None)
    return pooling if isinstance(pooling, str) and pooling else "none"


def _looks_like_path(value: str) -> bool:
    return value.endswith(".json") or os.sep in value or "/" in value or (os.altsep is not None and os.altsep in value)


@dataclass(frozen=True)
class Calibration:
    """A coverage calibration and the regime it is valid for.

    Attributes
    ----------
    correction
        The :class:`~pytyche.calibrate.LayeredCalibrationCorrection`, or ``None`` when skipped.
    metric
        Outcome metric of the sweep the correction was fitted on (``"revenue_per_visitor"``...).
    n_treatments
        K of the fitted sweep (control included).
    pooling
        Pooling mode of the sweep's fits: ``"joint"``/``"independent"`` (hurdle) or ``"none"``.
    skipped
        ``True`` for :meth:`skip`: the posterior is explicitly labelled uncalibrated.
    provenance
        The artifact's provenance (sweep spec, code version/commit, record counts, date).
    name
        Registry name or file path it was loaded from, when any.

    Regime fields left ``None`` are taken from ``correction``; given ones must agree with it.
    """

    correction: LayeredCalibrationCorrection | None = None
    metric: str | None = None
    n_treatments: int | None = None
    pooling: str | None = None
    skipped: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)
    name: str | None = None

    def __post_init__(self) -> None:
        where = "Calibration"
        if not isinstance(self.skipped, bool):
            raise wrong_type("skipped", where, "a bool", self.skipped)
        if self.skipped:
            if self.correction is not None:
                raise invalid("correction", where, "None for a skipped calibration", type(self.correction).__name__, show=False)
            return
        c = self.correction
        if not isinstance(c, LayeredCalibrationCorrection):
            raise wrong_type("correction", where, "a LayeredCalibrationCorrection (or use Calibration.skip())", c)
        for name in ("metric", "n_treatments", "pooling"):
            given, fitted = getattr(self, name), getattr(c, name)
            if given is None:
                object.__setattr__(self, name, fitted)
            elif given != fitted:
                raise invalid(name, where, f"the correction's {name} {fitted!r}", given)
        if not isinstance(self.provenance, Mapping):
            raise wrong_type("provenance", where, "a mapping", self.provenance)
        if not self.provenance:
            object.__setattr__(self, "provenance", dict(c.provenance))

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def skip(cls) -> "Calibration":
        """Explicitly uncalibrated: intervals stay raw and results are labelled uncalibrated."""
        return cls(correction=None, skipped=True)

    @classmethod
    def from_correction(cls, correction: LayeredCalibrationCorrection, name: str | None = None) -> "Calibration":
        """Wrap a fitted correction (regime and provenance read from it)."""
        return cls(correction=correction, name=name)

    @classmethod
    def from_sweep(cls, name_or_path: str | os.PathLike[str]) -> "Calibration":
        """Load a calibration artifact by registry name or from a JSON path.

        Parameters
        ----------
        name_or_path
            A name from :func:`registry_names` (e.g. ``"clustered_realistic_v1"``) or the path of
            an artifact JSON written by :meth:`LayeredCalibrationCorrection.to_json`.

        Raises
        ------
        ValueError
            For an unknown registry name (the message lists the available names) or a malformed
            artifact.
        FileNotFoundError
            For a path that does not exist.
        """
        where = "Calibration.from_sweep"
        if isinstance(name_or_path, os.PathLike):
            path = Path(name_or_path)
        elif isinstance(name_or_path, str):
            if not name_or_path.strip():
                raise invalid("name_or_path", where, "a registry name or a JSON path", name_or_path)
            if _looks_like_path(name_or_path) or Path(name_or_path).is_file():
                path = Path(name_or_path)
            else:
                names = registry_names()
                if name_or_path not in names:
                    avail = ", ".join(repr(n) for n in names) if names else "none shipped yet"
                    raise invalid(
                        "name_or_path", where,
                        f"a registry name (available: {avail}) or the path of an artifact JSON", name_or_path,
                    )
                path = _registry_dir() / f"{name_or_path}.json"
        else:
            raise wrong_type("name_or_path", where, "a registry name or a path", name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"The 'name_or_path' parameter of {where} names no file: {str(path)!r}.")
        correction = LayeredCalibrationCorrection.from_json(path)
        label = path.stem if path.parent == _registry_dir() else str(path)
        return cls(correction=correction, name=label)

    # ---- regime -------------------------------------------------------------------------------
    @property
    def claim_level(self) -> ClaimLevel:
        return ClaimLevel.UNCALIBRATED if self.skipped else ClaimLevel.CALIBRATED

    def _details(self, observed: Any, pooling: str | None) -> list[tuple[str, Any, Any]]:
        if not (hasattr(observed, "metric") and hasattr(observed, "variants")):
            raise wrong_type("observed", "Calibration.applies_to", "an ObservedExperimentData", observed)
        if self.skipped:
            return []
        out = []
        if observed.metric != self.metric:
            out.append(("metric", self.metric, observed.metric))
        k = len(observed.variants)
        if k != self.n_treatments:
            out.append(("n_treatments", self.n_treatments, k))
        if pooling is not None and pooling != self.pooling:
            out.append(("pooling", self.pooling, pooling))
        return out

    def mismatches(self, observed: Any, pooling: str | None = None) -> list[str]:
        """Names of the regime dimensions (``metric``, ``n_treatments``, ``pooling``) that differ.

        ``pooling=None`` leaves pooling unchecked; a skipped calibration never mismatches.
        """
        return [d for d, _, _ in self._details(observed, pooling)]

    def mismatch_message(self, observed: Any, pooling: str | None = None) -> str:
        """One sentence per mismatched dimension (empty when it applies)."""
        return "; ".join(
            f"{d}: calibration fitted on {want!r}, data has {got!r}" for d, want, got in self._details(observed, pooling)
        )

    def applies_to(self, observed: Any, pooling: str | None = None) -> bool:
        """``True`` iff ``observed.metric``, ``len(observed.variants)`` and (when given) the pooling
        mode match the artifact's regime. A skipped calibration applies to anything."""
        return not self._details(observed, pooling)

    # ---- intervals ----------------------------------------------------------------------------
    def interval(
        self, draws: np.ndarray, *, level: float, family: str, sample_size: int, axis: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated interval (raw quantile interval when skipped); see
        :meth:`LayeredCalibrationCorrection.interval`."""
        if self.skipped or self.correction is None:
            return raw_interval(draws, level, axis=axis)
        return self.correction.interval(draws, level=level, family=family, sample_size=sample_size, axis=axis)
