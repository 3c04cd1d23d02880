"""Binary-outcome (probit) BCF: ``fit_binary_bcf``."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr

from pytyche._validation import invalid
from pytyche.bcf._fitting import Timer, arm_surfaces, attach_calibration, check_common, fit_fields
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.preprocess import design_from_observed
from pytyche.bcf.results import BinaryBCFResult
from pytyche.bcf.stash import ObservedCopy, stash_observed
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
    where = "fit_binary_bcf"
    observed, cfg, progress = check_common(observed, observed_copy, progress, calibration, config, config_overrides, where)
    y = np.asarray(observed.outcome)
    if not np.all((y == 0) | (y == 1)):
        bad = np.unique(y[(y != 0) & (y != 1)])[:5].tolist()
        raise invalid(
            "observed",
            where,
            f"a binary outcome (every value of column {observed.schema.outcome!r} 0 or 1)",
            f"values such as {bad}",
            show=False,
        )
    stash = stash_observed(observed, observed_copy, where=where)
    from pytyche.bcf.sampler import run_bcf

    with Timer() as timer:
        design = design_from_observed(observed)
        draws = run_bcf(
            design.x,
            design.arm,
            y[None, :],
            outcome_types=("binary",),
            n_arms=design.n_arms,
            config=cfg,
            mu_covariates=design.mu_covariates,
            progress=progress,
        )
        prob = arm_surfaces(draws.mu, draws.tau, 0)
        ndtr(prob, out=prob)  # P(y = 1) = Phi(latent), in place
    fields = fit_fields(observed, stash, cfg, timer, draws.n_compilations, observed_copy)
    result = BinaryBCFResult(**fields, outcome_samples=prob, sigma_samples=None)
    return attach_calibration(result, calibration)
