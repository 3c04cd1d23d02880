"""Sequential (multi-round, adaptive) experiments: the public round-by-round API (docs/concepts.md).

``pt.sequential_experiment(generator=..., schedule=..., treatments=...)`` builds a
:class:`SequentialExperiment`; each ``next(exp)`` runs one round (data from the generator, BCF fit
on the cumulative data, analysis, cell scoring, next-round plan, truth comparison in sim mode).

Modules: :mod:`~pytyche.experiment.sequential` (the loop), :mod:`~pytyche.experiment.schedules`,
:mod:`~pytyche.experiment.cells`, :mod:`~pytyche.experiment.policies`,
:mod:`~pytyche.experiment.plan`, :mod:`~pytyche.experiment.engine` (recommendation engine),
:mod:`~pytyche.experiment.graduation`, :mod:`~pytyche.experiment.rounds`,
:mod:`~pytyche.experiment.cumulative`, :mod:`~pytyche.experiment.srm` (sample ratio mismatch),
:mod:`~pytyche.experiment.policy_value` (off-policy value), :mod:`~pytyche.experiment.plan_io`
(plan JSON/SQL export), :mod:`~pytyche.experiment.persist` (save and load).
"""

from pytyche.experiment.cells import Cell
from pytyche.experiment.engine import cold_start_plan
from pytyche.experiment.graduation import ExpectedLossRule, GraduationCandidate, GraduationRule, ShipSignal
from pytyche.experiment.plan import NextRoundPlan, PlanAssignment
from pytyche.experiment.policies import BaselinePolicy, Policy, ThompsonPolicy, TreePolicy, UniformPolicy, sample_arms
from pytyche.experiment.rounds import CellScore, Experiment, Round, TruthComparison
from pytyche.experiment.schedules import ExplicitSchedule, FixedSchedule, GeometricSchedule, Schedule
from pytyche.experiment.policy_value import PolicyValue
from pytyche.experiment.sequential import (
    ANALYSIS_STEPS,
    Generator,
    PreparedRound,
    SequentialExperiment,
    UncalibratedWarning,
    sequential_experiment,
)
from pytyche.experiment.persist import SavedModelWarning
from pytyche.experiment.spending import ShipSpending
from pytyche.experiment.srm import SampleRatioMismatchWarning, SRMResult

__all__ = [
    "ANALYSIS_STEPS",
    "BaselinePolicy",
    "Cell",
    "CellScore",
    "ExpectedLossRule",
    "Experiment",
    "ExplicitSchedule",
    "FixedSchedule",
    "GeometricSchedule",
    "Generator",
    "GraduationCandidate",
    "GraduationRule",
    "NextRoundPlan",
    "PlanAssignment",
    "Policy",
    "PolicyValue",
    "PreparedRound",
    "Round",
    "SRMResult",
    "SampleRatioMismatchWarning",
    "Schedule",
    "SequentialExperiment",
    "ShipSignal",
    "ShipSpending",
    "SavedModelWarning",
    "ThompsonPolicy",
    "TreePolicy",
    "TruthComparison",
    "UncalibratedWarning",
    "UniformPolicy",
    "cold_start_plan",
    "sample_arms",
    "sequential_experiment",
]
