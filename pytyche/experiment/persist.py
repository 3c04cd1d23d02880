"""Save and load a :class:`~pytyche.experiment.SequentialExperiment`: run one for weeks, a process a round.

``exp.save(path)`` writes a directory; ``SequentialExperiment.load(path, generator=fetch)`` restores
it in a new process, and the loaded experiment's next ``advance()`` gives the same result as the
uninterrupted run with the same seed (per-round seeds derive from ``(seed, round_idx)``, so there
is no random-number state to carry; the generator is not saved -- it is passed to ``load``).

Layout (format version :data:`FORMAT_VERSION`)::

    path/
      CURRENT                      {"snapshot": "snapshot-..."}: the complete snapshot to read
      snapshot-<rounds>-<uid>/
        manifest.json              format, format_version, pytyche version, sha256 of every file
        config.json                the constructor's settings (schedule, cells, floors, seed, calibration,
                                   stability_method, ...)
        history.json               per round: the shipped plan and the next plan (plan JSON), cell scores,
                                   ship signals, SRM, policy value, truth comparison, analysis summary
                                   (decisions, segments, policy tree as split rules), posterior summary
        data/round_000/variant_0.parquet   each round's own data, one file per variant (Parquet)
        truth/round_000.parquet    sim mode: each round's ground truth
        summaries/cate_000.parquet the round's per-visitor CATE summary (AnalysisResult.cate_frame())
        draws/round_000.npz        posterior draws (only with save(path, draws=True))

Atomicity: a save writes a new snapshot under a temporary name, renames it into place, and only
then points ``CURRENT`` at it (``os.replace`` of a small file, atomic on POSIX); older snapshots
are removed afterwards. A crash at any point leaves ``CURRENT`` naming a complete snapshot (the
previous one until the switch). ``load`` verifies every file against the manifest's checksums, so
a corrupt, partial or newer-format save fails with a :class:`SaveFormatError` naming the file.

What is restored: everything the loop needs to continue (the rounds' data and truths, the next
plan, the ship signals) and, for inspection, the history: each :class:`~pytyche.experiment.Experiment`
with its plan, cell scores, SRM, policy value, truth comparison, and an
:class:`~pytyche.contracts.AnalysisResult` carrying the decisions, segments and policy tree.
Without ``draws=True`` a restored experiment's ``posterior`` is ``None`` (its ``cate_frame()`` is
the saved one, at the saved level) and ``analysis.comparison`` is ``None``.

The stability method. ``config.json`` records the experiment's ``stability_method`` and each
saved policy tree its own. Saves written before the default became ``"posterior"`` record
neither: they ran with ``"means"`` (:data:`LEGACY_STABILITY_METHOD`) and load with it, so a
loaded old experiment keeps scoring its segments the way it always did. A missing key is all
that differs, so the format version stays 1: an older pytyche reading a new save ignores the
key (and would score with its own default, ``"means"``).

The SHIP spending. ``config.json`` records the experiment's ``ship_spending`` method
(:mod:`pytyche.experiment.spending`). Saves from before spending record none: they ran every
round's SHIP gate at ``p_positive_min`` and load with ``"none"``, so a continued old experiment
decides the way it always did. ``ship_spending_over_arms`` records whether the error is split over
the treated arms too; saves from before that key split over the rounds only and load with
``over_arms=False``.

The model. Each saved round records the model that fitted it
(:func:`~pytyche.bcf.fingerprint.model_fingerprint`: the model version and its options), and its
resolved calibration travels whole with it. A loaded experiment lists them in
``SequentialExperiment.round_models``; when they are not the model this pytyche fits (or a save
predates fingerprints) loading warns with :class:`SavedModelWarning`, naming both. The restored
rounds keep their posteriors, corrections and decisions; rounds run after loading use the current
model.

The skipped analysis steps. ``config.json`` records ``skip_analysis`` (a list of
:data:`~pytyche.experiment.sequential.ANALYSIS_STEPS`); a save without the key skipped none.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pytyche._files import file_sha256
from pytyche._validation import InstanceOf, check, invalid, validate, violated
from pytyche.contracts.arrays import DecompositionSamples
from pytyche.contracts.enums import ClaimLevel, Decision
from pytyche.contracts.observed import ObservedExperimentData, VariantData, VisitorSchema
from pytyche.contracts.results import AnalysisResult, DecisionThresholds, DiscoveredSegment, PolicyTreeResult, RecommendationSummary
from pytyche.contracts.rules import AllOf, rule_from_dict
from pytyche.contracts.truth import CalibrationTruth
from pytyche.experiment.cumulative import _build_cumulative, cumulative_truth, round_design
from pytyche.experiment.graduation import ExpectedLossRule, ShipSignal
from pytyche.experiment.plan_io import SplitTree, cell_from_dict, cell_to_dict, plan_from_dict, plan_to_dict, tree_to_dict
from pytyche.experiment.policies import TreePolicy
from pytyche.experiment.policy_value import PolicyValue
from pytyche.experiment.rounds import CellScore, Experiment, Round, TruthComparison
from pytyche.experiment.schedules import ExplicitSchedule, FixedSchedule, GeometricSchedule
from pytyche.experiment.spending import LEGACY_SHIP_SPENDING, ShipSpending
from pytyche.experiment.srm import SRMResult

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.experiment.sequential import SequentialExperiment

__all__ = ["FORMAT", "FORMAT_VERSION", "SaveFormatError", "SavedModelWarning", "save_experiment", "load_experiment", "warn_other_model"]

FORMAT = "pytyche.sequential_experiment"
FORMAT_VERSION = 1
#: the stability method of a save that records none: every save before the key existed ran with it
LEGACY_STABILITY_METHOD = "means"
CURRENT = "CURRENT"
_SCHEDULES = {"geometric": GeometricSchedule, "fixed": FixedSchedule, "explicit": ExplicitSchedule}


class SavedModelWarning(UserWarning):
    """A loaded experiment's rounds were fitted by another model than this pytyche fits."""


