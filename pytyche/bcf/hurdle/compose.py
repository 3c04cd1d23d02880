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

from pytyche.bcf._fitting import Timer, arm_surfaces, sigma_draws
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.hurdle.model import assemble_hurdle_result, hurdle_arrays
from pytyche.bcf.preprocess import design_from_observed
from pytyche.bcf.results import HurdleBCFResult
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
        sigma = sigma_draws(sev_draws.sigma, 0)
        latent = arm_surfaces(conv_draws.mu, conv_draws.tau, 0)
        log_surface = arm_surfaces(sev_draws.mu, sev_draws.tau, 0)
    return assemble_hurdle_result(
        stash=stash,
        treatments=observed.variant_names,
        config=config,
        latent=latent,
        log_surface=log_surface,
        sigma=sigma,
        pooling="independent",
        fit_info={
            "n_compilations": conv_draws.n_compilations + sev_draws.n_compilations,
            "fit_seconds": timer.seconds,
            "observed_copy": observed_copy,
        },
    )
