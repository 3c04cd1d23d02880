"""The SequentialExperiment state machine -- the public round-by-round loop (docs/concepts.md, *Sequential experiment*).

Each :meth:`~SequentialExperiment.advance` (equivalently ``next(exp)``) runs one round: size the
round from the schedule, hand the current :class:`NextRoundPlan` to the generator, fit the BCF
(the joint hurdle BCF for revenue-type outcomes, see ``pt.fit``) on the CUMULATIVE data, analyze,
score the round's cells, ask the recommendation engine for the next plan, and (sim mode) evaluate
against the cumulative ground truth. All state commits atomically at the end of the round -- a
failed step leaves history untouched.

The cumulative row order is variant-major: all rounds of the first-seen variant, then all rounds
of the next. Per-round artifacts aligned to a round's own concatenation (truth arrays, the cell
column) are re-indexed into that order via the position map
:func:`~pytyche.experiment.cumulative._build_cumulative` returns.
"""

from __future__ import annotations

import inspect
import numbers
import operator
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pytyche._validation import InstanceOf, Interval, check_float, check_int, invalid, validate, violated, wrong_type
from pytyche.analysis.policy_tree import POLICY_TREE_CONSTRAINTS
from pytyche.calibrate.warnings import UncalibratedWarning, warn_uncalibrated_once
from pytyche.contracts.observed import CELL_COLUMN, ObservedExperimentData
from pytyche.contracts.results import CREDIBLE_STABILITY, DEFAULT_STABILITY_METHOD, DecisionThresholds, credible_segments
from pytyche.contracts.truth import CalibrationTruth
from pytyche.bcf.fingerprint import model_fingerprint
from pytyche.experiment.cells import Cell, validate_cells
from pytyche.experiment.cumulative import _build_cumulative, cumulative_truth, design_propensities, round_design
from pytyche.experiment.engine import cold_start_plan, recommend
from pytyche.experiment.graduation import ExpectedLossRule, GraduationCandidate, GraduationRule, sustain
from pytyche.experiment.plan import NextRoundPlan
from pytyche.experiment.policy_value import DEFAULT_FOLDS, PolicyTreeLearner, estimate_policy_value
from pytyche.experiment.rounds import Experiment, Round, compare_to_truth, recommended_arms, score_cells
from pytyche.experiment.summary import render_summary
from pytyche.experiment.srm import SampleRatioMismatchWarning, srm_check, warn_srm
from pytyche.experiment.schedules import Schedule, is_exhausted
from pytyche.experiment.spending import DEFAULT_SHIP_SPENDING, ShipSpending
from pytyche.experiment.spending import ship_spending as ship_spending_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.bcf.request import FitRequest
    from pytyche.calibrate import Calibration

__all__ = [
    "ANALYSIS_STEPS",
    "Generator",
    "PreparedRound",
    "SEQUENTIAL_CONSTRAINTS",
    "SampleRatioMismatchWarning",
    "SequentialExperiment",
    "UncalibratedWarning",
    "sequential_experiment",
]

#: The single data-source contract. The loop invokes ``generator(round_idx, plan)`` at the start
#: of each round and receives ``(observed, truth)`` -- ``truth`` is non-None in sim mode and
#: ``None`` in real-data mode (the mode may not flip between rounds). Every returned visitors
#: frame must carry the reserved ``cell`` column recording each visitor's allocated cell id, and
#: generators assigning adaptively record per-visitor propensities in the reserved propensity
#: columns (``propensity`` at K = 2, ``propensity_1..propensity_{K-1}`` at K >= 3).
#: ``plan.n_visitors`` is the round's size from the schedule; ``plan.treatments`` the universe.
#: In sim mode the truth has one row per visitor in the round's own variant-major order and
#: names (at least) every treatment of the universe the round's data or earlier rounds hold.
Generator = Callable[[int, NextRoundPlan], tuple[ObservedExperimentData, CalibrationTruth | None]]

_WHERE = "SequentialExperiment"

#: the scalar settings of :class:`SequentialExperiment` (checked at construction; the generator,
#: schedule, treatments, cells, calibration, graduation rule and fit config are checked by hand,
#: and so is the rule that the two weight floors sum to below 1)
SEQUENTIAL_CONSTRAINTS: dict[str, Any] = {
    "min_control_weight": Interval(numbers.Real, 0.0, 1.0, closed="left", loose=True),
    "min_explore_weight": Interval(numbers.Real, 0.0, 1.0, closed="left", loose=True),
    "max_segment_depth": Interval(numbers.Integral, 1, None, loose=True),
    "min_segment_share": Interval(numbers.Real, 0.0, 0.5, closed="right", loose=True),
    "seed": Interval(numbers.Integral, 0, None, loose=True),
    "progress": InstanceOf((bool, np.bool_), "a bool"),
    "stability_method": POLICY_TREE_CONSTRAINTS["stability_method"],
}
_SCOPE = """
    Scope: this surface assumes designed experiments -- the operator emits the assignment rules
    (the plan's cells and policies), the platform assigns per those rules, and per-visitor
    propensities are known and recorded. Heavily-confounded observational inference is out of
    scope for this API; for that setting, consider econml or DoubleML.
"""


#: the analysis steps a :class:`SequentialExperiment` can skip (``skip_analysis``): ``"stability"``,
#: the policy tree's bootstrap stability scores (every score NaN), and ``"policy_value"``, the
#: off-policy value of the recommended policy (``Experiment.policy_value`` None)
ANALYSIS_STEPS = ("stability", "policy_value")


