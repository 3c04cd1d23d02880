"""``Calibration``: an SBC-fitted correction with its regime, or an explicit "uncalibrated".

Construction paths (docs/concepts.md, *Calibration*)::

    pt.Calibration.from_sweep("clustered_realistic_v2")   # shipped artifact (registry name)
    pt.Calibration.from_sweep("/path/to/sweep.json")      # user-fitted artifact
    pt.Calibration.from_sweep("auto")                     # the registry artifact whose regime applies
    pt.Calibration.skip()                                 # uncorrected, labelled as such

Registry artifacts are JSON files shipped as package data in ``pytyche/calibrate/registry/``; the
environment variable ``PYTYCHE_CALIBRATION_REGISTRY`` (or ``from_sweep(..., registry=DIR)``)
points at another folder of artifacts instead.

A regime is what changes coverage: the metric, K, the pooling and the MCMC settings that shape
interval width (``num_trees_mu``, ``num_trees_tau``, ``num_draws``, ``num_chains``).
:meth:`Calibration.applies_to` checks all of them against a posterior (the MCMC settings only
when the artifact records them: legacy artifacts do not, and load with
:class:`~pytyche.calibrate.LegacyCalibrationWarning`).

``from_sweep("auto")`` returns an *unresolved* calibration: the regime is known only from a
posterior, so the artifact is picked when the calibration is first applied
(:func:`~pytyche.calibrate.apply_calibration`, ``posterior.apply_calibration``, or each round of a
sequential experiment) by :meth:`Calibration.resolve`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pytyche._validation import InstanceOf, invalid, validate, wrong_type
from pytyche.bcf.fingerprint import MODEL_HISTORY, MODEL_VERSION
from pytyche.calibrate.correction import (
    CHECKED_MCMC_FIELDS,
    LayeredCalibrationCorrection,
    CalibrationWarning,
    LegacyCalibrationWarning,
    _z,
    mcmc_of,
    raw_interval,
    scaled_interval,
)
from pytyche.calibrate.evidence import Evidence, evidence_of
from pytyche.contracts.enums import ClaimLevel
from pytyche.contracts.truth import QUANTITY_FAMILIES

__all__ = ["AUTO", "AutoCalibrationFallbackWarning", "CALIBRATION_CONSTRAINTS", "FROM_SWEEP_CONSTRAINTS", "REGISTRY_ENV", "Calibration", "posterior_pooling", "registry_names"]


#: environment variable naming a folder of artifacts to use instead of the shipped registry
REGISTRY_ENV = "PYTYCHE_CALIBRATION_REGISTRY"
#: the name :meth:`Calibration.from_sweep` reads as "pick the applicable registry artifact"
AUTO = "auto"
#: retired registry names (the seed documents' examples still use one): name -> (successor, why)
RETIRED: dict[str, tuple[str, str]] = {
    "clustered_realistic_v1": (
        "demo_rpv_k3_toy",
        "it was fitted against the latent-cluster truth E[. | cluster], which the posterior does not estimate; "
        "demo_rpv_k3_toy is its successor at the same toy MCMC regime, fitted against E[. | x] on the current model",
    ),
    "clustered_realistic_v2": (
        "demo_rpv_k3_toy",
        "it was fitted on one template (clustered_realistic) by a model that predates model versions, and never validated; "
        "demo_rpv_k3_toy is its refit at the same toy MCMC regime on the current model, over every effect structure, "
        "validated on held-out templates",
    ),
}


class AutoCalibrationFallbackWarning(CalibrationWarning):
    """``Calibration.from_sweep("auto")`` found no artifact for a posterior and kept raw intervals."""


def _shipped_registry_dir() -> Path:
    return Path(str(resources.files("pytyche.calibrate"))) / "registry"


def _registry_dir() -> Path:
    """``$PYTYCHE_CALIBRATION_REGISTRY`` when set, else the shipped registry folder."""
    override = os.environ.get(REGISTRY_ENV)
    return Path(override) if override else _shipped_registry_dir()


def _registry(registry: str | os.PathLike[str] | None) -> Path:
    return _registry_dir() if registry is None else Path(registry)


def registry_names(registry: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the calibration artifacts in the registry (sorted; may be empty).

    Parameters
    ----------
    registry
        A folder of artifact JSONs; default the shipped registry (or ``$PYTYCHE_CALIBRATION_REGISTRY``).
    """
    d = _registry(registry)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.json") if p.is_file() and p.stem != AUTO)


