"""The analysis layer: policy tree, segments, stability, Thompson allocation, ``pt.analyze``."""

from pytyche.analysis.analyze import analyze, analyze_posterior
from pytyche.analysis.capabilities import credible_segments, has_credible_segments
from pytyche.analysis.policy_tree import fit_policy_tree
from pytyche.analysis.stability import bootstrap_stability, jaccard_matrix
from pytyche.analysis.thompson import EPSILON, arm_best_probabilities, thompson_allocation

__all__ = [
    "EPSILON",
    "analyze",
    "analyze_posterior",
    "arm_best_probabilities",
    "bootstrap_stability",
    "credible_segments",
    "fit_policy_tree",
    "has_credible_segments",
    "jaccard_matrix",
    "thompson_allocation",
]