@dataclass(frozen=True, eq=False)
class PreparedRound:
    """A round's data and its fit's inputs, between :meth:`SequentialExperiment.prepare_round`
    and :meth:`SequentialExperiment.finish_round`.

    Attributes
    ----------
    round_idx
        The round (the experiment's next).
    plan
        The round's plan (the engine's, or the override's).
    overridden
        Whether the plan is an operator override.
    observed
        The round's own data, as the generator returned it (validated).
    truth
        The round's ground truth (sim mode), else ``None``.
    cumulative
        Every round's data so far, this one included (variant-major): what the round fits.
    cumulative_truth
        The truth aligned to ``cumulative`` (sim mode), else ``None``.
    positions
        Each round's rows in ``cumulative`` (``_build_cumulative``'s position map).
    fit_seed
        The round's fit seed (derived from the experiment's seed).
    request
        The fit, not run: a :class:`~pytyche.bcf.request.FitRequest` (its ``data``, ``config``
        with ``seed=fit_seed``, ``batch_key()``); ``request.fit()`` runs it alone, and
        :func:`~pytyche.bcf.request.fit_batch` beside other rounds' requests.
    """

    round_idx: int
    plan: NextRoundPlan
    overridden: bool
    observed: ObservedExperimentData
    truth: CalibrationTruth | None
    cumulative: ObservedExperimentData
    cumulative_truth: CalibrationTruth | None
    positions: tuple[np.ndarray, ...]
    fit_seed: int
    request: "FitRequest"
    _owner: Any = field(repr=False)
    _rounds: tuple[ObservedExperimentData, ...] = field(repr=False)
    _truths: tuple[CalibrationTruth, ...] = field(repr=False)
    _designs: tuple[Any, ...] = field(repr=False)

    def fit(self) -> Any:
        """The round's posterior, fitted alone (``request.fit()``): what :meth:`SequentialExperiment.advance` fits."""
        return self.request.fit()


def _check_skip(skip: Any, where: str) -> tuple[str, ...]:
    """``skip_analysis`` as a tuple in :data:`ANALYSIS_STEPS` order."""
    expected = f"a sequence of analysis steps, each one of {list(ANALYSIS_STEPS)}"
    if isinstance(skip, (str, bytes)) or not isinstance(skip, (Sequence, set, frozenset)):
        raise wrong_type("skip_analysis", where, expected, skip)
    unknown = [v for v in skip if v not in ANALYSIS_STEPS]
    if unknown:
        raise invalid("skip_analysis", where, expected, list(skip))
    return tuple(a for a in ANALYSIS_STEPS if a in skip)


