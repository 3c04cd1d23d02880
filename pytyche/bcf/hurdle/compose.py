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

import numpy as np

from pytyche.bcf._fitting import arm_surfaces, sigma_draws
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.hurdle.model import Channels
from pytyche.bcf.preprocess import BCFDesign

__all__ = ["independent_channels"]


def independent_channels(
    design: BCFDesign, conv: np.ndarray, log_sev: np.ndarray, converted: np.ndarray, config: GPUBCFConfig, progress: bool
) -> Channels:
    """The two channels fitted separately (``pooling="independent"``), for :func:`~pytyche.bcf.hurdle.model.fit_hurdle`.

    The conversion fit uses ``config.seed``, the severity fit ``config.seed + 1`` so the two
    chains run on distinct random streams.
    """
    from pytyche.bcf.sampler import run_bcf

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
    return latent, arm_surfaces(sev_draws.mu, sev_draws.tau, 0), sigma, conv_draws.n_compilations + sev_draws.n_compilations
