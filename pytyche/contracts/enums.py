"""Small enumerations shared by every layer: decisions, claim levels, metric families."""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

from pytyche._validation import InsufficientDataError


#: zero share at or above which a float outcome is read as a hurdle outcome
HURDLE_ZERO_SHARE = 0.30


class Decision(str, Enum):
    """The recommended call for a treatment versus baseline."""

    SHIP = "SHIP"
    CONTINUE = "CONTINUE"
    STOP = "STOP"

    def __str__(self) -> str:
        return self.value


class ClaimLevel(str, Enum):
    """How strongly a result's intervals may be read.

    ``CALIBRATED``: an SBC-fitted :class:`~pytyche.calibrate.Calibration` was applied, so nominal
    levels are corrected toward their empirical coverage. ``UNCALIBRATED``: raw posterior intervals
    (``Calibration.skip()`` or no calibration), whose coverage moves with the regime and the
    sample size (too wide at small n at the default config, too narrow at toy MCMC settings and
    for some outcomes at 20k; ``bench/RESULTS.md``).
    """

    CALIBRATED = "calibrated"
    UNCALIBRATED = "uncalibrated"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, calibration: Any) -> "ClaimLevel":
        """The claim level of results carrying ``calibration``: the one rule, used everywhere.

        ``CALIBRATED`` iff there is a calibration, it is not ``Calibration.skip()`` and it holds
        a correction (an unresolved ``Calibration.from_sweep("auto")`` holds none yet);
        ``UNCALIBRATED`` otherwise. Duck-typed (``skipped``, ``correction``), so the contracts
        layer needs no import of :mod:`pytyche.calibrate`.
        """
        if calibration is None or getattr(calibration, "skipped", False) or getattr(calibration, "correction", None) is None:
            return cls.UNCALIBRATED
        return cls.CALIBRATED

    @classmethod
    def of_family(cls, calibration: Any, family: str, level: float) -> "ClaimLevel":
        """The claim level of ``family`` intervals at ``level``: the calibration's per-family view
        (``claim_level_for``, :class:`~pytyche.calibrate.Calibration`) where it has one, else
        :meth:`of`. Duck-typed like :meth:`of`."""
        per_family = getattr(calibration, "claim_level_for", None)
        return cls.of(calibration) if per_family is None else per_family(family, level)


class MetricFamily(str, Enum):
    """The outcome family ``pt.fit`` dispatches on.

    ``BINARY``: every outcome in {0, 1} (probit BCF). ``CONTINUOUS``: float outcome with fewer than
    30% zeros. ``HURDLE``: float outcome with at least 30% zeros and a positive tail (joint hurdle
    BCF: probit conversion x log-normal severity).
    """

    BINARY = "binary"
    CONTINUOUS = "continuous"
    HURDLE = "hurdle"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def infer(cls, y: np.ndarray) -> "MetricFamily":
        """Classify an outcome vector exactly as ``pt.fit``'s dispatch states (docs/concepts.md, *Outcome*).

        Raises
        ------
        ValueError
            When the outcome is empty or not finite; :class:`pytyche.InsufficientDataError` (a
            ``ValueError``) when every outcome is zero (it could be a binary metric with no
            successes or a hurdle metric with no converters: neither can be fitted).
        """
        y = np.asarray(y)
        if y.size == 0:
            raise ValueError("The outcome array is empty: nothing to fit.")
        if not np.all(np.isfinite(y)):
            raise ValueError("The outcome array contains NaN or infinite values.")
        if np.all(y == 0):
            raise InsufficientDataError(
                "Every outcome is zero. Read as a binary metric it has no successes; read as a "
                "hurdle (zero-inflated) metric it has no converters. Neither binary nor hurdle BCF "
                "can be fitted: collect more data or check the outcome column."
            )
        if np.all((y == 0) | (y == 1)):
            return cls.BINARY
        zero_share = float(np.mean(y == 0))
        if zero_share >= HURDLE_ZERO_SHARE:
            if np.any(y < 0):
                raise ValueError(
                    "The outcome has at least 30% zeros but negative values too: a hurdle outcome "
                    "needs a zero mass and a positive tail."
                )
            return cls.HURDLE
        return cls.CONTINUOUS
