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

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from pytyche.bcf._fitting import Timer, arm_surfaces, fit_fields, sigma_draws
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.preprocess import BCFDesign, design_from_observed
from pytyche.bcf.results import HurdleBCFResult, build_decomposition
from pytyche.contracts.observed import ObservedExperimentData

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.bcf.sampler import BCFDraws

__all__ = [
    "Channels", "fit_hurdle", "hurdle_arrays", "hurdle_surfaces", "joint_arrays", "joint_channels", "joint_draws_channels",
    "severity_mean",
]


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


#: what a pooling's channel fit returns: the ``(n, S, K)`` probit-latent and log-severity
#: surfaces, the ``(S,)`` severity error sd and the number of MCMC compilations it paid for
Channels = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def fit_hurdle(
    observed: ObservedExperimentData,
    stash: ObservedExperimentData,
    config: GPUBCFConfig,
    progress: bool,
    observed_copy: str,
    pooling: str,
    channels: Callable[[BCFDesign, np.ndarray, np.ndarray, np.ndarray, GPUBCFConfig, bool], Channels],
) -> HurdleBCFResult:
    """Fit a hurdle BCF with one pooling's channel fit and compose the :class:`HurdleBCFResult` (validated inputs).

    ``channels(design, conv, log_sev, converted, config, progress)`` runs the pooling's MCMC on
    the design and :func:`hurdle_arrays` of ``observed`` (:func:`joint_channels`, or
    :func:`pytyche.bcf.hurdle.compose.independent_channels`); its surfaces are consumed in place.
    ``fit_info["fit_seconds"]`` times the design and the channel fit.
    """
    with Timer() as timer:
        design = design_from_observed(observed)
        latent, log_surface, sigma, n_compilations = channels(design, *hurdle_arrays(observed), config, progress)
    p, sev = hurdle_surfaces(latent, log_surface, sigma)
    decomposition, rpv = build_decomposition(p, sev)
    fields = fit_fields(observed, stash, config, timer, n_compilations, observed_copy)
    return HurdleBCFResult(**fields, outcome_samples=rpv, sigma_samples=sigma, decomposition=decomposition, pooling=pooling)


def hurdle_surfaces(latent: np.ndarray, log_surface: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conversion probabilities ``Phi(latent)`` and log-normal mean severities, both ``(n, S, K)``, in place."""
    p = ndtr(latent, out=latent)
    return p, severity_mean(log_surface, sigma)


def joint_arrays(conv: np.ndarray, log_sev: np.ndarray, converted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint fit's ``(2, n)`` outcome ``(conversion, log-severity)`` and its missing mask
    (severity missing at non-converters), from :func:`hurdle_arrays`."""
    return np.stack([conv, log_sev]), np.stack([np.zeros_like(converted), ~converted])


def joint_draws_channels(draws: "BCFDraws") -> Channels:
    """The joint fit's channels from its bivariate draws: latent and log-severity surfaces, the
    severity error sd, the compilations."""
    sigma = sigma_draws(draws.sigma, 1)
    return arm_surfaces(draws.mu, draws.tau, 0), arm_surfaces(draws.mu, draws.tau, 1), sigma, draws.n_compilations


def joint_channels(
    design: BCFDesign, conv: np.ndarray, log_sev: np.ndarray, converted: np.ndarray, config: GPUBCFConfig, progress: bool
) -> Channels:
    """The shared-topology fit (``pooling="joint"``): one bivariate MCMC, severity missing at non-converters."""
    from pytyche.bcf.sampler import run_bcf

    y, missing = joint_arrays(conv, log_sev, converted)
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
    return joint_draws_channels(draws)
