"""One sweep task: a full uncalibrated sequential experiment on a simulated DGP.

:func:`run_task` is the default task runner of the sweep driver. It builds the task's generator
from ``dgps.registry``, runs a :class:`~pytyche.experiment.SequentialExperiment` to completion
with the task's BCF configuration (the BCF seed and the experiment's master seed are the task's
seed), and for every round measures

- coverage: :func:`pytyche.calibrate.sbc.coverage_records` of the round's posterior against the
  cumulative planted truth, for each of the task's families and nominal levels (raw intervals,
  so the records can fit a correction; when the spec names a calibration artifact, as a
  validation sweep does, also the calibrated intervals, in records marked ``calibrated``);
- the round's :class:`~pytyche.experiment.TruthComparison` (oracle gap, policy accuracy, CATE
  RMSE, revenue per visitor under the policy, uniform allocation and the oracle);
- decisions: every SHIP / STOP / graduation / credible-segment claim of the round for every arm
  (and segment), fired or not, judged against the cumulative truth
  (:func:`sweeps.decisions.decision_rows`, under the task's decision thresholds).

The spec's ``experiment`` section reaches the experiment through :func:`experiment_kwargs`:
its ``thresholds`` become the graduation rule ``ExpectedLossRule(DecisionThresholds(...))``, the
other keys (``stability_method``, the policy-tree and weight settings) pass through as given.

Families a round cannot measure are left out of that round: ``gate`` needs a policy tree with
segments, ``conversion_effect``/``severity_effect`` a hurdle posterior and hurdle truth.

A task runner is any picklable callable ``runner(task) -> TaskResult``;
:mod:`sweeps.synthetic` has a planted-coverage one that needs no fit.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeps.shards import TRUTH_METRICS

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.spec import Task

__all__ = ["TaskResult", "build_experiment", "experiment_kwargs", "round_rows", "run_task", "task_thresholds"]


@dataclass(frozen=True)
class TaskResult:
    """What a task runner returns for one task.

    Attributes
    ----------
    task_id
        The task's :attr:`~sweeps.spec.Task.task_id`.
    records
        Row dicts: ``kind="calibration"`` rows carry the
        :class:`~pytyche.contracts.CalibrationRecord` fields, ``kind="truth"`` rows the
        truth-comparison metrics of one round (``round_idx``, ``sample_size`` and the
        metrics of :data:`sweeps.shards.TRUTH_METRICS`), ``kind="decision"`` rows one claim of
        one round (columns :data:`sweeps.shards.DECISION_SCHEMA`).
    seconds
        Wall time of the task in the worker.
    n_rounds
        Rounds the experiment ran.
    compiles
        JAX backend compilations during the task (filled in by the worker; ``None`` if unknown).
    worker
        ``host:pid`` of the worker process (filled in by the worker).
    refused
        Why the model refused the task's data (a :class:`pytyche.InsufficientDataError`, e.g. an
        arm without converters), with the round it happened in; ``None`` when every round ran.
        The task still finishes: its rows are those of the rounds before the refusal (none when
        the first round is refused), and the refusal is kept beside its shards.
    """

    task_id: str
    records: tuple[Mapping[str, Any], ...]
    seconds: float
    n_rounds: int = 0
    compiles: int | None = None
    worker: str = ""
    refused: str | None = None




def _families_for(experiment: Any, wanted: tuple[str, ...]) -> tuple[list[str], Any]:
    """The families this round can measure, and the segments for ``gate``."""
    posterior, truth = experiment.posterior, experiment.cumulative_truth
    tree = experiment.policy_tree
    segments = tree if tree is not None and len(tree.segments) > 0 else None
    hurdle = getattr(posterior, "decomposition", None) is not None and truth.p is not None
    out = []
    for fam in wanted:
        if fam == "gate" and segments is None:
            continue
        if fam in ("conversion_effect", "severity_effect") and not hurdle:
            continue
        out.append(fam)
    return out, segments


def task_thresholds(task: "Task") -> Any:
    """The task's :class:`~pytyche.contracts.DecisionThresholds`: the spec's
    ``experiment.thresholds`` over the defaults."""
    from pytyche.contracts.results import DecisionThresholds

    return DecisionThresholds(**task.experiment_dict.get("thresholds", {}))


def experiment_kwargs(task: "Task") -> dict[str, Any]:
    """The :class:`~pytyche.experiment.SequentialExperiment` keyword arguments of the task's
    ``experiment`` section: ``thresholds`` becomes ``graduation_rule=ExpectedLossRule(...)``
    (absent: the experiment's default rule), every other key passes through."""
    kwargs = task.experiment_dict
    if "thresholds" in kwargs:
        from pytyche.experiment import ExpectedLossRule

        kwargs.pop("thresholds")
        kwargs["graduation_rule"] = ExpectedLossRule(task_thresholds(task))
    return kwargs


def round_rows(task: "Task", experiment: Any) -> list[dict[str, Any]]:
    """Coverage rows, the truth-comparison row and the decision rows of one round (sim mode)."""
    from pytyche.calibrate.sbc import coverage_records

    from sweeps.decisions import decision_rows

    truth = experiment.cumulative_truth
    if truth is None:
        raise ValueError(
            f"The generator of template {task.template!r} returned no truth: a sweep task needs a sim-mode generator."
        )
    families, segments = _families_for(experiment, task.families)
    rows: list[dict[str, Any]] = []
    # raw intervals always (they fit corrections); with an artifact on-path (a validation sweep)
    # also the calibrated ones, marked calibrated=True, from the same posterior
    modes = (False, True) if task.calibration is not None else (False,)
    for use_calibration in modes if families else ():
        for rec in coverage_records(
            experiment.posterior, truth, levels=task.levels, families=families, segments=segments,
            replication=task.replication, round_idx=experiment.round_idx, template=task.template,
            task_id=task.task_id, use_calibration=use_calibration,
        ):
            rows.append({"kind": "calibration", **rec.to_dict()})
    tc = experiment.truth_comparison
    if tc is not None:
        row: dict[str, Any] = {"kind": "truth", "round_idx": experiment.round_idx, "sample_size": experiment.observed.n_visitors}
        for name in TRUTH_METRICS:
            value = getattr(tc, name)
            row[name] = None if value is None else float(value)
        rows.append(row)
    # the round's own thresholds: the task's, with the SHIP gate's share of the run's error
    thresholds = experiment.analysis.thresholds or task_thresholds(task)
    rows.extend(decision_rows(experiment, thresholds))
    return rows


def build_experiment(task: "Task") -> Any:
    """The task's :class:`~pytyche.experiment.SequentialExperiment` (not yet run)."""
    from dgps.registry import make_generator
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.experiment import SequentialExperiment

    generator = make_generator(task.template, seed=task.seed, **task.params_dict)
    treatments = task.treatments if task.treatments is not None else tuple(generator.treatments)
    calibration = None
    if task.calibration is not None:
        from pytyche.calibrate import Calibration

        calibration = Calibration.from_sweep(task.calibration)
    config = GPUBCFConfig(**{**task.bcf_dict, "seed": task.seed})
    return SequentialExperiment(
        generator=generator,
        schedule=task.schedule.build(),
        treatments=list(treatments),
        calibration=calibration,
        seed=task.seed,
        bcf_config=config,
        **experiment_kwargs(task),
    )


def run_task(task: "Task") -> TaskResult:
    """Run one task: a full sequential experiment, uncalibrated unless the spec names an artifact.

    Parameters
    ----------
    task
        The task (see :class:`sweeps.spec.Task`).

    Returns
    -------
    TaskResult
        Coverage, truth-comparison and decision rows of every round, and the wall time.
    """
    from pytyche import InsufficientDataError
    from pytyche.experiment import UncalibratedWarning

    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    n_rounds = 0
    refused = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncalibratedWarning)
        exp = build_experiment(task)
        try:
            for experiment in exp:
                rows.extend(round_rows(task, experiment))
                n_rounds += 1
        except InsufficientDataError as err:  # a dataset the model cannot fit, not a bug
            refused = f"round {n_rounds}: {err}"
    return TaskResult(task_id=task.task_id, records=tuple(rows), seconds=time.perf_counter() - t0, n_rounds=n_rounds,
                      refused=refused)
