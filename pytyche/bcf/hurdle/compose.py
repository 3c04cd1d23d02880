"""Independent-pooling hurdle BCF: a probit BCF for conversion and a Gaussian BCF for
log-severity, fitted separately and composed per draw.

The literature's two-stage baseline (``pooling="independent"``): the channels share no trees,
so each gets its own heterogeneity structure. The severity model is fitted on converters only;
the sampler returns draws at its training rows, so it is run on every row with the severity
of non-converters marked missing (zero likelihood precision: the same posterior as a fit on
converters alone, and it predicts the severity a non-converter would have had). Draw ``s`` of
the composition pairs draw ``s`` of each fit: the two posteriors are independent, so the
pairs are draws of their product.
"""

from __future__ import annotations

import dataclasses

from scipy.special import ndtr

from pytyche.bcf._fitting import Timer, arm_surfaces, sigma_draws
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.hurdle.model import hurdle_arrays, severity_mean
from pytyche.bcf.preprocess import design_from_observed
from pytyche.bcf.results import HurdleBCFResult, build_decomposition
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["_fit_independent_hurdle_bcf"]


def _fit_independent_hurdle_bcf(
    observed: ObservedExperimentData,
    stash: ObservedExperimentData,
    config: GPUBCFConfig,
    progress: bool,
    observed_copy: str,
) -> HurdleBCFResult:
    """Fit the two channels separately and compose (validated inputs).

    The conversion fit uses ``config.seed``, the severity fit ``config.seed + 1`` so the two
    chains run on distinct random streams.
    """
    from pytyche.bcf.sampler import run_bcf

    with Timer() as timer:
        design = design_from_observed(observed)
        conv, log_sev, converted = hurdle_arrays(observed)
        common = dict(n_arms=design.n_arms, mu_covariates=design.mu_covariates, progress=progress)
        conv_draws = run_bcf(design.x, design.arm, conv[None, :], outcome_types=("binary",), config=config, **common)
        sev_config = dataclasses.replace(config, seed=config.seed + 1)
        sev_draws = run_bcf(
            design.x,
            design.arm,
            log_sev[None, :],
            ~converted[None, :],
            outcome_types=("continuous",),
            config=sev_config,
            **common,
        )
        p = arm_surfaces(conv_draws.mu, conv_draws.tau, 0)
        ndtr(p, out=p)
        sigma = sigma_draws(sev_draws.sigma, 0)
        sev = severity_mean(arm_surfaces(sev_draws.mu, sev_draws.tau, 0), sigma)
        decomposition, rpv = build_decomposition(p, sev)
    return HurdleBCFResult(
        observed=stash,
        treatments=observed.variant_names,
        config=config,
        outcome_samples=rpv,
        n_chains=config.num_chains,
        sigma_samples=sigma,
        decomposition=decomposition,
        pooling="independent",
        fit_info={
            "n_compilations": conv_draws.n_compilations + sev_draws.n_compilations,
            "fit_seconds": timer.seconds,
            "observed_copy": observed_copy,
        },
    )
