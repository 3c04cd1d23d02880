"""A fit in two halves: the MCMC's inputs (a `FitRequest`), and the posterior built from its draws.

``pt.fit`` validates the data, lays it out for the sampler, runs the MCMC (`run_bcf`) and builds
the posterior from the draws. `fit_request` does the first part and stops, so that a caller can
run the MCMC itself -- in particular, run several requests as one batched MCMC
(`pytyche.bcf.batch.run_bcf_batch`) -- and then build each posterior with
`FitRequest.posterior`. `FitRequest.fit` is the whole fit; the fit functions
(`fit_binary_bcf`, `fit_continuous_bcf`, `fit_hurdle_bcf` with ``pooling="joint"``) are
`fit_request` followed by it, so a posterior built from a request's draws is the one the fit
function returns for the same draws. On the CPU, `run_bcf_batch`'s draws are bitwise those of
`run_bcf` (`pytyche.bcf.batch`), so `fit_batch` returns bitwise the posteriors of the unbatched
fits.

Independent hurdle pooling (two MCMCs per fit) has no request: `fit_request` refuses it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtr

from pytyche._validation import invalid, wrong_type
from pytyche.bcf._fitting import (
    HURDLE_FIT_CONSTRAINTS,
    Timer,
    arm_surfaces,
    attach_calibration,
    check_common,
    check_hurdle_outcome,
    fit_fields,
    sigma_draws,
)
from pytyche.bcf.config import GPUBCFConfig
from pytyche.contracts.enums import MetricFamily
from pytyche.contracts.observed import ObservedExperimentData

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.bcf.batch import BatchKey, BCFData
    from pytyche.bcf.results import BCFPosterior
    from pytyche.bcf.sampler import BCFDraws

__all__ = ["FitRequest", "fit_batch", "fit_request"]

#: the fit function each family's request stands for (its name is the ``where`` of its errors)
_FIT_NAMES = {
    MetricFamily.BINARY: "fit_binary_bcf",
    MetricFamily.CONTINUOUS: "fit_continuous_bcf",
    MetricFamily.HURDLE: "fit_hurdle_bcf",
}
_OUTCOME_TYPES = {
    MetricFamily.BINARY: ("binary",),
    MetricFamily.CONTINUOUS: ("continuous",),
    MetricFamily.HURDLE: ("binary", "continuous"),
}


@dataclass(frozen=True, eq=False)
class FitRequest:
    """One BCF fit's validated inputs, before its MCMC runs.

    Build it with `fit_request`; run it with `fit` (unbatched) or with `fit_batch` beside other
    requests, or run `run_bcf` / `run_bcf_batch` on its `data` yourself and pass the draws to
    `posterior`.

    Attributes
    ----------
    family
        The metric family, which picks the fit (`pytyche.bcf.dispatch`).
    observed
        The validated data the posterior describes.
    data
        The sampler's data: features, arms, the ``(k, n)`` outcome, its missing mask and the
        mu-only propensity columns (`pytyche.bcf.batch.BCFData`).
    outcome_types, n_arms
        The sampler's component types and the number of treatments ``K``.
    config
        The resolved MCMC settings; ``config.seed`` is the fit's seed.
    progress
        Whether the fit shows a progress bar.
    observed_copy
        How the posterior stashes ``observed`` (``"view"``, ``"deep"`` or ``"ref"``).
    calibration
        Attached to the posterior (`pytyche.calibrate.Calibration`), or ``None``.
    stash
        The stashed copy of ``observed`` the posterior carries.
    design_seconds
        Seconds spent laying the data out; part of the posterior's ``fit_info["fit_seconds"]``.
    """

    family: MetricFamily
    observed: ObservedExperimentData
    data: "BCFData"
    outcome_types: tuple[str, ...]
    n_arms: int
    config: GPUBCFConfig
    progress: bool
    observed_copy: str
    calibration: Any
    stash: ObservedExperimentData
    design_seconds: float = 0.0

    @property
    def seed(self) -> int:
        """The fit's PRNG seed (``config.seed``)."""
        return int(self.config.seed)

    @property
    def where(self) -> str:
        """The fit function this request stands for (named in its errors)."""
        return _FIT_NAMES[self.family]

    def batch_key(self) -> "BatchKey":
        """The `~pytyche.bcf.batch.BatchKey` of this fit: requests with equal keys and equal
        configs but for the seed (`same_program`) can share one `fit_batch` call."""
        from pytyche.bcf.batch import batch_key

        return batch_key(self.data, outcome_types=self.outcome_types, n_arms=self.n_arms, config=self.config)

    def same_program(self) -> tuple["BatchKey", GPUBCFConfig]:
        """What two requests must share to run in one batch: the batch key and the config with
        its seed set to 0 (hashable, for grouping)."""
        return self.batch_key(), replace(self.config, seed=0)

    def fit(self) -> "BCFPosterior":
        """Run the MCMC (`pytyche.bcf.sampler.run_bcf`) and return the posterior: the result of
        the fit function this request stands for."""
        return self._run(stacklevel=5)

    def _run(self, stacklevel: int) -> "BCFPosterior":
        """`fit`, with the stack level of an uncalibrated-warning counted from `attach_calibration`
        (5 from a fit function: attach <- _build <- _run <- fit_* <- its caller)."""
        from pytyche.bcf.sampler import run_bcf

        d = self.data
        t0 = time.perf_counter()
        draws = run_bcf(
            d.x, d.arm, d.y, d.missing, outcome_types=self.outcome_types, n_arms=self.n_arms, config=self.config,
            mu_covariates=d.mu_covariates, progress=self.progress,
        )
        return self._build(draws, time.perf_counter() - t0, stacklevel)

    def posterior(self, draws: "BCFDraws", *, seconds: float = 0.0) -> "BCFPosterior":
        """The posterior of this request's data from its MCMC draws (`run_bcf`'s or one dataset's
        of `run_bcf_batch`).

        Parameters
        ----------
        draws
            The draws at this request's rows, of its outcome types.
        seconds
            MCMC seconds to record in ``fit_info["fit_seconds"]`` (beside the layout's and the
            posterior's own time).

        Returns
        -------
        BinaryBCFResult | ContinuousBCFResult | HurdleBCFResult
            With the request's calibration attached, as the fit function returns it.

        Raises
        ------
        ValueError
            When the draws do not match the request (outcome types or row count).
        FloatingPointError
            When a draw is NaN or infinite.
        """
        return self._build(draws, seconds, stacklevel=4)

    def _build(self, draws: "BCFDraws", seconds: float, stacklevel: int) -> "BCFPosterior":
        """`posterior`; ``stacklevel`` as `_run`'s."""
        from pytyche.bcf.results import BinaryBCFResult, ContinuousBCFResult, HurdleBCFResult

        if tuple(draws.outcome_types) != self.outcome_types or draws.mu.shape[-1] != self.observed.n_visitors:
            raise invalid(
                "draws", "FitRequest.posterior",
                f"draws of this request's fit (outcome types {self.outcome_types}, {self.observed.n_visitors} rows)",
                f"outcome types {tuple(draws.outcome_types)} at {draws.mu.shape[-1]} rows", show=False,
            )
        with Timer() as timer:
            if self.family is MetricFamily.HURDLE:
                from pytyche.bcf.hurdle.model import hurdle_surfaces, joint_draws_channels

                latent, log_surface, sigma, n_comp = joint_draws_channels(draws)
                p, sev = hurdle_surfaces(latent, log_surface, sigma)
                from pytyche.bcf.results import build_decomposition

                decomposition, rpv = build_decomposition(p, sev)
                extra: dict[str, Any] = dict(outcome_samples=rpv, sigma_samples=sigma, decomposition=decomposition, pooling="joint")
                cls: Any = HurdleBCFResult
            elif self.family is MetricFamily.BINARY:
                prob = arm_surfaces(draws.mu, draws.tau, 0)
                ndtr(prob, out=prob)  # P(y = 1) = Phi(latent), in place
                extra, cls = dict(outcome_samples=prob, sigma_samples=None), BinaryBCFResult
            else:
                extra = dict(outcome_samples=arm_surfaces(draws.mu, draws.tau, 0), sigma_samples=sigma_draws(draws.sigma, 0))
                cls = ContinuousBCFResult
        timer.seconds += self.design_seconds + float(seconds)
        f = fit_fields(self.observed, self.stash, self.config, timer, draws.n_compilations, self.observed_copy)
        return attach_calibration(cls(**f, **extra), self.calibration, stacklevel=stacklevel)