def warn_other_model(models: Sequence[Mapping[str, Any] | None], root: Any) -> None:
    """Warn when saved rounds' models (their fingerprints; ``None``: unrecorded) are not the current one.

    The restored rounds keep their posteriors, intervals, corrections and decisions: they describe
    the model that fitted them. Rounds run after loading fit with the current model.
    """
    from pytyche.bcf.fingerprint import MODEL_HISTORY, MODEL_VERSION

    versions = sorted({"unrecorded" if m is None else str(m.get("version")) for m in models})
    if not models or versions == [str(MODEL_VERSION)]:
        return
    warnings.warn(
        f"The save at {str(root)!r} holds rounds fitted by model version {', '.join(versions)} "
        "('unrecorded': saved before model fingerprints, versions 1 to 3 by date); this pytyche fits "
        f"model version {MODEL_VERSION} ({MODEL_HISTORY[MODEL_VERSION]}). The restored rounds' intervals, "
        "corrections and decisions describe the model that fitted them; rounds run from here on fit "
        f"with version {MODEL_VERSION} (SequentialExperiment.round_models lists each round's).",
        SavedModelWarning,
        stacklevel=4,  # warn_other_model <- load_experiment <- SequentialExperiment.load <- the caller
    )


def _ship_spending_of(cfg: Mapping[str, Any], root: Any) -> Any:
    """The saved SHIP spending: its method (absent: ``"none"``) and whether it splits over the arms
    (absent: ``False``, the rule of saves from before the split)."""
    method = cfg.get("ship_spending", LEGACY_SHIP_SPENDING)
    over_arms = cfg.get("ship_spending_over_arms", False)
    if not isinstance(over_arms, bool):
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: 'ship_spending_over_arms' in 'config.json' is {over_arms!r}, not a bool.")
    try:
        return ShipSpending(method, over_arms=over_arms)
    except ValueError as exc:
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: 'ship_spending' in 'config.json' is {method!r} ({exc})") from None


