"""Binary-outcome (probit) BCF: ``fit_binary_bcf``."""

from __future__ import annotations

from typing import Any

from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.results import BinaryBCFResult
from pytyche.bcf.stash import ObservedCopy
from pytyche.contracts.enums import MetricFamily
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["fit_binary_bcf"]


def fit_binary_bcf(
    observed: ObservedExperimentData,
    *,
    config: GPUBCFConfig | None = None,
    observed_copy: ObservedCopy = "view",
    progress: bool = False,
    calibration: Any = None,
    **config_overrides: Any,
) -> BinaryBCFResult:
    """Fit a probit Bayesian Causal Forest to a binary (0/1) outcome, any number of treatments.

    ``P(y = 1 | x, a) = Phi(mu(x, pi) + tau_a(x))`` (``tau_0 = 0`` for control) with the
    Albert-Chib latent Gaussian: a prognostic forest over the features and recorded
    propensities, and one treatment forest ``tau_a`` over the features per non-control arm
    (contrast coding: ``tau_a`` is arm ``a``'s probit-scale effect versus control).

    Parameters
    ----------
    observed
        The experiment's data (K >= 2 treatments, control first); every outcome 0 or 1.
    config, observed_copy, progress, calibration, **config_overrides
        As :func:`pytyche.bcf.fit_continuous_bcf`.

    Returns
    -------
    BinaryBCFResult
        ``outcome_samples[i, s, a]``: draw ``s`` of visitor ``i``'s conversion probability
        under treatment ``a``; ``cate_samples[..., a - 1]`` arm ``a``'s effect on it versus
        control.

    Raises
    ------
    TypeError, ValueError
        As :func:`pytyche.bcf.fit_continuous_bcf`; ``ValueError`` also when an outcome is not
        0 or 1.

    Examples
    --------
    >>> posterior = fit_binary_bcf(observed)  # doctest: +SKIP
    >>> posterior.cate_mean().shape  # doctest: +SKIP
    (n, 1)
    """
    from pytyche.bcf.request import request_for

    return request_for(
        MetricFamily.BINARY, observed, config=config, observed_copy=observed_copy, progress=progress,
        calibration=calibration, overrides=config_overrides,
    )._run(stacklevel=5)