def _layout(family: MetricFamily, observed: ObservedExperimentData) -> tuple["BCFData", int]:
    """The sampler's data of a validated ``observed`` and its ``K``."""
    from pytyche.bcf.batch import BCFData
    from pytyche.bcf.preprocess import design_from_observed

    design = design_from_observed(observed)
    if family is MetricFamily.HURDLE:
        from pytyche.bcf.hurdle.model import hurdle_arrays, joint_arrays

        y, missing = joint_arrays(*hurdle_arrays(observed))
    elif family is MetricFamily.BINARY:
        y, missing = np.asarray(observed.outcome)[None, :], None
    else:
        y, missing = np.asarray(observed.outcome, dtype=np.float64)[None, :], None
    return BCFData(design.x, design.arm, y, missing, design.mu_covariates), design.n_arms


def request_for(
    family: MetricFamily,
    observed: Any,
    *,
    config: Any,
    observed_copy: Any,
    progress: Any,
    calibration: Any,
    overrides: dict[str, Any],
    pooling: Any = "joint",
) -> FitRequest:
    """``family``'s request with every check of its fit function, in the same order and with the
    same messages (the fit functions call it)."""
    from pytyche.bcf.stash import stash_observed

    where = _FIT_NAMES[family]
    if family is MetricFamily.HURDLE:
        observed, cfg, progress = check_common(
            observed, observed_copy, progress, calibration, config, overrides, where, table=HURDLE_FIT_CONSTRAINTS, pooling=pooling
        )
        if pooling != "joint":
            raise invalid("pooling", "fit_request", "'joint' (independent pooling runs two MCMCs: call fit_hurdle_bcf)", pooling)
        check_hurdle_outcome(observed, where)
    else:
        observed, cfg, progress = check_common(observed, observed_copy, progress, calibration, config, overrides, where)
        if family is MetricFamily.BINARY:
            y = np.asarray(observed.outcome)
            if not np.all((y == 0) | (y == 1)):
                bad = np.unique(y[(y != 0) & (y != 1)])[:5].tolist()
                raise invalid(
                    "observed", where, f"a binary outcome (every value of column {observed.schema.outcome!r} 0 or 1)",
                    f"values such as {bad}", show=False,
                )
    stash = stash_observed(observed, observed_copy, where=where)
    t0 = time.perf_counter()
    data, n_arms = _layout(family, observed)
    return FitRequest(
        family=family, observed=observed, data=data, outcome_types=_OUTCOME_TYPES[family], n_arms=n_arms, config=cfg,
        progress=progress, observed_copy=observed_copy, calibration=calibration, stash=stash,
        design_seconds=time.perf_counter() - t0,
    )