_LOADED: dict[tuple[str, int, int], LayeredCalibrationCorrection] = {}


def _load(path: Path) -> LayeredCalibrationCorrection:
    """Load an artifact, memoised by (path, mtime, size): auto-resolution reads the registry each
    round. Silent: :meth:`Calibration.from_sweep` warns about legacy artifacts itself, on every
    call, so a memoised load never swallows the warning."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    hit = _LOADED.get(key)
    if hit is not None:
        return hit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyCalibrationWarning)
        correction = LayeredCalibrationCorrection.from_json(path)
    _LOADED[key] = correction
    return correction


def _posterior_parts(obj: Any) -> tuple[Any, str | None, Any]:
    """``(observed, pooling, config)`` of a posterior, or ``(obj, None, None)`` for observed data."""
    if hasattr(obj, "observed") and hasattr(obj, "config"):
        return obj.observed, posterior_pooling(obj), obj.config
    return obj, None, None


def posterior_pooling(posterior: Any) -> str:
    """The pooling regime of a posterior: its ``pooling`` (hurdle fits) or ``"none"``."""
    pooling = getattr(posterior, "pooling", None)
    return pooling if isinstance(pooling, str) and pooling else "none"


def _looks_like_path(value: str) -> bool:
    return value.endswith(".json") or os.sep in value or "/" in value or (os.altsep is not None and os.altsep in value)


#: the flags of :class:`Calibration` (checked at construction; the correction, regime fields,
#: provenance and an auto calibration's registry are checked by hand, with the rules between them)
CALIBRATION_CONSTRAINTS: dict[str, Any] = {
    "skipped": InstanceOf(bool, "a bool"),
    "auto": InstanceOf(bool, "a bool"),
    "required": InstanceOf(bool, "a bool"),
}

#: the scalar options of :meth:`Calibration.from_sweep` (``name_or_path`` is checked by hand: its
#: rules depend on the registry's contents)
FROM_SWEEP_CONSTRAINTS: dict[str, Any] = {
    "registry": [None, InstanceOf((str, os.PathLike), "a folder path")],
    "required": InstanceOf(bool, "a bool"),
}


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
    auto
        ``True`` for ``from_sweep("auto")``: no correction yet; :meth:`resolve` picks the registry
        artifact whose regime applies to a posterior when the calibration is applied.
    registry
        The registry folder an auto calibration searches (``None``: the default registry).

    Regime fields left ``None`` are taken from ``correction``; given ones must agree with it.
    """

    correction: LayeredCalibrationCorrection | None = None
    metric: str | None = None
    n_treatments: int | None = None
    pooling: str | None = None
    skipped: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)
    name: str | None = None
    auto: bool = False
    registry: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        where = "Calibration"
        validate({name: getattr(self, name) for name in CALIBRATION_CONSTRAINTS}, CALIBRATION_CONSTRAINTS, where)
        if self.auto:
            if self.skipped or self.correction is not None:
                raise invalid("auto", where, "False with a correction or skipped=True (an auto calibration has neither)", True)
            if self.registry is not None and not isinstance(self.registry, str):
                raise wrong_type("registry", where, "None or a folder path", self.registry)
            return
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
    def from_sweep(
        cls, name_or_path: str | os.PathLike[str], *, registry: str | os.PathLike[str] | None = None, required: bool = False
    ) -> "Calibration":
        """Load a calibration artifact by registry name or from a JSON path, or ``"auto"``.

        Parameters
        ----------
        name_or_path
            A name from :func:`registry_names` (e.g. ``"clustered_realistic_v2"``), the path of
            an artifact JSON written by :meth:`LayeredCalibrationCorrection.to_json`, or
            ``"auto"``: the registry artifact whose regime (metric, K, pooling, MCMC settings)
            applies to the posterior, picked when the calibration is first applied (see
            :meth:`resolve`).
        registry
            Folder of artifact JSONs searched for names and by ``"auto"``; default the shipped
            registry (or ``$PYTYCHE_CALIBRATION_REGISTRY``).
        required
            Only for ``"auto"``: when ``True``, a posterior no artifact applies to is an error
            (``ValueError``) instead of raw intervals with an :class:`AutoCalibrationFallbackWarning`.

        Raises
        ------
        ValueError
            For an unknown registry name (the message lists the available names) or a malformed
            artifact; ``required=True`` with a name that is not ``"auto"``.
        FileNotFoundError
            For a path that does not exist.

        Warns
        -----
        LegacyCalibrationWarning
            When the artifact records no MCMC settings (format 1), which then go unchecked.
        """
        where = "Calibration.from_sweep"
        validate({"registry": registry, "required": required}, FROM_SWEEP_CONSTRAINTS, where)
        if isinstance(name_or_path, str) and name_or_path == AUTO:
            return cls(auto=True, registry=None if registry is None else os.fspath(registry), name=AUTO, required=required)
        if required:
            raise invalid("required", where, "False unless name_or_path is 'auto' (a named artifact is always required)", required)
        if isinstance(name_or_path, os.PathLike):
            path = Path(name_or_path)
        elif isinstance(name_or_path, str):
            if not name_or_path.strip():
                raise invalid("name_or_path", where, "a registry name or a JSON path", name_or_path)
            if _looks_like_path(name_or_path) or Path(name_or_path).is_file():
                path = Path(name_or_path)
            else:
                names = registry_names(registry)
                if name_or_path in RETIRED and name_or_path not in names:
                    successor, why = RETIRED[name_or_path]
                    raise invalid(
                        "name_or_path", where,
                        f"a current artifact: {name_or_path!r} was retired ({why}); use {successor!r} instead", name_or_path,
                    )
                if name_or_path not in names:
                    avail = ", ".join(repr(n) for n in names) if names else "none shipped yet"
                    raise invalid(
                        "name_or_path", where,
                        f"'auto', a registry name (available: {avail}) or the path of an artifact JSON", name_or_path,
                    )
                path = _registry(registry) / f"{name_or_path}.json"
        else:
            raise wrong_type("name_or_path", where, "a registry name or a path", name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"The 'name_or_path' parameter of {where} names no file: {str(path)!r}.")
        correction = _load(path)
        label = path.stem if path.parent == _registry(registry) else str(path)
        if correction.mcmc is None:
            warnings.warn(
                f"The calibration artifact {label!r} records no MCMC settings (trees, draws, chains): it predates "
                "them (format 1), so the regime check cannot verify that it was fitted at the posterior's MCMC "
                "configuration, which shapes interval width. Refit it with a current sweep to get a regime-checked "
                "artifact.",
                LegacyCalibrationWarning,
                stacklevel=2,
            )
        return cls(correction=correction, name=label)

    # ---- auto ----------------------------------------------------------------------------------
    def resolve(self, posterior: Any) -> "Calibration":
        """The registry artifact whose regime applies to ``posterior`` (``self`` unless auto).

        Among the registry's artifacts that record their MCMC settings and apply to the posterior
        (metric, K, pooling, trees, draws, chains, model options), the one with data in the
        posterior's sample-size band for the most families wins, then the one fitted on more
        records, then the first name. Never picked: legacy artifacts (no MCMC settings), artifacts
        without a held-out validation (``provenance["validation"]``, written by ``pytyche-sweep
        validate --write``), and artifacts whose validation supports their correction at no
        family and level (:func:`validation_verdict`, :mod:`pytyche.calibrate.evidence`). Loading
        such an artifact by name still works.

        When nothing applies, the posterior keeps raw intervals: the result is a skipped
        calibration named ``"auto"`` whose ``provenance["auto_fallback"]`` says why, with an
        :class:`AutoCalibrationFallbackWarning` (results are labelled uncalibrated).

        Raises
        ------
        ValueError
            When nothing applies and the calibration was made with ``required=True``: the message
            gives the posterior's regime and why each artifact does not apply.
        """
        if not self.auto:
            return self
        where = "Calibration.resolve"
        observed, pooling, config = _posterior_parts(posterior)
        if config is None:
            raise wrong_type("posterior", where, "a posterior (with 'observed' and 'config') to pick an artifact for", posterior)
        folder = _registry(self.registry)
        n = int(observed.n_visitors)
        ranked, why = [], []
        for name in registry_names(folder):
            correction = _load(folder / f"{name}.json")
            cand = Calibration(correction=correction, name=name)
            if correction.mcmc is None:
                why.append(f"{name!r}: legacy artifact without MCMC settings")
                continue
            verdict = validation_verdict(correction.provenance)
            if verdict is not None:
                why.append(f"{name!r}: {verdict}")
                continue
            msg = cand.mismatch_message(observed, pooling, config)
            if msg:
                why.append(f"{name!r}: {msg}")
                continue
            band = correction.band_index(n)
            covered = sum(1 for c in correction.family_curves if band in correction.bands_with_data(c.family))
            total = int(correction.provenance.get("record_counts", {}).get("total", 0))
            ranked.append(((-covered, -total, name), cand))
        if ranked:
            return min(ranked, key=lambda r: r[0])[1]
        regime = {"metric": observed.metric, "metric_family": _metric_family(observed), "n_treatments": len(observed.variants), "pooling": pooling, **{
            k: v for k, v in mcmc_of(config).items() if k in CHECKED_MCMC_FIELDS}}
        reason = (
            f"no artifact in the registry {folder.name!r} applies to the posterior's regime {regime}"
            + (f": {'; '.join(why)}." if why else " (the registry is empty).")
        )
        if self.required:
            raise ValueError(
                f"The 'calibration' parameter is Calibration.from_sweep('auto', required=True), but {reason}"
                " Fit one with a coverage sweep at this regime, or pass Calibration.skip()."
            )
        warnings.warn(
            f"Calibration.from_sweep('auto') keeps raw intervals (labelled uncalibrated): {reason}",
            AutoCalibrationFallbackWarning,
            stacklevel=3,
        )
        return Calibration(skipped=True, name=AUTO, provenance={"auto_fallback": reason})

    # ---- regime -------------------------------------------------------------------------------
    @property
    def claim_level(self) -> ClaimLevel:
        """The claim level of results this calibration is applied to (:meth:`ClaimLevel.of`)."""
        return ClaimLevel.of(self)

    @property
    def mcmc(self) -> Mapping[str, int] | None:
        """The MCMC settings of the artifact's regime (``None`` when unknown, skipped or auto)."""
        return None if self.correction is None else self.correction.mcmc

    def _details(self, observed: Any, pooling: str | None, config: Any = None) -> list[tuple[str, Any, Any]]:
        obs, post_pooling, post_config = _posterior_parts(observed)
        observed = obs
        pooling = pooling if pooling is not None else post_pooling
        config = config if config is not None else post_config
        if not (hasattr(observed, "metric") and hasattr(observed, "variants")):
            raise wrong_type("observed", "Calibration.applies_to", "an ObservedExperimentData or a posterior", observed)
        if self.skipped:
            return []
        if self.auto:
            raise invalid(
                "calibration", "Calibration.applies_to", "a resolved calibration (call resolve(posterior) on an auto one)",
                "Calibration.from_sweep('auto')", show=False,
            )
        out = []
        family = self.correction.metric_family if self.correction is not None else None
        if family is not None:
            got = _metric_family(observed)
            if got != family:
                out.append(("metric_family", family, got))
        elif observed.metric != self.metric:
            out.append(("metric", self.metric, observed.metric))
        k = len(observed.variants)
        if k != self.n_treatments:
            out.append(("n_treatments", self.n_treatments, k))
        if pooling is not None and pooling != self.pooling:
            out.append(("pooling", self.pooling, pooling))
        mcmc = self.mcmc
        if config is not None and mcmc is not None:
            got = mcmc_of(config)
            for k in CHECKED_MCMC_FIELDS:
                if k in got and got[k] != mcmc.get(k):
                    out.append((k, mcmc.get(k), got[k]))
        if config is not None:
            for k, want in ARTIFACT_MODEL.items():
                got_v = config.get(k, want) if isinstance(config, Mapping) else getattr(config, k, want)
                if got_v != want:
                    out.append((k, want, got_v))
        version = self.model_version
        if version is not None and version != MODEL_VERSION:  # an artifact of another model
            out.append(("model_version", version, MODEL_VERSION))
        return out

    @property
    def model_version(self) -> int | None:
        """The :data:`~pytyche.bcf.fingerprint.MODEL_VERSION` the artifact's records came from
        (``None``: records that predate model versions, or no artifact). A posterior of another
        model is outside the artifact's regime."""
        return None if self.correction is None else self.correction.model_version

    def mismatches(self, observed: Any, pooling: str | None = None, config: Any = None) -> list[str]:
        """Names of the regime dimensions that differ: ``metric``, ``n_treatments``, ``pooling``,
        the MCMC settings ``num_trees_mu``, ``num_trees_tau``, ``num_draws``, ``num_chains``, and
        ``model_version`` for an artifact fitted on another model
        (:mod:`pytyche.bcf.fingerprint`; artifacts that predate model versions carry none and
        are not checked on it).

        ``observed`` may be a posterior, whose pooling and config are then checked too.
        ``pooling=None`` / ``config=None`` (with observed data) leave those unchecked; the MCMC
        settings of a legacy artifact (none recorded) are never checked; a skipped calibration
        never mismatches.
        """
        return [d for d, _, _ in self._details(observed, pooling, config)]

    def mismatch_message(self, observed: Any, pooling: str | None = None, config: Any = None) -> str:
        """One sentence per mismatched dimension (empty when it applies)."""
        return "; ".join(
            f"model_version: calibration fitted on model version {want} ({MODEL_HISTORY.get(want, 'unknown')}), "
            f"this pytyche fits model version {got}: refit the artifact on the current model"
            if d == "model_version" else
            f"{d}: calibration fitted on {want!r}, {'data' if d in ('metric', 'metric_family', 'n_treatments') else 'posterior'} has {got!r}"
            for d, want, got in self._details(observed, pooling, config)
        )

    def applies_to(self, observed: Any, pooling: str | None = None, config: Any = None) -> bool:
        """``True`` iff ``observed.metric``, ``len(observed.variants)``, (when given) the pooling
        mode and (when given) the MCMC settings of ``config`` match the artifact's regime.

        Parameters
        ----------
        observed
            ObservedExperimentData, or a posterior (its ``observed``, pooling and ``config``).
        pooling
            Pooling mode to check (``"joint"``, ``"independent"``, ``"none"``).
        config
            A ``GPUBCFConfig`` (or mapping) whose trees, draws and chains must match the
            artifact's ``mcmc`` (unchecked for a legacy artifact without them).

        A skipped calibration applies to anything.
        """
        return not self._details(observed, pooling, config)

    # ---- evidence --------------------------------------------------------------------------------
    @cached_property
    def evidence(self) -> Evidence:
        """Which families and levels the artifact's own held-out validation supports
        (:mod:`pytyche.calibrate.evidence`); nothing for a skipped or unresolved calibration."""
        if self.correction is None:
            return Evidence(validated=True)
        return evidence_of(self.correction.provenance)

    def family_status(self) -> dict[str, str]:
        """Per quantity family: ``"calibrated"``, ``"partial"``, ``"raw"`` or ``"unvalidated"``
        (see :meth:`Evidence.status`); ``"raw"`` for every family of a skipped calibration."""
        return {f: self.evidence.status(f) for f in QUANTITY_FAMILIES}

    def claim_level_for(self, family: str, level: float = 0.9) -> ClaimLevel:
        """The claim level of ``family`` intervals at ``level``: ``CALIBRATED`` iff a correction
        is held and applied to that family at that level (its evidence weight is positive)."""
        if ClaimLevel.of(self) is not ClaimLevel.CALIBRATED:
            return ClaimLevel.UNCALIBRATED
        return ClaimLevel.CALIBRATED if float(self.evidence.weight(family, level)) > 0 else ClaimLevel.UNCALIBRATED

    def _shift_z(self, family: str, sample_size: int, levels: np.ndarray) -> np.ndarray | None:
        """``z`` of the served nominal level at each of ``levels`` (increasing, in (0, 1)): the
        raw ``z(level)`` moved by the evidence weight of the correction's shift, then made
        non-decreasing over a grid of levels so that intervals stay nested. ``None``: raw (a
        family the evidence keeps raw at every level is not looked up, so it never warns)."""
        if self.correction is None or self.evidence.status(family) == "raw":
            return None
        curve = self.correction.served_curve(family, sample_size)
        if curve is None:
            return None
        grid = np.union1d(_LEVEL_GRID[_LEVEL_GRID < levels.max()], levels)
        y = _z(grid)
        x = y + self.evidence.weight(family, grid) * (np.asarray(curve.multiplier(grid)) * y - y)
        x = np.maximum.accumulate(x)
        return x[np.searchsorted(grid, levels)]

    def multiplier(self, level: float, family: str, sample_size: int) -> float:
        """Half-width multiplier at ``level`` for ``family`` intervals of a fit of ``sample_size``
        visitors: the correction's, where the evidence applies it, 1 where it does not (see
        :mod:`pytyche.calibrate.evidence`)."""
        x = self._shift_z(family, sample_size, np.array([float(level)]))
        return 1.0 if x is None else float(x[0] / _z(level))

    # ---- intervals ----------------------------------------------------------------------------
    def interval(
        self, draws: np.ndarray, *, level: float, family: str, sample_size: int, axis: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated interval (raw quantile interval when skipped): the raw central interval
        with its half-widths scaled by :meth:`multiplier` around the median."""
        self._check_resolved("Calibration.interval")
        if self.skipped or self.correction is None:
            return raw_interval(draws, level, axis=axis)
        return scaled_interval(draws, level, self.multiplier(level, family, sample_size), axis, "Calibration.interval")

    def decision_draws(self, draws: np.ndarray, family: str, sample_size: int) -> np.ndarray:
        """``(S,)`` draws moved by the same correction as :meth:`interval`, for decisions.

        Draw ``d`` with mid-rank ``F(d)`` is an endpoint of the central interval at level
        ``L = |2 F(d) - 1|``; it moves to ``median + w(L) * (d - median)`` with ``w`` the
        :meth:`multiplier`, and the moved draws keep their order. Every probability and interval
        taken from the moved draws then tells the calibrated story: the equal-tailed interval of
        the moved draws at ``L`` is the calibrated interval at ``L`` up to quantile
        interpolation. Raw draws come back unchanged where the family stays raw.
        """
        self._check_resolved("Calibration.decision_draws")
        d = np.asarray(draws, dtype=np.float64)
        if d.ndim != 1 or d.size < 1:
            raise invalid("draws", "Calibration.decision_draws", "a 1-d array of draws", d.shape)
        if self.skipped or self.correction is None or d.size < 2:
            return d.copy()
        order = np.argsort(d, kind="stable")
        level = np.abs(2.0 * (np.arange(d.size) + 0.5) / d.size - 1.0)
        level = np.clip(level, _LEVEL_GRID[0] / 10, 1.0 - 1e-6)
        uniq, inv = np.unique(level, return_inverse=True)
        x = self._shift_z(family, sample_size, uniq)
        if x is None:
            return d.copy()
        w = (x / _z(uniq))[inv]
        if np.all(w == 1.0):  # the family stays raw at every level: the draws themselves
            return d.copy()
        s = d[order]
        med = float(np.median(d))
        moved = np.maximum.accumulate(med + w * (s - med))
        out = np.empty_like(d)
        out[order] = moved
        return out

    def _check_resolved(self, where: str) -> None:
        if self.auto:
            raise invalid(
                "calibration", where, "a resolved calibration (apply it to a posterior first)",
                "Calibration.from_sweep('auto')", show=False,
            )


#: levels over which the served nominal is made non-decreasing (nested intervals)
_LEVEL_GRID = np.linspace(0.01, 0.99, 99)


def _metric_family(observed: Any) -> str | None:
    """The outcome family of ``observed`` as ``pt.fit`` dispatches on it (``None`` if it has none)."""
    from pytyche.contracts.enums import MetricFamily

    try:
        return MetricFamily.infer(observed.outcome).value
    except (ValueError, AttributeError):
        return None


#: the model options every artifact describes (the BCF before issue 16's options): a posterior
#: fitted with another value is outside every artifact's regime, since the option changes the
#: intervals an artifact was fitted to correct
ARTIFACT_MODEL = {"tau_intercept": False, "tau_coding": "contrast", "tau_leaf_sd": None}

def validation_verdict(provenance: Mapping[str, Any]) -> str | None:
    """Why ``from_sweep("auto")`` never picks an artifact, by its own validation, or ``None``.

    Ruled out: an artifact without a held-out validation (nothing shows it helps), and one whose
    validation supports its correction at no family and level (:mod:`pytyche.calibrate.evidence`:
    applying it would change nothing, or make intervals worse than raw by its own evidence).
    """
    ev = evidence_of(provenance)
    if not ev.validated:
        return "it has no held-out validation (pytyche-sweep validate --write), so nothing shows it helps"
    if ev.any_applied:
        return None
    shown = [r for r in ev.rows if r.family == "cate" and r.nominal in (0.8, 0.9)] or list(ev.rows[:2])
    detail = "; ".join(f"{r.family} {r.nominal:.0%}: {r.reason}" for r in shown)
    return (f"its held-out validation ({', '.join(ev.templates) or 'held-out templates'}) supports the correction "
            f"at no family and level ({detail})")
