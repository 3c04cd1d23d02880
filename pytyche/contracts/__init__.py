"""The contract types every layer of pytyche exchanges (see docs/concepts.md, *Layers*)."""

from pytyche.contracts.arrays import AlignedVisitorArray, DecompositionSamples
from pytyche.contracts.enums import HURDLE_ZERO_SHARE, ClaimLevel, Decision, MetricFamily
from pytyche.contracts.observed import (
    CELL_COLUMN,
    ObservedExperimentData,
    VariantData,
    VisitorSchema,
    make_observed,
    propensity_columns,
)
from pytyche.contracts.results import (
    AnalysisResult,
    ComparisonResult,
    DecisionThresholds,
    DiscoveredSegment,
    PolicyTreeResult,
    RecommendationSummary,
)
from pytyche.contracts.rules import AllOf, BetweenRule, ComparisonRule, EqRule, InRule, SegmentRule, rule_from_dict
from pytyche.contracts.truth import QUANTITY_FAMILIES, CalibrationBundle, CalibrationRecord, CalibrationTruth

__all__ = [
    "AlignedVisitorArray", "AllOf", "AnalysisResult", "BetweenRule", "CELL_COLUMN", "CalibrationBundle",
    "CalibrationRecord", "CalibrationTruth", "ClaimLevel", "ComparisonResult", "ComparisonRule", "Decision",
    "DecisionThresholds", "DecompositionSamples", "DiscoveredSegment", "EqRule", "HURDLE_ZERO_SHARE", "InRule",
    "MetricFamily", "ObservedExperimentData", "PolicyTreeResult", "QUANTITY_FAMILIES", "RecommendationSummary",
    "SegmentRule", "VariantData", "VisitorSchema", "make_observed", "propensity_columns", "rule_from_dict",
]