def fit_request(
    observed: ObservedExperimentData,
    *,
    config: GPUBCFConfig | None = None,
    observed_copy: str = "view",
    progress: bool = False,
    calibration: Any = None,
    pooling: str = "joint",
    **config_overrides: Any,
) -> FitRequest:
    """The `FitRequest` of the fit ``pt.fit(observed, ...)`` would run: validated, laid out, not run.

    Dispatches on the outcome as ``pt.fit`` does (`pytyche.bcf.dispatch`) and runs the chosen fit
    function's checks, so a refused dataset is refused here with that function's error.

    Parameters
    ----------
    observed
        The experiment's data.
    config, observed_copy, progress, calibration, **config_overrides
        As for `pytyche.bcf.fit_continuous_bcf` (e.g. ``seed=...`` sets the fit's seed).
    pooling
        Hurdle outcomes only: ``"joint"`` (the default, and the only pooling with a request).

    Returns
    -------
    FitRequest

    Raises
    ------
    TypeError, ValueError
        As ``pt.fit`` for the same arguments; ``ValueError`` naming ``pooling`` for
        ``"independent"``. `pytyche.InsufficientDataError` (a ``ValueError``) for a hurdle
        outcome with too few converters.

    Examples
    --------
    >>> req = fit_request(observed, config=cfg, seed=3)  # doctest: +SKIP
    >>> posterior = req.fit()  # the same as pt.fit(observed, config=cfg, seed=3)  # doctest: +SKIP
    """
    from pytyche.bcf.dispatch import _dispatch_fit

    family, _ = _dispatch_fit(observed, where="fit_request")
    return request_for(
        family, observed, config=config, observed_copy=observed_copy, progress=progress, calibration=calibration,
        overrides=config_overrides, pooling=pooling,
    )


def fit_batch(requests: Sequence[FitRequest], *, progress: bool = False) -> list["BCFPosterior"]:
    """Run B requests as one batched MCMC (`pytyche.bcf.batch.run_bcf_batch`); their posteriors, in order.

    Each request keeps its own seed, priors and scaling. On the CPU each posterior is bitwise
    the one ``request.fit()`` returns (``fit_info["fit_seconds"]`` aside: each request records
    an equal share of the batch's MCMC time).

    Parameters
    ----------
    requests
        B >= 1 requests sharing `FitRequest.same_program` (batch key, and config but the seed).
    progress
        Show a progress bar over the batch's iterations.

    Returns
    -------
    list of BCFPosterior

    Raises
    ------
    TypeError
        When an element is not a `FitRequest`.
    ValueError
        When the requests differ in their program (the message names the field), or as
        `run_bcf_batch` raises.
    """
    from pytyche.bcf.batch import run_bcf_batch

    where = "fit_batch"
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence) or not requests:
        raise wrong_type("requests", where, "a non-empty sequence of FitRequest", requests)
    for r in requests:
        if not isinstance(r, FitRequest):
            raise wrong_type("requests", where, "a sequence of FitRequest", r)
    first = requests[0]
    base = replace(first.config, seed=0)
    for i, r in enumerate(requests[1:], start=1):
        if r.outcome_types != first.outcome_types or r.n_arms != first.n_arms:
            raise invalid(
                "requests", where, f"requests of one outcome layout (requests[0]: {first.outcome_types}, K={first.n_arms})",
                f"requests[{i}] with {r.outcome_types}, K={r.n_arms}", show=False,
            )
        other = replace(r.config, seed=0)
        if other != base:
            diff = [f.name for f in fields(GPUBCFConfig) if getattr(other, f.name) != getattr(base, f.name)]
            raise invalid(
                "requests", where, "requests whose configs differ in the seed only",
                f"requests[{i}] differing from requests[0] in {diff}", show=False,
            )
    t0 = time.perf_counter()
    draws = run_bcf_batch(
        [r.data for r in requests], outcome_types=first.outcome_types, n_arms=first.n_arms, config=base,
        seeds=[r.seed for r in requests], progress=progress,
    )
    share = (time.perf_counter() - t0) / len(requests)
    return [r._build(d, share, stacklevel=4) for r, d in zip(requests, draws)]
