"""Hurdle BCF for zero-inflated outcomes (revenue per visitor): ``fit_hurdle_bcf``.

Two pooling modes (docs/concepts.md, *Pooling*): ``"joint"`` (default, shared-topology fit,
:mod:`pytyche.bcf.hurdle.model`) and ``"independent"`` (two separate fits composed,
:mod:`pytyche.bcf.hurdle.compose`).
"""

from __future__ import annotations

from typing import Any, Literal

from pytyche.bcf._fitting import HURDLE_FIT_CONSTRAINTS, attach_calibration, check_common, check_hurdle_outcome
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.results import HurdleBCFResult
from pytyche.bcf.stash import ObservedCopy, stash_observed
from pytyche.contracts.enums import MetricFamily
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["fit_hurdle_bcf"]


def fit_hurdle_bcf(
    observed: ObservedExperimentData,
    *,
    pooling: Literal["joint", "independent"] = "joint",
    config: GPUBCFConfig | None = None,
    observed_copy: ObservedCopy = "view",
    progress: bool = False,
    calibration: Any = None,
    **config_overrides: Any,
) -> HurdleBCFResult:
    """Fit a hurdle BCF to a zero-inflated outcome: conversion x severity, any K >= 2.

    Conversion ``1[y > 0]`` is a probit BCF; the log of the positive outcomes a Gaussian BCF;
    the revenue per visitor of treatment ``a`` is ``p_a * m_a`` with
    ``m = exp(mu_log + sigma^2 / 2)``. One treatment forest per non-control treatment
    (contrast coding, :func:`pytyche.bcf.preprocess._compute_basis`).

    Parameters
    ----------
    observed
        The experiment's data: a non-negative outcome with a zero mass and a positive tail,
        at least 3 converters in every treatment.
    pooling
        ``"joint"`` (default): the two channels share tree topology (bivariate leaves), so the
        per-visitor RPV CATE decomposes cleanly and the channels borrow strength.
        ``"independent"``: separate conversion and severity fits, composed per draw.
    config, observed_copy, progress, calibration, **config_overrides
        As :func:`pytyche.bcf.fit_continuous_bcf`.

    Returns
    -------
    HurdleBCFResult
        ``outcome_samples`` are RPV draws ``(n, S, K)``; ``decomposition`` carries the
        conversion probabilities, expected severities and RPV CATEs; ``pooling`` records the
        mode.

    Raises
    ------
    TypeError
        As :func:`pytyche.bcf.fit_continuous_bcf`.
    ValueError
        If ``pooling`` is not ``"joint"`` or ``"independent"``, ``observed_copy`` is invalid,
        the outcome has negative values, or a treatment has fewer than 3 converters.

    Examples
    --------
    >>> posterior = fit_hurdle_bcf(observed, pooling="joint")  # doctest: +SKIP
    >>> posterior.decomposition.p_samples.shape  # doctest: +SKIP
    (n, S, K)
    """
    if pooling == "joint":  # one MCMC: the request's fit (pytyche.bcf.request), as a batch runs it
        from pytyche.bcf.request import request_for

        return request_for(
            MetricFamily.HURDLE, observed, config=config, observed_copy=observed_copy, progress=progress,
            calibration=calibration, overrides=config_overrides, pooling=pooling,
        )._run(stacklevel=5)
    where = "fit_hurdle_bcf"
    observed, cfg, progress = check_common(
        observed, observed_copy, progress, calibration, config, config_overrides, where, table=HURDLE_FIT_CONSTRAINTS, pooling=pooling
    )
    check_hurdle_outcome(observed, where)
    stash = stash_observed(observed, observed_copy, where=where)
    from pytyche.bcf.hurdle.compose import independent_channels
    from pytyche.bcf.hurdle.model import fit_hurdle

    result = fit_hurdle(observed, stash, cfg, progress, observed_copy, pooling, independent_channels)
    return attach_calibration(result, calibration)
