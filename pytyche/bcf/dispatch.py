"""``pt.fit``: pick the BCF fit from the outcome, deterministically.

The dispatch table (docs/concepts.md, *Outcome*), on the outcome array ``Y`` (``observed.outcome``) and the
treatment count ``K = observed.n_variants``:

==========================================  =========================================
``Y``                                       fit
==========================================  =========================================
every value in {0, 1}                       :func:`~pytyche.bcf.fit_binary_bcf` (any K)
float, < 30% zeros                          :func:`~pytyche.bcf.fit_continuous_bcf` (any K)
float, >= 30% zeros, positive tail          :func:`~pytyche.bcf.fit_hurdle_bcf` (joint, any K)
every value 0                               ``ValueError`` (binary or hurdle? neither fits)
==========================================  =========================================

The classification is :meth:`pytyche.contracts.MetricFamily.infer` (threshold
:data:`pytyche.contracts.HURDLE_ZERO_SHARE`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytyche.bcf._fitting import check_observed
from pytyche.contracts.enums import MetricFamily
from pytyche.contracts.observed import ObservedExperimentData

__all__ = ["_dispatch_fit", "fit"]


def _dispatch_fit(observed: ObservedExperimentData, *, where: str = "fit") -> tuple[MetricFamily, Callable[..., Any]]:
    """The metric family of ``observed`` and the fit function ``pt.fit`` calls for it.

    Raises
    ------
    TypeError
        If ``observed`` is not an ``ObservedExperimentData``.
    ValueError
        If every outcome is zero (binary with no successes or hurdle with no converters).
    """
    observed = check_observed(observed, where)
    family = MetricFamily.infer(observed.outcome)
    if family is MetricFamily.BINARY:
        from pytyche.bcf.binary import fit_binary_bcf

        return family, fit_binary_bcf
    if family is MetricFamily.CONTINUOUS:
        from pytyche.bcf.continuous import fit_continuous_bcf

        return family, fit_continuous_bcf
    from pytyche.bcf.hurdle import fit_hurdle_bcf

    return family, fit_hurdle_bcf


def fit(observed: ObservedExperimentData, **kwargs: Any) -> Any:
    """Fit the BCF the outcome calls for (``pt.fit``).

    Dispatches deterministically on the outcome (the same ``observed`` always selects the
    same fit): all {0, 1} -> :func:`~pytyche.bcf.fit_binary_bcf`; float with fewer than 30%
    zeros -> :func:`~pytyche.bcf.fit_continuous_bcf`; float with at least 30% zeros and a
    positive tail -> :func:`~pytyche.bcf.fit_hurdle_bcf` (``pooling="joint"`` unless given).
    Every family fits any number of treatments ``K >= 2`` (one treatment forest per
    non-control arm). ``**kwargs`` are forwarded verbatim to the selected function.

    Parameters
    ----------
    observed
        The experiment's data.
    **kwargs
        Passed unchanged to the selected fit (``config``, ``observed_copy``, ``progress``,
        ``calibration``, ``pooling`` for hurdle, ``GPUBCFConfig`` field overrides).

    Returns
    -------
    BinaryBCFResult | ContinuousBCFResult | HurdleBCFResult

    Raises
    ------
    TypeError
        If ``observed`` is not an ``ObservedExperimentData`` (or the selected fit rejects a
        keyword).
    ValueError
        If every outcome is zero: it reads as a binary metric with no successes or a hurdle
        metric with no converters, and neither can be fitted.

    Examples
    --------
    >>> import pytyche as pt  # doctest: +SKIP
    >>> posterior = pt.fit(observed)  # doctest: +SKIP
    >>> posterior = pt.fit(observed, pooling="independent")  # doctest: +SKIP
    """
    _, fit_fn = _dispatch_fit(observed, where="fit")
    return fit_fn(observed, **kwargs)