def _skip_analysis_of(cfg: Mapping[str, Any], root: Any) -> tuple[str, ...]:
    value = cfg.get("skip_analysis", ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: 'skip_analysis' in 'config.json' is {value!r}, not a list of step names.")
    return tuple(value)


class SaveFormatError(ValueError):
    """A save directory that cannot be read: missing, partial, corrupt or written by a newer pytyche."""


# ---- JSON helpers ---------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars unwrapped, non-finite floats as null, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (Decision, ClaimLevel)):
        return value.value
    return value


def _f(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover (platforms without directory fds)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class _Writer:
    """Writes files into a snapshot directory, fsyncing each and recording its checksum."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}

    def _done(self, rel: str) -> None:
        p = self.root / rel
        with open(p, "rb+") as fh:
            os.fsync(fh.fileno())
        self.files[rel] = file_sha256(p)

    def json(self, rel: str, data: Any) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(_clean(data), indent=1, allow_nan=False))
        self._done(rel)

    def parquet(self, rel: str, frame: pd.DataFrame) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(p, index=False)
        self._done(rel)

    def npz(self, rel: str, arrays: Mapping[str, np.ndarray]) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        self._done(rel)


class _Reader:
    """Reads and verifies the files of one snapshot; every failure names the file."""

    def __init__(self, root: Path, snapshot: Path, files: Mapping[str, str]) -> None:
        self.root, self.snapshot, self.files = root, snapshot, dict(files)

    def _path(self, rel: str) -> Path:
        p = self.snapshot / rel
        if rel not in self.files:
            raise SaveFormatError(f"The save at {str(self.root)!r} is inconsistent: {rel!r} is not listed in its manifest.json.")
        if not p.is_file():
            raise SaveFormatError(f"The save at {str(self.root)!r} is partial: the file {rel!r} is missing.")
        if file_sha256(p) != self.files[rel]:
            raise SaveFormatError(f"The save at {str(self.root)!r} is corrupt: the file {rel!r} does not match its checksum in manifest.json.")
        return p

    def json(self, rel: str) -> Any:
        p = self._path(rel)
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SaveFormatError(f"The save at {str(self.root)!r} is corrupt: the file {rel!r} is not valid JSON ({exc}).") from None

    def parquet(self, rel: str) -> pd.DataFrame:
        p = self._path(rel)
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SaveFormatError(f"The save at {str(self.root)!r} is corrupt: the file {rel!r} is not readable Parquet ({exc}).") from None

    def npz(self, rel: str) -> dict[str, np.ndarray]:
        p = self._path(rel)
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as exc:
            raise SaveFormatError(f"The save at {str(self.root)!r} is corrupt: the file {rel!r} is not a readable .npz ({exc}).") from None


# ---- (de)serialising the pieces ------------------------------------------------------------


def _schedule_to_dict(schedule: Any) -> dict[str, Any]:
    for kind, cls in _SCHEDULES.items():
        if type(schedule) is cls:
            d = dataclasses.asdict(schedule)
            return {"kind": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}
    return {"kind": "custom", "class": f"{type(schedule).__module__}:{type(schedule).__qualname__}"}


def _calibration_to_dict(cal: Any) -> Any:
    """An experiment's calibration (``auto`` stays auto) or a round's resolved one, whose
    correction travels whole, provenance and validation included; an auto calibration that fell
    back to raw intervals keeps the reason (``provenance["auto_fallback"]``)."""
    if cal is None:
        return None
    if cal.auto:
        return {"auto": True, "registry": cal.registry, "required": cal.required}
    if cal.skipped:
        return {"skipped": True, **({"name": cal.name, "provenance": dict(cal.provenance)} if cal.provenance else {})}
    return {"skipped": False, "name": cal.name, "correction": cal.correction.to_dict()}


def _calibration_from_dict(d: Any) -> Any:
    if d is None:
        return None
    from pytyche.calibrate import Calibration, LayeredCalibrationCorrection

    if d.get("auto"):
        return Calibration.from_sweep("auto", registry=d.get("registry"), required=bool(d.get("required", False)))
    if d.get("skipped"):
        if d.get("provenance"):
            return Calibration(skipped=True, name=d.get("name"), provenance=d["provenance"])
        return Calibration.skip()
    return Calibration.from_correction(LayeredCalibrationCorrection.from_dict(d["correction"]), name=d.get("name"))


def _thresholds_of(recommendations: Any) -> DecisionThresholds | None:
    """The thresholds a saved analysis decided with (its recommendations', all the same)."""
    return next((r.thresholds for r in recommendations.values()), None)


def _rule_to_dict(rule: Any) -> dict[str, Any]:
    return {"kind": "expected_loss", "thresholds": dataclasses.asdict(rule.thresholds),
            "stability_threshold": rule.stability_threshold, "include_population": rule.include_population}


def _rec_to_dict(r: RecommendationSummary) -> dict[str, Any]:
    d = dataclasses.asdict(r)
    d["decision"] = r.decision.value
    d["claim_level"] = r.claim_level.value
    return d


def _rec_from_dict(d: Mapping[str, Any]) -> RecommendationSummary:
    kw = dict(d)
    kw["decision"] = Decision(kw["decision"])
    kw["claim_level"] = ClaimLevel(kw["claim_level"])
    kw["thresholds"] = DecisionThresholds(**kw["thresholds"])
    kw["lift_ci"] = tuple(_f(v) for v in kw["lift_ci"])
    for name in ("expected_loss", "lift_mean", "relative_lift_mean"):
        kw[name] = _f(kw[name])
    return RecommendationSummary(**kw)


def _segment_to_dict(s: DiscoveredSegment) -> dict[str, Any]:
    return {"id": s.id, "rule": s.rule.to_dict(), "population_share": s.population_share,
            "gate_estimate": dict(s.gate_estimate), "gate_ci": {t: list(v) for t, v in s.gate_ci.items()},
            "stability_score": s.stability_score, "arm_best_probabilities": dict(s.arm_best_probabilities),
            "n_visitors": s.n_visitors, "best_treatment": s.best_treatment}


def _segment_from_dict(d: Mapping[str, Any]) -> DiscoveredSegment:
    rule = rule_from_dict(d["rule"])
    return DiscoveredSegment(
        int(d["id"]), rule if isinstance(rule, AllOf) else AllOf((rule,)), float(d["population_share"]),
        {t: _f(v) for t, v in d["gate_estimate"].items()}, {t: (_f(v[0]), _f(v[1])) for t, v in d["gate_ci"].items()},
        _f(d["stability_score"]), {t: float(v) for t, v in d["arm_best_probabilities"].items()},
        int(d["n_visitors"]), d["best_treatment"],
    )


def _signal_to_dict(s: ShipSignal) -> dict[str, Any]:
    return {"treatment": s.treatment, "segment_id": s.segment_id,
            "segment_rule": None if s.segment_rule is None else s.segment_rule.to_dict(),
            "summary": _rec_to_dict(s.summary), "stability": s.stability, "rounds_sustained": s.rounds_sustained}


def _signal_from_dict(d: Mapping[str, Any]) -> ShipSignal:
    rule = None if d["segment_rule"] is None else rule_from_dict(d["segment_rule"])
    return ShipSignal(d["treatment"], d["segment_id"], rule, _rec_from_dict(d["summary"]), _f(d["stability"]), int(d["rounds_sustained"]))  # type: ignore[arg-type]


def _tree_to_dict(tree: PolicyTreeResult | None) -> Any:
    if tree is None:
        return None
    d = tree_to_dict(TreePolicy(tree, tree.allocation_map))
    return {"features": d["features"], "nodes": d["nodes"], "treatments": list(tree.treatments),
            "stability_scores": {str(k): v for k, v in tree.stability_scores.items()},
            "stability_method": tree.stability_method}


def _tree_from_dict(
    d: Any, segments: tuple[DiscoveredSegment, ...], observed: ObservedExperimentData, stability_method: str
) -> PolicyTreeResult | None:
    """The saved tree; ``stability_method`` (the experiment's) where the save records none for the tree."""
    if d is None:
        return None
    split = SplitTree(d["features"], d["nodes"])
    alloc = {int(n["id"]): dict(n["allocation"]) for n in d["nodes"] if n.get("leaf") and n.get("allocation") is not None}
    cats = {f["name"]: list(f["categories"]) for f in d["features"] if f["type"] == "categorical"}
    return PolicyTreeResult(
        split, segments, alloc, {int(k): _f(v) for k, v in d["stability_scores"].items()}, observed,
        tuple(d["treatments"]), split.feature_names, cats, d.get("stability_method", stability_method),
    )


def _posterior_summary(posterior: Any) -> dict[str, Any]:
    from pytyche.experiment.engine import p_best

    lo, hi = posterior.ate_interval(0.9)
    return {"class": type(posterior).__name__, "treatments": list(posterior.treatments),
            "ate_mean": np.asarray(posterior.ate_samples, dtype=np.float64).mean(axis=0), "ate_interval_90": [lo, hi],
            "p_best": p_best(posterior), "n_draws": int(posterior.outcome_samples.shape[1])}


def _posterior_arrays(posterior: Any) -> dict[str, np.ndarray]:
    out = {"outcome_samples": posterior.outcome_samples}
    if posterior.sigma_samples is not None:
        out["sigma_samples"] = posterior.sigma_samples
    if posterior.decomposition is not None:
        d = posterior.decomposition
        out.update(p_samples=d.p_samples, sev_samples=d.sev_samples, rpv_cate_samples=d.rpv_cate_samples)
    return out


def _posterior_from(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], observed: ObservedExperimentData, calibration: Any) -> Any:
    from pytyche.bcf import results
    from pytyche.bcf.config import GPUBCFConfig

    cls = {"ContinuousBCFResult": results.ContinuousBCFResult, "BinaryBCFResult": results.BinaryBCFResult,
           "HurdleBCFResult": results.HurdleBCFResult}[meta["class"]]
    kw: dict[str, Any] = dict(
        observed=observed, treatments=tuple(meta["treatments"]), config=GPUBCFConfig(**meta["config"]),
        outcome_samples=arrays["outcome_samples"], n_chains=int(meta["n_chains"]),
        sigma_samples=arrays.get("sigma_samples"), calibration=calibration, fit_info=meta.get("fit_info", {}),
    )
    if "p_samples" in arrays:
        kw["decomposition"] = DecompositionSamples(arrays["p_samples"], arrays["sev_samples"], arrays["rpv_cate_samples"])
    if meta.get("pooling") is not None:
        kw["pooling"] = meta["pooling"]
    return cls(**kw)


def _frame_of(obs: ObservedExperimentData) -> list[pd.DataFrame]:
    return [v.visitors for v in obs.variants]


def _truth_frame(t: CalibrationTruth) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {"cluster_id": np.asarray(t.cluster_ids)}
    for j, name in enumerate(t.treatments):
        cols[f"expected_outcome__{j}"] = t.expected_outcome[:, j]
        if t.p is not None:
            cols[f"p__{j}"] = t.p[:, j]
            cols[f"m__{j}"] = t.m[:, j]  # type: ignore[index]
        if t.latent_expected_outcome is not None:
            cols[f"latent_expected_outcome__{j}"] = t.latent_expected_outcome[:, j]
    return pd.DataFrame(cols)


def _truth_from(frame: pd.DataFrame, treatments: list[str], hurdle: bool) -> CalibrationTruth:
    k = len(treatments)
    eo = np.column_stack([frame[f"expected_outcome__{j}"].to_numpy() for j in range(k)])
    p = np.column_stack([frame[f"p__{j}"].to_numpy() for j in range(k)]) if hurdle else None
    m = np.column_stack([frame[f"m__{j}"].to_numpy() for j in range(k)]) if hurdle else None
    latent = (
        np.column_stack([frame[f"latent_expected_outcome__{j}"].to_numpy() for j in range(k)])
        if "latent_expected_outcome__0" in frame
        else None
    )
    return CalibrationTruth(eo, tuple(treatments), frame["cluster_id"].to_numpy(), p, m, latent)


# ---- save -----------------------------------------------------------------------------------


def _snapshots(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and p.name.startswith("snapshot-")]


#: the arguments of :meth:`SequentialExperiment.save` (what the directory holds is checked by hand);
#: ``path`` is also :meth:`SequentialExperiment.load`'s
SAVE_CONSTRAINTS: dict[str, Any] = {
    "path": InstanceOf((str, os.PathLike), "a directory path"),
    "draws": InstanceOf(bool, "a bool"),
}


def save_experiment(exp: "SequentialExperiment", path: str | os.PathLike[str], *, draws: bool = False) -> Path:
    """Write ``exp`` to the directory ``path`` atomically (see the module docstring).

    Raises
    ------
    TypeError
        When ``path`` is not a path, or a plan holds an operator-defined policy without
        ``to_dict``/``from_dict`` (the message names the cell).
    ValueError
        When ``path`` is an existing non-empty directory that is not a pytyche save.
    """
    from pytyche import __version__

    w = "SequentialExperiment.save"
    validate(dict(path=path, draws=draws), SAVE_CONSTRAINTS, w)
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise invalid("path", w, "a directory", f"the file {str(root)!r}", show=False)
    if root.is_dir() and any(root.iterdir()) and not (root / CURRENT).is_file() and not _snapshots(root):
        raise violated(
            "'path' parameter", w,
            f"be a new or empty directory, or an earlier save. Got {str(root)!r}, which holds other files.",
        )
    root.mkdir(parents=True, exist_ok=True)
    history = exp._history
    uid = uuid.uuid4().hex[:12]
    snap_name = f"snapshot-{len(history):05d}-{uid}"
    tmp = root / f".tmp-{snap_name}"
    try:
        wr = _Writer(tmp)
        tmp.mkdir()
        wr.json("config.json", {
            "treatments": list(exp._treatments),
            "schedule": _schedule_to_dict(exp._schedule),
            "cells": None if exp._cells0 is None else [cell_to_dict(c, w) for c in exp._cells0],
            "min_control_weight": exp._min_control_weight,
            "min_explore_weight": exp._min_explore_weight,
            "max_segment_depth": exp._max_segment_depth,
            "min_segment_share": exp._min_segment_share,
            "calibration": _calibration_to_dict(exp._calibration),
            "graduation_rule": _rule_to_dict(exp._graduation_rule) if type(exp._graduation_rule) is ExpectedLossRule
            else {"kind": "custom", "class": f"{type(exp._graduation_rule).__module__}:{type(exp._graduation_rule).__qualname__}"},
            "seed": exp._seed,
            "progress": exp._progress,
            "bcf_config": None if exp._bcf_config is None else dataclasses.asdict(exp._bcf_config),
            "stability_method": exp._stability_method,
            "ship_spending": exp._ship_spending.method,
            "ship_spending_over_arms": exp._ship_spending.over_arms,
            "skip_analysis": list(exp._skip_analysis),
        })
        rounds_meta = []
        for r, (obs, e) in enumerate(zip(exp._round_data, history)):
            files = []
            for j, frame in enumerate(_frame_of(obs)):
                rel = f"data/round_{r:03d}/variant_{j}.parquet"
                wr.parquet(rel, frame)
                files.append(rel)
            truth = None
            if exp._round_truths:
                t = exp._round_truths[r]
                rel = f"truth/round_{r:03d}.parquet"
                wr.parquet(rel, _truth_frame(t))
                truth = {"file": rel, "treatments": list(t.treatments), "hurdle": t.p is not None}
            summary_rel = f"summaries/cate_{r:03d}.parquet"
            wr.parquet(summary_rel, e.analysis.cate_frame(0.9) if e.posterior is not None else e.analysis.cate_summary)
            post: dict[str, Any] = {"summary": _posterior_summary(e.posterior) if e.posterior is not None else None}
            if e.posterior is not None:  # the round's resolved calibration (auto's pick, or its fallback)
                post["calibration"] = _calibration_to_dict(e.posterior.calibration)
            if draws and e.posterior is not None:
                rel = f"draws/round_{r:03d}.npz"
                wr.npz(rel, _posterior_arrays(e.posterior))
                p = e.posterior
                post.update(file=rel, **{"class": type(p).__name__}, treatments=list(p.treatments), n_chains=p.n_chains,
                            config=dataclasses.asdict(p.config), fit_info=dict(p.fit_info), pooling=getattr(p, "pooling", None))
            elif e.posterior is None and getattr(e, "_saved_posterior", None) is not None:
                post["summary"] = e._saved_posterior  # type: ignore[attr-defined]
                if getattr(e, "_saved_calibration", None) is not None:
                    post["calibration"] = e._saved_calibration  # type: ignore[attr-defined]
            a = e.analysis
            rounds_meta.append({
                "round_idx": e.round_idx,
                "overridden": e.round.overridden,
                "data": {"files": files, "variants": list(obs.variant_names), "experiment_id": obs.experiment_id,
                         "metric": obs.metric, "round_idx": obs.round_idx,
                         "schema": {"feature_types": dict(obs.schema.feature_types), "outcome": obs.schema.outcome,
                                    "id_column": obs.schema.id_column}},
                "truth": truth,
                "plan": plan_to_dict(e.round.plan),
                "next_plan": plan_to_dict(e.next_plan),
                "fit_seed": e.fit_seed,
                "cell_scores": [dataclasses.asdict(s) for s in e.cell_scores],
                "ship_signals": [_signal_to_dict(s) for s in e.ship_signals],
                "srm": None if e.srm is None else e.srm.to_dict(),
                "policy_value": None if e.policy_value is None else e.policy_value.to_dict(),
                "truth_comparison": None if e.truth_comparison is None else dataclasses.asdict(e.truth_comparison),
                "analysis": {
                    "claim_level": a.claim_level.value,
                    "recommendations": {t: _rec_to_dict(s) for t, s in a.recommendations.items()},
                    "segment_recommendations": {str(k): {t: _rec_to_dict(s) for t, s in v.items()} for k, v in a.segment_recommendations.items()},
                    "segments": [_segment_to_dict(s) for s in a.segments],
                    "policy_tree": _tree_to_dict(a.policy_tree),
                },
                "cate_summary": summary_rel,
                "posterior": post,
                "model": exp._round_models[r] if r < len(exp._round_models) else None,
            })
        wr.json("history.json", {"rounds": rounds_meta})
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "pytyche_version": __version__,
                    "n_rounds": len(history), "files": dict(wr.files)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        with open(tmp / "manifest.json", "rb+") as fh:
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        final = root / snap_name
        os.rename(tmp, final)
        _fsync_dir(root)
        pointer = root / f".{CURRENT}.{uid}"
        pointer.write_text(json.dumps({"snapshot": snap_name}))
        with open(pointer, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer, root / CURRENT)  # the commit point
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _snapshots(root):
        if old.name != snap_name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.iterdir():
        if stale.name.startswith(".tmp-snapshot-") or stale.name.startswith(f".{CURRENT}."):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
    return root


# ---- load -----------------------------------------------------------------------------------


def _open(root: Path) -> _Reader:
    w = "SequentialExperiment.load"
    if not root.is_dir():
        raise FileNotFoundError(f"The 'path' parameter of {w} names no directory: {str(root)!r}.")
    cur = root / CURRENT
    if not cur.is_file():
        raise SaveFormatError(
            f"The save at {str(root)!r} has no {CURRENT!r} file: it is not a pytyche save, or its first save never completed."
        )
    try:
        snap = json.loads(cur.read_text())["snapshot"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: the file {CURRENT!r} does not name a snapshot.") from None
    snapshot = root / str(snap)
    mpath = snapshot / "manifest.json"
    if not mpath.is_file():
        raise SaveFormatError(f"The save at {str(root)!r} is partial: the file {str(Path(snap) / 'manifest.json')!r} is missing.")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: the file {str(Path(snap) / 'manifest.json')!r} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SaveFormatError(f"The save at {str(root)!r} is not a pytyche experiment: manifest.json has format {manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r}.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: manifest.json has format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise SaveFormatError(
            f"The save at {str(root)!r} was written by a newer pytyche ({manifest.get('pytyche_version')}, format version {version}); "
            f"this pytyche reads format version {FORMAT_VERSION}. Upgrade pytyche to load it."
        )
    return _Reader(root, snapshot, manifest.get("files", {}))


def load_experiment(
    path: str | os.PathLike[str],
    generator: Any,
    *,
    schedule: Any = None,
    graduation_rule: Any = None,
    policies: Mapping[str, type] | Sequence[type] | None = None,
) -> "SequentialExperiment":
    """Restore a :class:`SequentialExperiment` saved by :func:`save_experiment`.

    Parameters
    ----------
    path
        The save directory.
    generator
        The data source for the rounds to come (not saved).
    schedule, graduation_rule
        Required only when the saved experiment used an operator-defined schedule or graduation
        rule (those are not saved); they override the saved ones when given.
    policies
        The registry resolving operator-defined policies in saved plans (a ``name -> class``
        mapping or a sequence of classes); a save never imports code it names.

    Raises
    ------
    SaveFormatError
        A ``ValueError`` for a corrupt, partial or newer-format save (naming the file).
    FileNotFoundError
        When ``path`` is not a directory.
    """
    from pytyche.experiment.sequential import SequentialExperiment

    w = "SequentialExperiment.load"
    check(path, "path", w, SAVE_CONSTRAINTS["path"])
    root = Path(path)
    rd = _open(root)
    cfg = rd.json("config.json")
    hist = rd.json("history.json")
    try:
        sched_d = dict(cfg["schedule"])
        kind = sched_d.pop("kind")
        if schedule is None:
            if kind == "custom":
                raise ValueError(
                    f"The 'schedule' parameter of {w} is required: the save used the operator-defined schedule "
                    f"{sched_d.get('class')!r}, which is not saved."
                )
            if kind == "explicit":
                sched_d["sizes"] = tuple(sched_d["sizes"])
            schedule = _SCHEDULES[kind](**sched_d)
        rule_d = cfg["graduation_rule"]
        if graduation_rule is None:
            if rule_d["kind"] == "custom":
                raise ValueError(
                    f"The 'graduation_rule' parameter of {w} is required: the save used the operator-defined rule "
                    f"{rule_d.get('class')!r}, which is not saved."
                )
            graduation_rule = ExpectedLossRule(DecisionThresholds(**rule_d["thresholds"]), rule_d["stability_threshold"], rule_d["include_population"])
        bcf_config = None
        if cfg["bcf_config"] is not None:
            from pytyche.bcf.config import GPUBCFConfig

            bcf_config = GPUBCFConfig(**cfg["bcf_config"])
        calibration = _calibration_from_dict(cfg["calibration"])
        stability_method = cfg.get("stability_method", LEGACY_STABILITY_METHOD)  # absent: a save from before the key
        spending = _ship_spending_of(cfg, root)  # absent: a save from before spending / the arm split
        exp = SequentialExperiment(
            generator=generator,
            schedule=schedule,
            treatments=cfg["treatments"],
            cells=None if cfg["cells"] is None else [cell_from_dict(c, w, policies) for c in cfg["cells"]],
            min_control_weight=cfg["min_control_weight"],
            min_explore_weight=cfg["min_explore_weight"],
            max_segment_depth=cfg["max_segment_depth"],
            min_segment_share=cfg["min_segment_share"],
            calibration=calibration,
            graduation_rule=graduation_rule,
            seed=cfg["seed"],
            progress=cfg["progress"],
            bcf_config=bcf_config,
            stability_method=stability_method,
            ship_spending=spending,
            skip_analysis=_skip_analysis_of(cfg, root),  # absent: a save from before the key
        )
    except (KeyError, TypeError) as exc:
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: the file 'config.json' lacks or mistypes {exc}.") from None

    treatments = tuple(cfg["treatments"])
    round_data: list[ObservedExperimentData] = []
    truths: list[CalibrationTruth] = []
    history: list[Experiment] = []
    designs: list[pd.DataFrame] = []  # each round's design propensities, computed once
    models: list[dict[str, Any] | None] = []  # each round's model fingerprint (None: saved before them)
    try:
        for meta in hist["rounds"]:
            r = int(meta["round_idx"])
            d = meta["data"]
            sch = d["schema"]
            schema = VisitorSchema(sch["feature_types"], sch["outcome"], sch.get("id_column"))
            variants = tuple(VariantData(name, rd.parquet(rel)) for name, rel in zip(d["variants"], d["files"]))
            obs = ObservedExperimentData(d["experiment_id"], d["metric"], variants, schema, d["round_idx"])
            round_data.append(obs)
            truth = None
            if meta["truth"] is not None:
                truth = _truth_from(rd.parquet(meta["truth"]["file"]), meta["truth"]["treatments"], meta["truth"]["hurdle"])
                truths.append(truth)
            plan = plan_from_dict(meta["plan"], policies)
            designs.append(round_design(obs, plan))
            model = meta.get("model")
            if model is not None and not (isinstance(model, dict) and isinstance(model.get("version"), int)):
                raise SaveFormatError(f"The save at {str(root)!r} is corrupt: round {r}'s 'model' in 'history.json' is {model!r}, not a model fingerprint.")
            models.append(model)
            cumulative, positions = _build_cumulative(round_data, control=treatments[0], designs=designs)
            cum_truth = cumulative_truth(truths, positions, cumulative.variant_names) if truths else None
            next_plan = plan_from_dict(meta["next_plan"], policies)
            posterior = None
            pmeta = meta["posterior"]
            if pmeta.get("file"):
                round_cal = _calibration_from_dict(pmeta["calibration"]) if "calibration" in pmeta else calibration
                posterior = _posterior_from(pmeta, rd.npz(pmeta["file"]), cumulative, round_cal)
            a = meta["analysis"]
            segments = tuple(_segment_from_dict(s) for s in a["segments"])
            summary = rd.parquet(meta["cate_summary"])
            summary.attrs["level"] = 0.9
            km1 = len(cumulative.variant_names) - 1
            cate_mean = summary["cate_mean"].to_numpy(dtype=np.float64).reshape(cumulative.n_visitors, km1)
            recommendations = {t: _rec_from_dict(s) for t, s in a["recommendations"].items()}
            analysis = AnalysisResult(
                cate_per_visitor=cumulative.aligned(cate_mean),
                segments=segments,
                posterior=posterior,
                recommendations=recommendations,
                policy_tree=_tree_from_dict(a["policy_tree"], segments, cumulative, stability_method),
                segment_recommendations={int(k): {t: _rec_from_dict(s) for t, s in v.items()} for k, v in a["segment_recommendations"].items()},
                comparison=None,
                claim_level=ClaimLevel(a["claim_level"]),
                cate_summary=summary,
                thresholds=_thresholds_of(recommendations),
            )
            cs = [CellScore(**{**c, "mean_outcome": _f(c["mean_outcome"]), "se": _f(c["se"])}) for c in meta["cell_scores"]]
            tc = meta["truth_comparison"]
            e = Experiment(
                round=Round(r, plan, obs, truth, positions[-1], bool(meta["overridden"])),
                observed=cumulative,
                posterior=posterior,
                analysis=analysis,
                cell_scores=tuple(cs),
                next_plan=next_plan,
                truth_comparison=None if tc is None else TruthComparison(**{k: _f(v) for k, v in tc.items()}),
                cumulative_truth=cum_truth,
                ship_signals=tuple(_signal_from_dict(s) for s in meta["ship_signals"]),
                fit_seed=int(meta["fit_seed"]),
                positions=tuple(positions),
                srm=None if meta["srm"] is None else SRMResult.from_dict(meta["srm"]),
                policy_value=None if meta["policy_value"] is None else PolicyValue.from_dict(meta["policy_value"]),
            )
            object.__setattr__(e, "_saved_posterior", pmeta.get("summary"))
            object.__setattr__(e, "_saved_calibration", pmeta.get("calibration"))
            history.append(e)
    except SaveFormatError:
        raise
    except (KeyError, TypeError, IndexError) as exc:
        raise SaveFormatError(f"The save at {str(root)!r} is corrupt: the file 'history.json' lacks or mistypes {exc}.") from None

    exp._round_data = round_data
    exp._round_truths = truths
    exp._round_designs = designs
    exp._round_models = models
    warn_other_model(models, root)
    exp._cumulative = history[-1].observed if history else None
    exp._next_plan = history[-1].next_plan if history else None
    exp._history = history
    return exp
