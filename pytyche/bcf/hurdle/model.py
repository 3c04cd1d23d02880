"""Joint hurdle BCF: conversion (probit) and log-severity (Gaussian) on shared trees.

One MCMC over a bivariate outcome ``(z_i, log y_i)``: component 0 is the Albert-Chib latent of
conversion ``1[y_i > 0]``, component 1 the log-severity, missing for non-converters. Every tree
of the prognostic forest and of each arm's treatment forest has one topology with a 2-vector
leaf, so the two channels share structure (:mod:`pytyche.bcf.kernel`). Per draw ``s``, visitor
``i`` and treatment ``a``::

    p[i, s, a] = Phi(mu_0(x_i) + tau_{a,0}(x_i))
    m[i, s, a] = exp(mu_1(x_i) + tau_{a,1}(x_i) + sigma_s^2 / 2)     (log-normal mean)
    rpv[i, s, a] = p * m,   rpv_cate = rpv[..., 1:] - rpv[..., :1]
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from pytyche.bcf._fitting import Timer, arm_surfaces, sigma_draws
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.preprocess import design_from_observed
from pytyche.bcf.results import HurdleBCFResult, build_decomposition
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["_fit_joint_hurdle_bcf", "assemble_hurdle_result", "hurdle_arrays", "severity_mean"]


def hurdle_arrays(observed: ObservedExperimentData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(conversion (n,), log-severity (n,) with 0 at non-converters, converted mask (n,))``."""
    y = np.asarray(observed.outcome, dtype=np.float64)
    conv = y > 0
    log_sev = np.zeros_like(y)
    log_sev[conv] = np.log(y[conv])
    return conv.astype(np.float64), log_sev, conv


def severity_mean(log_surface: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Log-normal mean ``exp(mu_log + sigma^2 / 2)`` in place: ``(n, S, K)`` and ``(S,)``."""
    log_surface += (0.5 * sigma.astype(np.float32) ** 2)[None, :, None]
    np.exp(log_surface, out=log_surface)
    return log_surface


def assemble_hurdle_result(
    *,
    stash: ObservedExperimentData,
    treatments: tuple[str, ...],
    config: GPUBCFConfig,
    latent: np.ndarray,
    log_surface: np.ndarray,
    sigma: np.ndarray,
    pooling: str,
    fit_info: dict,
) -> HurdleBCFResult:
    """Turn the two channels' per-arm surfaces into a :class:`HurdleBCFResult` (both poolings).

    ``latent`` and ``log_surface`` are ``(n, S, K)`` probit-latent and log-severity surfaces
    (consumed in place), ``sigma`` the ``(S,)`` severity error sd.
    """
    p = ndtr(latent, out=latent)
    sev = severity_mean(log_surface, sigma)
    decomposition, rpv = build_decomposition(p, sev)
    return HurdleBCFResult(
        observed=stash,
        treatments=treatments,
        config=config,
        outcome_samples=rpv,
        n_chains=config.num_chains,
        sigma_samples=sigma,
        decomposition=decomposition,
        pooling=pooling,
        fit_info=fit_info,
    )


def _fit_joint_hurdle_bcf(
    observed: ObservedExperimentData,
    stash: ObservedExperimentData,
    config: GPUBCFConfig,
    progress: bool,
    observed_copy: str,
) -> HurdleBCFResult:
    """Fit the shared-topology hurdle BCF (validated inputs; see :func:`pytyche.bcf.fit_hurdle_bcf`)."""
    from pytyche.bcf.sampler import run_bcf

    with Timer() as timer:
        design = design_from_observed(observed)
        conv, log_sev, converted = hurdle_arrays(observed)
        y = np.stack([conv, log_sev])
        missing = np.stack([np.zeros_like(converted), ~converted])
        draws = run_bcf(
            design.x,
            design.arm,
            y,
            missing,
            outcome_types=("binary", "continuous"),
            n_arms=design.n_arms,
            config=config,
            mu_covariates=design.mu_covariates,
            progress=progress,
        )
        sigma = sigma_draws(draws.sigma, 1)
        latent, log_surface = arm_surfaces(draws.mu, draws.tau, 0), arm_surfaces(draws.mu, draws.tau, 1)
    return assemble_hurdle_result(
        stash=stash,
        treatments=observed.variant_names,
        config=config,
        latent=latent,
        log_surface=log_surface,
        sigma=sigma,
        pooling="joint",
        fit_info={"n_compilations": draws.n_compilations, "fit_seconds": timer.seconds, "observed_copy": observed_copy},
    )
