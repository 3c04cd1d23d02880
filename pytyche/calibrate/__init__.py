"""Calibration of posterior interval coverage: SBC-style coverage records, the layered isotonic
R(p) correction, the ``Calibration`` artifact and its application to posteriors.

Workflow: a coverage sweep fits uncalibrated posteriors on simulated data and measures coverage
against planted truth (:func:`coverage_records`); :meth:`LayeredCalibrationCorrection.fit` turns
the records into a correction (``scripts/fit_sbc_correction.py`` does it from Parquet shards);
:meth:`Calibration.from_sweep` loads the artifact and :func:`apply_calibration` (or
``posterior.apply_calibration``) attaches it to a posterior after checking its regime.
"""

from pytyche.calibrate.apply import apply_calibration, claim_level_of, is_calibrated
from pytyche.calibrate.calibration import (
    AUTO,
    REGISTRY_ENV,
    AutoCalibrationFallbackWarning,
    Calibration,
    posterior_pooling,
    registry_names,
)
from pytyche.calibrate.evidence import Evidence, LevelEvidence, evidence_of
from pytyche.calibrate.correction import (
    BEYOND_DATA,
    CHECKED_MCMC_FIELDS,
    DEFAULT_BAND_EDGES,
    DEFAULT_LEVELS,
    DEFAULT_MIN_UNITS,
    MCMC_FIELDS,
    CalibrationExtrapolationWarning,
    CalibrationWarning,
    LayeredCalibrationCorrection,
    LayerCurve,
    LegacyCalibrationWarning,
    mcmc_of,
    raw_interval,
)
from pytyche.calibrate.sbc import (
    DecisionCheck,
    DecisionEvaluation,
    coverage_records,
    evaluate_decisions,
    family_draws,
    interval_coverage,
    segment_masks,
)
from pytyche.calibrate.warnings import UncalibratedWarning, warn_uncalibrated_once

__all__ = [
    "AUTO",
    "REGISTRY_ENV",
    "AutoCalibrationFallbackWarning",
    "Evidence",
    "LevelEvidence",
    "evidence_of",
    "BEYOND_DATA",
    "CHECKED_MCMC_FIELDS",
    "CalibrationExtrapolationWarning",
    "CalibrationWarning",
    "LegacyCalibrationWarning",
    "MCMC_FIELDS",
    "mcmc_of",
    "DEFAULT_BAND_EDGES",
    "DEFAULT_LEVELS",
    "DEFAULT_MIN_UNITS",
    "Calibration",
    "DecisionCheck",
    "DecisionEvaluation",
    "LayerCurve",
    "LayeredCalibrationCorrection",
    "UncalibratedWarning",
    "apply_calibration",
    "claim_level_of",
    "coverage_records",
    "evaluate_decisions",
    "family_draws",
    "interval_coverage",
    "is_calibrated",
    "posterior_pooling",
    "raw_interval",
    "registry_names",
    "segment_masks",
    "warn_uncalibrated_once",
]
