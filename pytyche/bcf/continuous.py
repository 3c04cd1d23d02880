"""Continuous-outcome BCF: ``fit_continuous_bcf``."""

from __future__ import annotations

from typing import Any

from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.results import ContinuousBCFResult
from pytyche.bcf.stash import ObservedCopy
from pytyche.contracts.enums import MetricFamily
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["fit_continuous_bcf"]


def fit_continuous_bcf(
    observed: ObservedExperimentData,
    *,
    config: GPUBCFConfig | None = None,
    observed_copy: ObservedCopy = "view",
    progress: bool = False,
    calibration: Any = None,
    **config_overrides: Any,
) -> ContinuousBCFResult:
    """Fit a Bayesian Causal Forest to a continuous outcome, any number of treatments.

    ``y = mu(x, pi) + tau_a(x) + eps`` for a visitor in arm ``a`` (``tau_0 = 0`` for control),
    ``eps ~ N(0, sigma^2)``: a prognostic BART forest ``mu`` over the features and the recorded
    propensities ``pi``, and one treatment forest ``tau_a`` over the features per non-control
    arm (Hahn, Murray & Carvalho 2020; contrast coding, so ``tau_a`` is arm ``a``'s effect
    versus control).

    Parameters
    ----------
    observed
        The experiment's data (K >= 2 treatments, control first).
    config
        MCMC settings; default ``GPUBCFConfig()``.
    observed_copy
        How the posterior stashes ``observed``: ``"view"`` (default, read-only zero-copy
        views), ``"deep"`` (deep copy) or ``"ref"`` (the same object). See
        :mod:`pytyche.bcf.stash`.
    progress
        Show a tqdm progress bar over the MCMC iterations.
    calibration
        A :class:`~pytyche.calibrate.Calibration` to apply to the posterior (checked with
        ``applies_to``), or ``None`` for raw intervals.
    **config_overrides
        ``GPUBCFConfig`` fields overriding ``config`` (e.g. ``num_draws=500``).

    Returns
    -------
    ContinuousBCFResult
        ``outcome_samples[i, s, a]``: draw ``s`` of the mean outcome of visitor ``i`` under
        treatment ``a``, outcome units; ``cate_samples[..., a - 1]`` arm ``a``'s effect versus
        control.

    Raises
    ------
    TypeError
        If ``observed`` is not an ``ObservedExperimentData``, ``config`` not a ``GPUBCFConfig``,
        ``progress`` not a bool, or an override is not a config field.
    ValueError
        If ``observed_copy`` is not one of ``'view'``, ``'deep'``, ``'ref'``, or a config
        value is invalid.

    Examples
    --------
    >>> posterior = fit_continuous_bcf(observed, num_draws=500)  # doctest: +SKIP
    >>> lo, hi = posterior.ate_interval(0.9)  # doctest: +SKIP
    """
    from pytyche.bcf.request import request_for

    return request_for(
        MetricFamily.CONTINUOUS, observed, config=config, observed_copy=observed_copy, progress=progress,
        calibration=calibration, overrides=config_overrides,
    )._run(stacklevel=5)
