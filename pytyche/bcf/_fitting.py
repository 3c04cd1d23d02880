"""Shared plumbing of the public BCF fit functions: validation, config, draws -> per-arm arrays."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from pytyche._validation import InstanceOf, InsufficientDataError, Options, invalid, validate, wrong_type
from pytyche.bcf.config import GPUBCFConfig
from pytyche.bcf.results import POOLING_MODES
from pytyche.bcf.stash import OBSERVED_COPY_MODES
from pytyche.contracts.observed import ObservedExperimentData

#: converters (outcome > 0) every treatment needs for a hurdle fit: the severity channel
#: estimates a mean and an error sd per arm from them
MIN_CONVERTERS_PER_ARM = 3

_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(GPUBCFConfig))


def check_observed(observed: Any, where: str) -> ObservedExperimentData:
    if not isinstance(observed, ObservedExperimentData):
        raise wrong_type("observed", where, "an ObservedExperimentData", observed)
    return observed


#: the scalar settings every fit entry point shares (checked before the data; the observed data,
#: config, keyword overrides and calibration are checked by hand)
FIT_CONSTRAINTS: dict[str, Any] = {
    "observed_copy": Options(OBSERVED_COPY_MODES),
    "progress": InstanceOf((bool, np.bool_), "a bool"),
}

#: :func:`pytyche.bcf.fit_hurdle_bcf`'s settings: the shared ones and ``pooling``
HURDLE_FIT_CONSTRAINTS: dict[str, Any] = {**FIT_CONSTRAINTS, "pooling": Options(POOLING_MODES)}


def resolve_config(config: Any, overrides: dict[str, Any], where: str) -> GPUBCFConfig:
    """``config`` (default ``GPUBCFConfig()``) with keyword overrides applied.

    Unknown override names raise ``TypeError`` like an unexpected keyword argument, listing
    the valid ones; bad values raise from ``GPUBCFConfig``'s own validation.
    """
    if config is None:
        config = GPUBCFConfig()
    elif not isinstance(config, GPUBCFConfig):
        raise wrong_type("config", where, "a GPUBCFConfig or None", config)
    unknown = sorted(set(overrides) - set(_CONFIG_FIELDS))
    if unknown:
        raise TypeError(
            f"{where}() got unexpected keyword argument(s) {unknown}. Keyword arguments beyond "
            f"'config', 'observed_copy', 'progress' and 'calibration' must be GPUBCFConfig fields: "
            f"{list(_CONFIG_FIELDS)}."
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def check_calibration(calibration: Any, where: str) -> Any:
    if calibration is None:
        return None
    from pytyche.calibrate import Calibration

    if not isinstance(calibration, Calibration):
        raise wrong_type("calibration", where, "a Calibration or None", calibration)
    return calibration


def check_outcome_scale(observed: ObservedExperimentData, where: str) -> None:
    """Refuse outcomes too large for float32 draws (see ``pytyche.bcf._inputs.MAX_ABS_OUTCOME``), naming the cause."""
    from pytyche.bcf._inputs import MAX_ABS_OUTCOME

    y = np.asarray(observed.outcome, dtype=np.float64)
    big = float(np.abs(y).max(initial=0.0))
    if big > MAX_ABS_OUTCOME:
        raise invalid(
            "observed",
            where,
            f"data whose outcome magnitudes are at most {MAX_ABS_OUTCOME:g} (posterior draws are float32, "
            f"largest value 3.4e38); rescale outcome column {observed.schema.outcome!r}",
            f"a value of magnitude {big:.3g}",
            show=False,
        )


def check_finite_posterior(result: Any) -> Any:
    """Never return a posterior holding a NaN or infinite draw: raise ``FloatingPointError``."""
    arrays = {"outcome_samples": result.outcome_samples, "sigma_samples": result.sigma_samples}
    dec = result.decomposition
    if dec is not None:
        arrays.update({f"decomposition.{f.name}": getattr(dec, f.name) for f in dataclasses.fields(dec)})
    bad = {}
    for name, a in arrays.items():
        if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating):
            count = int(a.size - np.count_nonzero(np.isfinite(a)))
            if count:
                bad[name] = f"{count} of {a.size}"
    if bad:
        raise FloatingPointError(
            f"The {type(result).__name__} posterior has non-finite draws ({bad} values are NaN or inf), so it is "
            "not returned. A channel overflowed (e.g. exp of a huge log-severity): rescale the outcome towards O(1)."
        )
    return result


def check_common(
    observed: Any,
    observed_copy: Any,
    progress: Any,
    calibration: Any,
    config: Any,
    overrides: dict[str, Any],
    where: str,
    *,
    table: dict[str, Any] = FIT_CONSTRAINTS,
    **settings: Any,
) -> tuple[ObservedExperimentData, GPUBCFConfig, bool]:
    """Validate the arguments every fit entry point shares.

    The scalar settings first, against ``table`` (``settings`` holds those beyond ``observed_copy``
    and ``progress``, e.g. ``pooling``), then the data, config and calibration.
    """
    validate(dict(observed_copy=observed_copy, progress=progress, **settings), table, where)
    progress = bool(progress)
    observed = check_observed(observed, where)
    check_outcome_scale(observed, where)
    cfg = resolve_config(config, overrides, where)
    check_calibration(calibration, where)
    return observed, cfg, progress


def arm_surfaces(mu: np.ndarray, tau: np.ndarray, component: int) -> np.ndarray:
    """Per-arm surfaces of one component as ``(n, S, K)`` float32.

    ``mu``: ``(chains, draws, k, n)``; ``tau``: ``(chains, draws, K-1, k, n)``. Arm 0 is
    ``mu``, arm ``a`` is ``mu + tau_a``; the sample axis is chain-major.
    """
    c, d, _, n = mu.shape
    k_minus_1 = tau.shape[2]
    m = mu[:, :, component, :].reshape(c * d, n).T  # (n, S)
    t = tau[:, :, :, component, :].reshape(c * d, k_minus_1, n).transpose(2, 0, 1)  # (n, S, K-1)
    out = np.empty((n, c * d, k_minus_1 + 1), dtype=np.float32)
    out[..., 0] = m
    out[..., 1:] = m[..., None] + t
    return out


def sigma_draws(sigma: np.ndarray, component: int) -> np.ndarray:
    """``(S,)`` chain-major error-sd draws of one component."""
    return np.ascontiguousarray(sigma[:, :, component].reshape(-1), dtype=np.float32)


def attach_calibration(result: Any, calibration: Any, *, stacklevel: int = 3) -> Any:
    """Check the posterior is finite (:func:`check_finite_posterior`), then attach ``calibration``;
    an explicit ``Calibration.skip()`` labels the result and warns once.

    The warning fires on the first fit with a given skip object (docs/concepts.md, *Claim level*: "uncalibrated
    posteriors are explicitly labeled in result objects and the library emits a warning on first
    fit"); ``calibration=None`` attaches nothing and stays silent at this level. ``stacklevel``
    counts frames from this function's caller (3: the caller of the ``fit_*`` that called it).
    """
    check_finite_posterior(result)
    if calibration is None:
        return result
    if getattr(calibration, "skipped", False):
        from pytyche.calibrate.warnings import warn_uncalibrated_once

        # frames: warn <- attach_calibration <- fit_* <- the caller
        warn_uncalibrated_once(
            calibration,
            "This posterior is explicitly uncalibrated (Calibration.skip()): its intervals are raw BCF "
            "intervals, whose coverage moves with the regime and the sample size. Pass "
            "Calibration.from_sweep(...) to correct them where its evidence supports it.",
            stacklevel=stacklevel,
        )
    return result.apply_calibration(calibration)


class Timer:
    """Wall-clock seconds of a fit, for ``fit_info``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def fit_fields(
    observed: ObservedExperimentData, stash: ObservedExperimentData, config: GPUBCFConfig, timer: Timer, n_compilations: int, observed_copy: str
) -> dict[str, Any]:
    """The fields every fit result records alike (keyword arguments of its constructor).

    The stashed data, the treatments of ``observed``, the config, its chain count and
    ``fit_info``: the MCMC compilations, the seconds ``timer`` measured and the copy mode.
    """
    return {
        "observed": stash,
        "treatments": observed.variant_names,
        "config": config,
        "n_chains": config.num_chains,
        "fit_info": {"n_compilations": n_compilations, "fit_seconds": timer.seconds, "observed_copy": observed_copy},
    }


def check_hurdle_outcome(observed: ObservedExperimentData, where: str) -> np.ndarray:
    """Validate a hurdle outcome and return the conversion indicator ``y > 0``.

    A hurdle outcome is a zero mass plus a positive tail: no negative values, and at least
    :data:`MIN_CONVERTERS_PER_ARM` converters in every treatment.
    """
    y = observed.outcome
    if np.any(y < 0):
        raise invalid(
            "observed",
            where,
            "a hurdle outcome (zeros and a positive tail, no negative values)",
            f"{int(np.sum(y < 0))} negative values in outcome column {observed.schema.outcome!r}",
            show=False,
        )
    conv = y > 0
    counts = {name: int(conv[lo:hi].sum()) for name, lo, hi in zip(observed.variant_names, observed.offsets[:-1], observed.offsets[1:])}
    short = {k: v for k, v in counts.items() if v < MIN_CONVERTERS_PER_ARM}
    if short:
        raise invalid(
            "observed",
            where,
            f"a hurdle outcome with a positive tail: at least {MIN_CONVERTERS_PER_ARM} converters "
            f"(outcome {observed.schema.outcome!r} > 0) in every treatment",
            f"converter counts {counts}",
            show=False,
            exc=InsufficientDataError,
        )
    return conv
