"""Bayesian Causal Forest estimators and their posterior results.

Fits: :func:`fit_continuous_bcf`, :func:`fit_binary_bcf`, :func:`fit_hurdle_bcf`
(zero-inflated outcomes, ``pooling="joint" | "independent"``), each at any K >= 2 treatments,
and the outcome-dispatching :func:`fit` (``pt.fit``). Results: :class:`ContinuousBCFResult`,
:class:`BinaryBCFResult`, :class:`HurdleBCFResult`, all :class:`BCFPosterior`. Configuration:
:class:`GPUBCFConfig`, :func:`compute_num_trees_tau`. Contrast coding: :func:`_compute_basis`.
"""

from pytyche.bcf.binary import fit_binary_bcf
from pytyche.bcf.config import GPUBCFConfig, compute_num_trees_tau
from pytyche.bcf.continuous import fit_continuous_bcf
from pytyche.bcf.dispatch import fit
from pytyche.bcf.hurdle import fit_hurdle_bcf
from pytyche.bcf.preprocess import _compute_basis
from pytyche.bcf.results import (
    BCFPosterior,
    BinaryBCFResult,
    ContinuousBCFResult,
    DecompositionSamples,
    HurdleBCFResult,
)

__all__ = [
    "BCFPosterior",
    "BinaryBCFResult",
    "ContinuousBCFResult",
    "DecompositionSamples",
    "GPUBCFConfig",
    "HurdleBCFResult",
    "_compute_basis",
    "compute_num_trees_tau",
    "fit",
    "fit_binary_bcf",
    "fit_continuous_bcf",
    "fit_hurdle_bcf",
]
