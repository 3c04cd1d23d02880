"""pytyche: adaptive heterogeneous-treatment-effect experimentation with Bayesian Causal Forests.

Top-level names are imported lazily so that ``import pytyche`` stays light (no matplotlib, and
JAX only when a fit or the setup check needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

from pytyche._version import __version__
from pytyche.contracts import *  # noqa: F403
from pytyche.contracts import __all__ as _contract_names

_LAZY: dict[str, str] = {
    # setup
    "check_setup": "pytyche.setup_check",
    "SetupReport": "pytyche.setup_check",
    # estimators
    "fit": "pytyche.bcf.dispatch",
    "fit_binary_bcf": "pytyche.bcf",
    "fit_continuous_bcf": "pytyche.bcf",
    "fit_hurdle_bcf": "pytyche.bcf",
    "BinaryBCFResult": "pytyche.bcf",
    "ContinuousBCFResult": "pytyche.bcf",
    "HurdleBCFResult": "pytyche.bcf",
    "GPUBCFConfig": "pytyche.bcf.config",
    "InsufficientDataError": "pytyche._validation",
    "compute_num_trees_tau": "pytyche.bcf.config",
    # analysis
    "analyze": "pytyche.analysis.analyze",
    "compare_variants": "pytyche.compare.variants",
    "recommendation_summary": "pytyche.compare.variants",
    # calibration
    "Calibration": "pytyche.calibrate",
    "LayeredCalibrationCorrection": "pytyche.calibrate",
    "CalibrationExtrapolationWarning": "pytyche.calibrate",
    "LegacyCalibrationWarning": "pytyche.calibrate",
    # sequential experiment
    "sequential_experiment": "pytyche.experiment",
    "SequentialExperiment": "pytyche.experiment",
    "UncalibratedWarning": "pytyche.experiment",
    "SampleRatioMismatchWarning": "pytyche.experiment",
    "GeometricSchedule": "pytyche.experiment",
    "FixedSchedule": "pytyche.experiment",
    "ExplicitSchedule": "pytyche.experiment",
    "Cell": "pytyche.experiment",
    "BaselinePolicy": "pytyche.experiment",
    "UniformPolicy": "pytyche.experiment",
    "TreePolicy": "pytyche.experiment",
    "ThompsonPolicy": "pytyche.experiment",
    "NextRoundPlan": "pytyche.experiment",
    "ExpectedLossRule": "pytyche.experiment",
    "ShipSpending": "pytyche.experiment",
    "SavedModelWarning": "pytyche.experiment",
    # submodules
    "viz": "pytyche.viz",
}

__all__ = ["__version__", *_contract_names, *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytyche' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name == "viz" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