def _derive_seed(seed: int, round_idx: int, stream: int) -> int:
    """A 31-bit seed for ``stream`` (0 = fit, 1 = policy-tree bootstrap) of round ``round_idx``."""
    state = np.random.SeedSequence([int(seed), int(round_idx), int(stream)]).generate_state(1, dtype=np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def _read_only(attr: str, doc: str) -> property:
    """A read-only property that returns ``self.<attr>``."""
    return property(operator.attrgetter(attr), doc=doc)


class SequentialExperiment:
    """Stateful round-by-round adaptive experiment loop.

    The instance is its own iterator: ``next(exp)`` (or ``exp.advance()``) runs one round and
    returns the resulting :class:`~pytyche.experiment.Experiment` snapshot; iteration raises
    ``StopIteration`` when the schedule is exhausted. Configuration is locked at construction;
    per-round cell overrides go through ``advance(cells=...)``.
    {scope}
    Parameters
    ----------
    generator
        ``generator(round_idx, plan)`` returning ``(observed, truth | None)`` -- the single
        data-source contract (:data:`Generator`). Sim-mode generators return ground truth;
        real-data generators return ``None`` (the mode may not flip between rounds). Every
        visitors frame must carry the reserved ``cell`` column recording each visitor's allocated
        cell id.
    schedule
        Per-round visitor counts (:class:`~pytyche.experiment.Schedule` protocol).
    treatments
        The full treatments universe, control first. Drops are recomputed from allocation history
        each round; dropped names never leave this universe.
    cells
        Optional round-0 cell-structure override replacing the cold-start Control/Explore 50/50
        split.
    min_control_weight
        Guaranteed Control-cell share on engine-proposed plans.
    min_explore_weight
        Guaranteed Explore-cell share on engine-proposed plans.
    max_segment_depth
        Policy-tree depth bound for the per-round analysis and recommendation.
    min_segment_share
        Minimum per-leaf population share.
    calibration
        SBC-fitted :class:`~pytyche.calibrate.Calibration` applied on-path each round, or ``None``
        (uncalibrated; warns once per instance). ``Calibration.skip()`` runs uncalibrated
        deliberately: results are labelled uncalibrated and no warning is emitted.
    graduation_rule
        ``None`` uses :class:`~pytyche.experiment.ExpectedLossRule` at its defaults.
    seed
        Master seed -- per-round fit seeds derive from it, and it seeds the policy tree's
        stability bootstrap.
    progress
        When True, each round's fit renders tqdm progress bars on stderr (passed through as
        ``fit_hurdle_bcf(progress=True)``). Default False -- silent.
    bcf_config
        Extension beyond the seed signature: the :class:`~pytyche.bcf.config.GPUBCFConfig` every
        round's fit uses (``None``: the fit's defaults). Its ``seed`` field is replaced by the
        per-round seed derived from ``seed``. Sweeps and tests use it to size the MCMC.
    stability_method
        Extension beyond the seed signature: how the per-round policy tree scores its segments'
        stability (``posterior.analyze(stability_method=...)``), and so which segments the
        default graduation rule and :meth:`has_credible_segments` treat as credible.
        ``"posterior"`` (default, docs/concepts.md's *Stability*: each bootstrap tree refitted on
        one posterior draw of the CATEs; see :func:`pytyche.analysis.policy_tree.fit_policy_tree`)
        or ``"means"`` (bootstrap of the posterior-mean CATEs: the earlier default, which a save
        that records no method loads with). On data with no effect anywhere ``"means"`` scores
        spurious segments near 1: 75% of null round-0 runs split and scored a segment credible
        under ``"means"``, 7% under ``"posterior"`` (``bench/RESULTS.md``, null decisions;
        docs/concepts.md).
    ship_spending
        Extension beyond the seed signature: how the SHIP gate's error is spent over the rounds
        (:mod:`pytyche.experiment.spending`). ``"bonferroni"`` (default): a finite schedule of
        ``R`` rounds and ``K - 1`` treated arms ships an arm at round ``r`` only when
        ``p_positive > 1 - (1 - p_positive_min) / (R (K - 1))`` (0.9875 at 4 rounds and one
        treated arm, 0.99375 with two), so a run where no arm is better ships one falsely with
        probability at most ``1 - p_positive_min`` over the whole run when each look is
        calibrated; an open-ended
        schedule spends ``6 / (pi^2 (r + 1)^2)`` of each arm's share at round ``r``. A
        :class:`~pytyche.experiment.ShipSpending` with ``over_arms=False`` splits over the
        rounds only (the rule of saves from before the arm split). ``"none"``: every round
        uses ``p_positive_min`` (the rule before spending; a save that records no method loads
        with it). The thresholds are the graduation rule's (an
        :class:`~pytyche.experiment.ExpectedLossRule`; :class:`DecisionThresholds` defaults for
        another rule); each round's analysis and SHIP signals use the spent ones
        (``experiment.analysis.thresholds``).
    skip_analysis
        Extension beyond the seed signature: analysis steps each round skips, a subset of
        :data:`ANALYSIS_STEPS` (default none). ``"stability"``: the policy tree is fitted
        without its bootstrap, so every segment's stability score is NaN (no segment is
        credible, the engine reads the evidence at stability 0.5, the default graduation rule
        never fires on a segment). ``"policy_value"``: no off-policy value of the recommended
        policy (``experiment.policy_value`` is ``None``). For runs whose records do not read
        them (coverage sweeps); both change what a round reports, and ``"stability"`` the plans.

    Raises
    ------
    ValueError
        When ``min_control_weight + min_explore_weight`` is not below 1.0 (no room for the
        Optimized cell), or another parameter is out of range (the message names it).
    TypeError
        When a parameter has the wrong type.

    Examples
    --------
    >>> import pytyche as pt  # doctest: +SKIP
    >>> from dgps.registry import make_generator  # doctest: +SKIP
    >>> exp = pt.sequential_experiment(
    ...     generator=make_generator("clustered_realistic", seed=1),
    ...     schedule=pt.GeometricSchedule(initial=10_000, growth=2.0, n_rounds=3),
    ...     treatments=["control", "low_promo", "free_ship"],
    ... )  # doctest: +SKIP
    >>> for experiment in exp:  # doctest: +SKIP
    ...     print(experiment.next_plan.rationale)
    """

    def __init__(
        self,
        *,
        generator: Generator,
        schedule: Schedule,
        treatments: Sequence[str],
        cells: list[Cell] | None = None,
        min_control_weight: float = 0.05,
        min_explore_weight: float = 0.05,
        max_segment_depth: int = 3,
        min_segment_share: float = 0.1,
        calibration: "Calibration | None" = None,
        graduation_rule: GraduationRule | None = None,
        seed: int = 0,
        progress: bool = False,
        bcf_config: "GPUBCFConfig | None" = None,
        stability_method: str = DEFAULT_STABILITY_METHOD,
        ship_spending: "ShipSpending | str" = DEFAULT_SHIP_SPENDING,
        skip_analysis: Sequence[str] = (),
    ) -> None:
        w = _WHERE
        if not callable(generator):
            raise wrong_type("generator", w, "a callable generator(round_idx, plan) -> (observed, truth | None)", generator)
        if not callable(getattr(schedule, "size", None)) or not hasattr(schedule, "n_rounds"):
            raise wrong_type("schedule", w, "a Schedule (an object with n_rounds and size(round_idx))", schedule)
        n_rounds = schedule.n_rounds
        if n_rounds is not None:
            check_int(n_rounds, "schedule.n_rounds", w, low=1)
        if isinstance(treatments, (str, bytes)) or not isinstance(treatments, Sequence):
            raise wrong_type("treatments", w, "a sequence of treatment names, control first", treatments)
        universe = tuple(treatments)
        if len(universe) < 2 or any(not isinstance(t, str) or not t.strip() for t in universe) or len(set(universe)) != len(universe):
            raise invalid("treatments", w, "a sequence of at least 2 unique non-empty names, control first", list(universe))
        self._cells0 = None if cells is None else validate_cells(cells, "cells", w)
        settings = validate(
            dict(
                min_control_weight=min_control_weight,
                min_explore_weight=min_explore_weight,
                max_segment_depth=max_segment_depth,
                min_segment_share=min_segment_share,
                seed=seed,
                progress=progress,
                stability_method=stability_method,
            ),
            SEQUENTIAL_CONSTRAINTS,
            w,
        )
        mcw, mew = settings["min_control_weight"], settings["min_explore_weight"]
        if mcw + mew >= 1.0:
            raise violated(
                "'min_control_weight' and 'min_explore_weight' parameters", w,
                f"sum to below 1.0 (leaving room for the Optimized cell). Got {mcw} + {mew} = {mcw + mew:.6g} instead.",
            )
        depth, share = settings["max_segment_depth"], settings["min_segment_share"]
        if calibration is not None:
            from pytyche.calibrate import Calibration

            if not isinstance(calibration, Calibration):
                raise wrong_type("calibration", w, "a Calibration or None", calibration)
        if graduation_rule is None:
            graduation_rule = ExpectedLossRule()
        elif not callable(getattr(graduation_rule, "ship_signals", None)):
            raise wrong_type("graduation_rule", w, "a GraduationRule (with ship_signals(posterior, analysis)) or None", graduation_rule)
        seed = settings["seed"]
        spending = ship_spending_of(ship_spending, w)
        if bcf_config is not None:
            from pytyche.bcf.config import GPUBCFConfig

            if not isinstance(bcf_config, GPUBCFConfig):
                raise wrong_type("bcf_config", w, "a GPUBCFConfig or None", bcf_config)

        self._generator = generator
        self._schedule = schedule
        self._treatments = universe
        self._min_control_weight = mcw
        self._min_explore_weight = mew
        self._max_segment_depth = depth
        self._min_segment_share = share
        self._calibration = calibration
        self._graduation_rule = graduation_rule
        self._seed = seed
        self._progress = bool(progress)
        self._bcf_config = bcf_config
        self._stability_method = stability_method
        self._ship_spending = spending
        self._skip_analysis = _check_skip(skip_analysis, w)
        # ---- state (replaced only at the end of a successful round) ----------------------
        self._history: list[Experiment] = []
        self._round_data: list[ObservedExperimentData] = []
        self._round_truths: list[CalibrationTruth] = []
        self._round_designs: list[pd.DataFrame] = []  # each round's design propensities, computed once
        self._round_models: list[dict[str, Any] | None] = []  # each round's model_fingerprint (None: unrecorded)
        self._cumulative: ObservedExperimentData | None = None
        self._next_plan: NextRoundPlan | None = None

    # ---- configuration (read-only) ------------------------------------------------------
    treatments = _read_only("_treatments", "The treatments universe, control first (``tuple[str, ...]``).")
    schedule = _read_only("_schedule", "The round-size schedule (``Schedule``).")
    calibration = _read_only("_calibration", "The calibration applied each round (or ``None``).")
    seed = _read_only("_seed", "The master seed (``int``).")
    min_control_weight = _read_only("_min_control_weight", "Floor of the engine's Control cell weight.")
    min_explore_weight = _read_only("_min_explore_weight", "Floor of the engine's Explore cell weight.")
    max_segment_depth = _read_only("_max_segment_depth", "Depth of each round's policy tree.")
    min_segment_share = _read_only("_min_segment_share", "Smallest segment, as a share of the visitors.")
    ship_spending = _read_only("_ship_spending", "How the SHIP gate's error is spent over the rounds (a ShipSpending).")
    stability_method = _read_only(
        "_stability_method", 'How segment stability is scored each round (``"posterior"`` or ``"means"``).'
    )
    skip_analysis = _read_only("_skip_analysis", "The analysis steps each round skips (a tuple of ANALYSIS_STEPS names).")
    graduation_rule = _read_only("_graduation_rule", "The rule that fires SHIP signals for graduation.")
    cumulative_data = _read_only(
        "_cumulative", "The cumulative data (variant-major) of every completed round, or ``None``."
    )

    # ---- iteration ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Experiment]:
        return self

    def __next__(self) -> Experiment:
        return self._run_round(None)

    def __repr__(self) -> str:
        n = self._schedule.n_rounds
        return (
            f"SequentialExperiment(treatments={list(self._treatments)}, rounds={len(self._history)}/"
            f"{'open-ended' if n is None else n}, seed={self._seed})"
        )

    def _plan_for(self, round_idx: int, n_visitors: int, cells: tuple[Cell, ...] | None) -> tuple[NextRoundPlan, bool]:
        base = self._next_plan if round_idx > 0 else cold_start_plan(self._treatments, 0)
        assert base is not None
        if round_idx == 0 and cells is None and self._cells0 is not None:
            cells = self._cells0
        if cells is None:
            return base.with_size(n_visitors), False
        rationale = (
            f"Operator override for round {round_idx}: "
            + ", ".join(f"{c.id} {c.weight:.1%} ({c.policy!r})" for c in cells)
            + ". Engine floors do not apply to overrides; later rounds revert to the engine's proposals."
        )
        plan = NextRoundPlan(cells, base.active_treatments, base.dropped_treatments, rationale, round_idx, n_visitors, self._treatments)
        return plan, True

    def _validate_round(self, round_idx: int, plan: NextRoundPlan, result: Any) -> tuple[ObservedExperimentData, CalibrationTruth | None]:
        w = f"{_WHERE}.advance"

        def returned(rule: str, got: Any) -> Exception:  # the generator's result has the wrong type
            return violated("'generator' parameter", _WHERE, f"return {rule}. Got {type(got).__name__} instead.", exc=TypeError)

        def broken(rule: str, what: str = "data") -> Exception:  # this round's data or truth breaks the loop's contract
            return violated(f"round {round_idx} {what}", w, rule)

        if not isinstance(result, tuple) or len(result) != 2:
            raise returned("a tuple (observed, truth | None)", result)
        observed, truth = result
        if not isinstance(observed, ObservedExperimentData):
            raise returned("an ObservedExperimentData first", observed)
        if truth is not None and not isinstance(truth, CalibrationTruth):
            raise returned("a CalibrationTruth or None second", truth)
        if not observed.has_cells:
            missing = [v.name for v in observed.variants if CELL_COLUMN not in v.visitors.columns]
            raise broken(f"carry the reserved '{CELL_COLUMN}' column in every visitors frame. Missing in variant(s) {missing}.")
        unknown_cells = sorted({str(c) for c in observed.cells()} - set(plan.cell_ids))
        if unknown_cells:
            raise broken(f"label visitors only with the plan's cell ids {list(plan.cell_ids)}. Got unknown cell id(s) {unknown_cells} instead.")
        outside = [v for v in observed.variant_names if v not in self._treatments]
        if outside:
            raise broken(f"only hold variants of the treatments universe {list(self._treatments)}. Got {outside} instead.")
        if observed.round_idx is not None and observed.round_idx != round_idx:
            raise broken(f"have round_idx None or {round_idx}. Got {observed.round_idx} instead.")
        if self._round_data:
            first = self._round_data[0]
            if observed.experiment_id != first.experiment_id:
                raise broken(f"keep the experiment_id of prior rounds ({first.experiment_id!r}). Got {observed.experiment_id!r} instead.")
            if observed.metric != first.metric:
                raise broken(f"keep the metric of prior rounds ({first.metric!r}). Got {observed.metric!r} instead.")
            if observed.schema != first.schema:
                raise broken(
                    f"keep the visitor schema of prior rounds ({dict(first.schema.feature_types)}, outcome {first.schema.outcome!r}). "
                    f"Got {dict(observed.schema.feature_types)}, outcome {observed.schema.outcome!r} instead."
                )
            sim_before = bool(self._round_truths)
            if sim_before != (truth is not None):
                before, now = ("sim", "real") if sim_before else ("real", "sim")
                raise broken(
                    f"keep the {before}-data mode of prior rounds: the "
                    f"generator returned {'no truth' if truth is None else 'ground truth'} ({now} mode) this round."
                )
        if truth is not None:
            if truth.n != observed.n_visitors:
                raise broken(f"have one row per visitor ({observed.n_visitors}). Got {truth.n} instead.", "truth")
            missing = [v for v in observed.variant_names if v not in truth.treatments]
            if missing:
                raise broken(f"name every observed variant. Missing {missing}.", "truth")
        return observed, truth

    def _request(self, cumulative: ObservedExperimentData, fit_seed: int) -> "FitRequest":
        """The round's fit, not run: what ``pt.fit(cumulative, config=bcf_config, seed=fit_seed)`` runs."""
        from pytyche.bcf.request import fit_request

        kwargs: dict[str, Any] = {"progress": self._progress, "seed": fit_seed}
        if self._bcf_config is not None:
            kwargs["config"] = self._bcf_config
        return fit_request(cumulative, **kwargs)

    def advance(self, cells: list[Cell] | None = None) -> Experiment:
        """Run one round and return its :class:`~pytyche.experiment.Experiment` snapshot.

        ``cells`` overrides this round's cell structure only; subsequent rounds revert to the
        recommendation engine's proposals. Overrides must satisfy the weight-sum invariant but are
        NOT subject to the engine's min-weight floors.

        All state commits only after every step succeeds -- a failure at any step (missing
        ``cell`` column, calibration regime mismatch, ...) leaves ``history`` and the cumulative
        data unchanged.

        Parameters
        ----------
        cells
            This round's cells, or ``None`` for the engine's plan (round 0: the cold start or the
            constructor's ``cells``).

        Returns
        -------
        Experiment

        Raises
        ------
        StopIteration
            When the schedule is exhausted.
        ValueError
            When the override cells' weights do not sum to 1.0, when round data lacks the
            reserved ``cell`` column or labels visitors with ids outside the round's plan, when a
            variant name falls outside the treatments universe, or when the round's identity
            (``experiment_id``, ``metric``, sim/real mode) conflicts with prior rounds.
        """
        return self._run_round(cells)

    def _round_rule(self, round_idx: int) -> tuple[DecisionThresholds, GraduationRule]:
        """Round ``round_idx``'s decision thresholds (the graduation rule's, with the SHIP gate's
        share of the run's error) and the rule that fires its SHIP signals at them."""
        rule = self._graduation_rule
        base = rule.thresholds if isinstance(rule, ExpectedLossRule) else DecisionThresholds()
        n_rounds = self._schedule.n_rounds
        sizes = None if n_rounds is None else [int(self._schedule.size(r)) for r in range(n_rounds)]
        n_arms = len(self._treatments) - 1  # the treated arms of the universe (spending.py's "Arms")
        thresholds = self._ship_spending.thresholds(base, round_idx, n_rounds, sizes, n_arms=n_arms)
        if isinstance(rule, ExpectedLossRule) and thresholds != base:
            rule = ExpectedLossRule(thresholds, rule.stability_threshold, rule.include_population)
        return thresholds, rule

    def _run_round(self, cells: list[Cell] | None) -> Experiment:
        """One round (called by :meth:`advance` and ``__next__``): prepare, fit, finish."""
        # frames of a warning: _prepare/_finish <- _run_round <- advance/__next__ <- the caller
        prepared = self._prepare(cells, stacklevel=4)
        return self._finish(prepared, prepared.fit(), stacklevel=4)

    def prepare_round(self, cells: list[Cell] | None = None) -> "PreparedRound":
        """The first step of a round: its data and its fit's inputs, without fitting or changing state.

        Sizes the round from the schedule, hands the plan to the generator, validates what it
        returns, builds the cumulative data (and, in sim mode, the cumulative truth) and the
        fit's :class:`~pytyche.bcf.request.FitRequest` (the fit ``pt.fit`` runs, seeded with the
        round's fit seed). A round is then :meth:`advance` split in three:

        1. ``prepared = exp.prepare_round(cells)``;
        2. the fit: ``posterior = prepared.fit()`` (what :meth:`advance` does), or batched beside
           other experiments' rounds with :func:`pytyche.bcf.request.fit_batch` on the rounds'
           ``request`` (bitwise the same posteriors on the CPU);
        3. ``experiment = exp.finish_round(prepared, posterior)``.

        Nothing of the experiment changes here: a prepared round that is never finished leaves
        the experiment as it was (the generator has been called, though; a generator that keeps
        state of its own advances). The one side effect is the experiment's once-only
        :class:`UncalibratedWarning`.

        Parameters
        ----------
        cells
            As for :meth:`advance`.

        Returns
        -------
        PreparedRound

        Raises
        ------
        StopIteration
            When the schedule is exhausted.
        ValueError, TypeError
            As :meth:`advance` for the round's data; the fit's own refusals too (e.g.
            :class:`pytyche.InsufficientDataError` for a hurdle arm without converters).
        """
        # frames of the warning: _prepare <- prepare_round <- the caller
        return self._prepare(cells, stacklevel=3)

    def finish_round(self, prepared: "PreparedRound", posterior: Any) -> Experiment:
        """The last step of a round: calibrate, analyze, plan, check, and commit the round.

        Applies the calibration to ``posterior``, analyzes it (policy tree, recommendations),
        scores the round's cells, fires the graduation signals, asks the engine for the next
        plan, checks sample ratio mismatch, estimates the recommended policy's value, compares
        to the truth (sim mode), and appends the round to :attr:`history`. A failure leaves the
        experiment unchanged, as :meth:`advance` does.

        Parameters
        ----------
        prepared
            This experiment's :meth:`prepare_round` for its next round.
        posterior
            The posterior of ``prepared.request``: ``prepared.fit()``, or its entry of a
            :func:`~pytyche.bcf.request.fit_batch`.

        Returns
        -------
        Experiment
            The round's snapshot, as :meth:`advance` returns it.

        Raises
        ------
        TypeError
            When ``prepared`` is not a :class:`PreparedRound`.
        ValueError
            When ``prepared`` belongs to another experiment or another round (a round was
            finished since it was prepared), or ``posterior`` is not a posterior of its
            cumulative data.
        """
        # frames of the SRM warning: _finish <- finish_round <- the caller
        return self._finish(prepared, posterior, stacklevel=3)

    def _prepare(self, cells: list[Cell] | None, *, stacklevel: int) -> "PreparedRound":
        round_idx = len(self._history)
        if is_exhausted(self._schedule, round_idx):
            raise StopIteration
        override = None if cells is None else validate_cells(cells, "cells", f"{_WHERE}.advance")
        if self._calibration is None or getattr(self._calibration, "skipped", False):
            # None and an explicit Calibration.skip() both run uncalibrated: warn once per instance
            warn_uncalibrated_once(self, stacklevel=stacklevel)
        n_visitors = check_int(self._schedule.size(round_idx), "schedule.size(round_idx)", _WHERE, low=1)
        plan, overridden = self._plan_for(round_idx, n_visitors, override)

        observed, truth = self._validate_round(round_idx, plan, self._generator(round_idx, plan))
        rounds = (*self._round_data, observed)
        # the fit's propensity covariate is each round's design propensity (cells mixed by weight);
        # past rounds' designs are kept, so each round's policies run once
        designs = (*self._round_designs, round_design(observed, plan))
        cumulative, positions = _build_cumulative(list(rounds), control=self._treatments[0], designs=list(designs))
        if cumulative.control != self._treatments[0]:
            raise violated(
                "cumulative data", _WHERE,
                f"contain the control {self._treatments[0]!r} (treatments[0]) to estimate effects against. "
                f"Got variants {list(cumulative.variant_names)}.",
            )
        truths = (*self._round_truths, truth) if truth is not None else ()
        cum_truth = cumulative_truth(list(truths), positions, cumulative.variant_names) if truth is not None else None
        fit_seed = _derive_seed(self._seed, round_idx, 0)
        request = self._request(cumulative, fit_seed)
        return PreparedRound(
            round_idx=round_idx, plan=plan, overridden=overridden, observed=observed, truth=truth,
            cumulative=cumulative, cumulative_truth=cum_truth, positions=tuple(positions), fit_seed=fit_seed,
            request=request, _owner=self, _rounds=rounds, _truths=truths, _designs=designs,
        )

    def _finish(self, prepared: "PreparedRound", posterior: Any, *, stacklevel: int) -> Experiment:
        w = f"{_WHERE}.finish_round"
        if not isinstance(prepared, PreparedRound):
            raise wrong_type("prepared", w, "a PreparedRound (from prepare_round)", prepared)
        if prepared._owner is not self:
            raise invalid("prepared", w, "a round prepared by this experiment", "a round prepared by another experiment", show=False)
        round_idx = len(self._history)
        if prepared.round_idx != round_idx:
            raise invalid(
                "prepared", w, f"a round prepared for this experiment's next round ({round_idx})",
                f"a round prepared for round {prepared.round_idx}", show=False,
            )
        cumulative = prepared.cumulative
        got = getattr(posterior, "observed", None)
        if (
            not isinstance(got, ObservedExperimentData) or got.n_visitors != cumulative.n_visitors
            or tuple(getattr(posterior, "treatments", ())) != tuple(cumulative.variant_names)
            # same sizes and arms are not enough: lockstep replications share them
            or (got is not cumulative and not np.array_equal(got.outcome, cumulative.outcome))
        ):
            raise invalid(
                "posterior", w,
                f"a posterior of the prepared round's cumulative data ({cumulative.n_visitors} visitors, "
                f"treatments {list(cumulative.variant_names)})",
                posterior if got is None else f"a posterior of {got.n_visitors} visitors, treatments {list(posterior.treatments)}",
                show=got is None,
            )
        plan, observed, positions = prepared.plan, prepared.observed, prepared.positions
        cum_truth = prepared.cumulative_truth

        # calibrate, analyze
        if self._calibration is not None:
            posterior = posterior.apply_calibration(self._calibration)
        thresholds, rule = self._round_rule(round_idx)
        analysis = posterior.analyze(
            max_depth=self._max_segment_depth,
            min_segment_share=self._min_segment_share,
            **({"n_bootstrap": 0} if "stability" in self._skip_analysis else {}),  # 0: no bootstrap, NaN scores
            bootstrap_seed=_derive_seed(self._seed, round_idx, 1),
            stability_method=self._stability_method,
            thresholds=thresholds,
        )

        # score cells, graduation signals, next plan
        cell_scores = score_cells(observed, plan)
        prev_signals = self._history[-1].ship_signals if self._history else ()
        signals = sustain(
            list(rule.ship_signals(posterior, analysis)),
            prev_signals,
            posterior.observed.features_frame(),
        )
        next_idx = round_idx + 1
        next_n = None if is_exhausted(self._schedule, next_idx) else int(self._schedule.size(next_idx))
        next_plan = recommend(
            posterior=posterior,
            analysis=analysis,
            treatments=self._treatments,
            active=plan.active_treatments,
            round_idx=next_idx,
            min_control_weight=self._min_control_weight,
            min_explore_weight=self._min_explore_weight,
            n_visitors=next_n,
            ship_signals=signals,
        )

        # checks: sample ratio mismatch of this round, off-policy value of the recommendation
        srm = srm_check(observed, plan)
        rec = recommended_arms(posterior, analysis.policy_tree, next_plan.active_treatments)
        policy_value = None
        if "policy_value" not in self._skip_analysis and cumulative.n_visitors >= 2 * DEFAULT_FOLDS:
            designs = list(prepared._designs)
            design = design_propensities(list(prepared._rounds), None, list(positions), cumulative.variant_names, designs=designs)
            learner = PolicyTreeLearner(
                max_depth=self._max_segment_depth, min_segment_share=self._min_segment_share,
                allowed=tuple(t in next_plan.active_treatments for t in cumulative.variant_names),
            )
            policy_value = estimate_policy_value(cumulative, rec, design, seed=_derive_seed(self._seed, round_idx, 2), learner=learner)

        # sim mode: truth comparison
        comparison = None
        if cum_truth is not None:
            comparison = compare_to_truth(posterior, cum_truth, rec)

        rnd = Round(round_idx, plan, observed, prepared.truth, positions[-1], prepared.overridden)
        experiment = Experiment(
            round=rnd,
            observed=posterior.observed,
            posterior=posterior,
            analysis=analysis,
            cell_scores=cell_scores,
            next_plan=next_plan,
            truth_comparison=comparison,
            cumulative_truth=cum_truth,
            ship_signals=signals,
            fit_seed=prepared.fit_seed,
            positions=tuple(positions),
            srm=srm,
            policy_value=policy_value,
        )

        # commit (nothing above mutated self)
        self._round_data = list(prepared._rounds)
        self._round_truths = list(prepared._truths)
        self._round_designs = list(prepared._designs)
        self._round_models = [*self._round_models, model_fingerprint(posterior.config)]
        self._cumulative = cumulative
        self._next_plan = next_plan
        self._history = [*self._history, experiment]
        warn_srm(srm, round_idx, stacklevel=stacklevel)
        return experiment

    def run_to_completion(self) -> "SequentialExperiment":
        """Advance until the schedule is exhausted or a candidate emerges.

        Returns ``self`` for chaining.

        Raises
        ------
        ValueError
            When the schedule is open-ended (``n_rounds`` is ``None``) -- the operator must
            provide a stop condition.
        """
        if self._schedule.n_rounds is None:
            raise violated(
                "'schedule' parameter", _WHERE,
                "have a bounded n_rounds for run_to_completion. Got an open-ended schedule (n_rounds=None) instead: "
                "call advance() / next(exp) and stop on your own condition.",
            )
        while not is_exhausted(self._schedule, len(self._history)):
            self.advance()
            if self.has_graduation_candidate():
                break
        return self

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: "str | os.PathLike[str]", *, draws: bool = False) -> "Path":
        """Save the experiment to the directory ``path`` so a new process can continue it.

        Parquet for every round's data (and sim-mode truth), JSON for the configuration,
        history, plans and posterior summaries; posterior draws only with ``draws=True``. The
        directory carries a format version; saving is atomic (a crash mid-save leaves the
        previous save intact). The generator is not saved: pass it to :meth:`load`. See
        :mod:`pytyche.experiment.persist` for the layout.

        Parameters
        ----------
        path
            The save directory (created if needed; an earlier save there is replaced).
        draws
            Also save each round's posterior draws (larger; lets a loaded history recompute
            intervals at any level).

        Returns
        -------
        pathlib.Path
            The directory.

        Raises
        ------
        TypeError
            When a plan holds an operator-defined policy without ``to_dict``/``from_dict``.
        ValueError
            When ``path`` holds files that are not a pytyche save.
        """
        from pytyche.experiment.persist import save_experiment

        return save_experiment(self, path, draws=draws)

    @classmethod
    def load(
        cls,
        path: "str | os.PathLike[str]",
        generator: Generator,
        *,
        schedule: Schedule | None = None,
        graduation_rule: GraduationRule | None = None,
        policies: Any = None,
    ) -> "SequentialExperiment":
        """Restore an experiment written by :meth:`save`; its next ``advance()`` continues the run.

        The loaded experiment's next round gives the same result as the uninterrupted run with
        the same seed and generator.

        Parameters
        ----------
        path
            The save directory.
        generator
            The data source for the coming rounds (the same contract as the constructor's).
        schedule, graduation_rule
            Needed only when the saved experiment used operator-defined ones (not saved).
        policies
            The registry for operator-defined policies in saved plans (a ``name -> class``
            mapping or a sequence of classes); a save never imports code it names.

        Raises
        ------
        ValueError
            (:class:`~pytyche.experiment.persist.SaveFormatError`) for a corrupt, partial or
            newer-format save; the message names the file.
        FileNotFoundError
            When ``path`` is not a directory.
        """
        from pytyche.experiment.persist import load_experiment

        return load_experiment(path, generator, schedule=schedule, graduation_rule=graduation_rule, policies=policies)

    # ---- state --------------------------------------------------------------------------
    @property
    def history(self) -> list[Experiment]:
        """Completed rounds, oldest first (a defensive copy)."""
        return list(self._history)

    @property
    def round_models(self) -> list[dict[str, Any] | None]:
        """The model each completed round was fitted with, oldest first: its
        :func:`~pytyche.bcf.fingerprint.model_fingerprint` (model version and options).

        Rounds run in this process carry the current model. A loaded experiment keeps each saved
        round's own (``None`` for rounds saved before fingerprints, on 2026-12-06: model versions
        1 to 3), so an experiment saved under an older model says so after an upgrade; its
        later rounds carry the model that fitted them.
        """
        return [None if m is None else dict(m) for m in self._round_models]

    @property
    def latest(self) -> Experiment | None:
        """The most recent round, or ``None`` before the first."""
        return self._history[-1] if self._history else None

    @property
    def current_round_idx(self) -> int:
        """Number of completed rounds (the next round's index)."""
        return len(self._history)

    @property
    def next_recommendation(self) -> NextRoundPlan | None:
        """The engine's plan for the next round; ``None`` before round 0."""
        return self._next_plan

    def graduation_candidates(self, sustained_rounds: int = 2) -> list[GraduationCandidate]:
        """Latest-round candidates sustained for at least ``sustained_rounds``."""
        sustained_rounds = check_int(sustained_rounds, "sustained_rounds", f"{_WHERE}.graduation_candidates", low=1)
        latest = self.latest
        return [] if latest is None else latest.graduation_candidates(sustained_rounds)

    def has_graduation_candidate(self) -> bool:
        """Whether any candidate meets the default sustained-rounds bar."""
        return bool(self.graduation_candidates())

    def has_credible_segments(self, threshold: float = CREDIBLE_STABILITY, **deprecated: Any) -> bool:
        """Whether the latest round's policy tree has a credible segment.

        A segment is credible when its stability score (this experiment's ``stability_method``)
        reaches ``threshold`` and the tree has at least two leaves: a one-leaf tree is the whole
        population and has no credible segment
        (:func:`~pytyche.contracts.results.credible_segments`).

        ``threshold`` is named as in ``posterior.has_credible_segments``; the former keyword
        ``stability_threshold=`` still works and emits a ``DeprecationWarning``.
        """
        name = "threshold"
        if deprecated:
            unknown = set(deprecated) - {"stability_threshold"}
            if unknown:
                raise TypeError(f"has_credible_segments() got an unexpected keyword argument {sorted(unknown)[0]!r}")
            warnings.warn(
                "SequentialExperiment.has_credible_segments(stability_threshold=...) is deprecated; pass threshold=...",
                DeprecationWarning,
                stacklevel=2,
            )
            threshold, name = deprecated["stability_threshold"], "stability_threshold"
        t = check_float(threshold, name, f"{_WHERE}.has_credible_segments", low=0.0, high=1.0)
        latest = self.latest
        if latest is None:
            return False
        return bool(credible_segments(latest.segments, t))

    def dropped_treatments(self) -> list[str]:
        """Universe treatments absent from the latest plan's active list."""
        plan = self._next_plan
        if plan is None:
            return []
        return [t for t in self._treatments if t not in plan.active_treatments]

    @property
    def confidence(self) -> Literal["high", "medium", "low"]:
        """One-word label from the credibility + graduation state.

        ``"high"``: a graduation candidate and a credible segment; ``"medium"``: one of the two,
        or a SHIP signal in the latest round; ``"low"`` otherwise (and before round 0).
        """
        grad = self.has_graduation_candidate()
        cred = self.has_credible_segments()
        if grad and cred:
            return "high"
        latest = self.latest
        if grad or cred or (latest is not None and latest.ship_signals):
            return "medium"
        return "low"

    @property
    def summary(self) -> str:
        """Deterministic multi-paragraph prose over the series so far (:mod:`pytyche.experiment.summary`)."""
        return render_summary(self)


SequentialExperiment.__doc__ = (SequentialExperiment.__doc__ or "").replace("{scope}", _SCOPE)


def sequential_experiment(**kwargs: Any) -> SequentialExperiment:
    """Construct a :class:`SequentialExperiment` -- the public entry point (docs/concepts.md).

    The verb form of the :class:`SequentialExperiment` constructor with the identical signature;
    see the class docstring for the parameter contract. Iterate the returned instance
    (``next(exp)``) to advance one round at a time, or call ``run_to_completion()`` on a bounded
    schedule.
    {scope}
    Returns
    -------
    SequentialExperiment
    """
    return SequentialExperiment(**kwargs)


# the verb takes exactly the constructor's (keyword-only) parameters
sequential_experiment.__signature__ = inspect.signature(SequentialExperiment).replace(  # type: ignore[attr-defined]
    return_annotation="SequentialExperiment"
)
sequential_experiment.__doc__ = (sequential_experiment.__doc__ or "").replace("{scope}", _SCOPE)
