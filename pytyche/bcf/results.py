"""Posterior result types of the BCF fits.

Every fit returns a frozen dataclass subclassing :class:`BCFPosterior`:

=====================  ==========================  ==================================
result                 ``outcome_samples``         ``decomposition``
=====================  ==========================  ==================================
ContinuousBCFResult    mean outcome per arm        ``None``
BinaryBCFResult        P(conversion) per arm       ``None``
HurdleBCFResult        revenue per visitor (RPV)   p, severity and RPV-CATE draws
=====================  ==========================  ==================================

Sample arrays are ``(n, S, ...)``: visitors in the observed data's variant-major row order,
then ``S = chains * draws`` posterior draws, chain-major (draws ``c * D : (c + 1) * D`` come
from chain ``c``). Arrays are float32 and read-only; derived results share, never copy, them.

Every interval goes through :meth:`BCFPosterior.interval`, the one place where a
:class:`~pytyche.calibrate.Calibration` correction is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from pytyche._wiring import delegate
from pytyche._validation import check_choice, check_float, invalid, wrong_type
from pytyche.contracts.arrays import DecompositionSamples
from pytyche.contracts.enums import ClaimLevel, MetricFamily
from pytyche.contracts.observed import ObservedExperimentData
from pytyche.contracts.results import CREDIBLE_STABILITY, DEFAULT_STABILITY_METHOD
from pytyche.contracts.truth import QUANTITY_FAMILIES

if TYPE_CHECKING:  # pragma: no cover
    from pytyche.bcf.config import GPUBCFConfig
    from pytyche.contracts.results import AnalysisResult, PolicyTreeResult

__all__ = [
    "BCFPosterior",
    "BinaryBCFResult",
    "ContinuousBCFResult",
    "DecompositionSamples",
    "HurdleBCFResult",
    "INTERVAL_FAMILIES",
    "POOLING_MODES",
]

#: the quantity families an interval can be asked for (and a calibration corrects per family)
#: the quantity families an interval can be asked for: the calibration records' families
INTERVAL_FAMILIES: tuple[str, ...] = QUANTITY_FAMILIES
#: hurdle pooling modes
POOLING_MODES: tuple[str, ...] = ("joint", "independent")


def _frozen_array(values: Any, name: str, where: str, ndim: int) -> np.ndarray:
    a = np.asarray(values, dtype=np.float32)
    if a.ndim != ndim:
        raise invalid(name, where, f"a {ndim}-d array", f"shape {a.shape}", show=False)
    if a.flags.writeable:
        if a is values or (isinstance(values, np.ndarray) and np.shares_memory(a, values)):
            a = a.view()
        a.flags.writeable = False
    return a


def _cached_names(cls: type) -> tuple[str, ...]:
    return tuple({name for klass in cls.__mro__ for name, attr in vars(klass).items() if isinstance(attr, cached_property)})


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class BCFPosterior:
    """Posterior of a BCF fit: per-visitor, per-draw expected outcomes under every treatment.

    Attributes
    ----------
    observed
        The data the fit saw, stashed per the fit's ``observed_copy`` (see
        :mod:`pytyche.bcf.stash`). Derived results share it by identity.
    treatments
        Treatment names, control first (``observed.variant_names``); ``K = len(treatments)``.
    config
        The :class:`~pytyche.bcf.config.GPUBCFConfig` of the fit.
    outcome_samples
        ``(n, S, K)`` float32 draws of ``E[Y | x_i, arm]``: the mean (continuous), the
        conversion probability (binary) or the revenue per visitor (hurdle).
    n_chains
        Number of MCMC chains; ``S`` is a multiple of it (chain-major sample axis).
    sigma_samples
        ``(S,)`` draws of the error sd of the Gaussian component (outcome units for continuous,
        log-severity units for hurdle); ``None`` for binary fits.
    decomposition
        Hurdle decomposition (:class:`~pytyche.contracts.DecompositionSamples`) or ``None``.
    calibration
        The applied :class:`~pytyche.calibrate.Calibration` or ``None`` (raw intervals).
    fit_info
        Bookkeeping of the fit: ``n_compilations`` (programs the sampler compiled),
        ``fit_seconds``, ``observed_copy``.
    """

    observed: ObservedExperimentData
    treatments: tuple[str, ...]
    config: "GPUBCFConfig"
    outcome_samples: np.ndarray
    n_chains: int
    sigma_samples: np.ndarray | None = None
    decomposition: DecompositionSamples | None = None
    calibration: Any = None
    fit_info: Mapping[str, Any] = field(default_factory=dict)

    _family: ClassVar[MetricFamily]

    # ---- construction -------------------------------------------------------------------
    def __post_init__(self) -> None:
        where = type(self).__name__
        if not isinstance(self.observed, ObservedExperimentData):
            raise wrong_type("observed", where, "an ObservedExperimentData", self.observed)
        treatments = tuple(self.treatments)
        if treatments != self.observed.variant_names:
            raise invalid("treatments", where, f"the observed variant names {self.observed.variant_names}", treatments)
        object.__setattr__(self, "treatments", treatments)
        if isinstance(self.n_chains, bool) or not isinstance(self.n_chains, (int, np.integer)) or self.n_chains < 1:
            raise invalid("n_chains", where, "an int >= 1", self.n_chains)
        object.__setattr__(self, "n_chains", int(self.n_chains))
        out = _frozen_array(self.outcome_samples, "outcome_samples", where, 3)
        n, s, k = out.shape
        expected = (self.observed.n_visitors, s, len(treatments))
        if (n, k) != (expected[0], expected[2]) or s < 1:
            raise invalid("outcome_samples", where, f"(n, S, K) with n={expected[0]}, K={expected[2]}", f"shape {out.shape}", show=False)
        if s % self.n_chains:
            raise invalid("outcome_samples", where, f"a sample axis divisible by n_chains={self.n_chains}", f"S={s}", show=False)
        object.__setattr__(self, "outcome_samples", out)
        if self.sigma_samples is not None:
            sig = _frozen_array(self.sigma_samples, "sigma_samples", where, 1)
            if sig.shape != (s,):
                raise invalid("sigma_samples", where, f"shape ({s},)", f"shape {sig.shape}", show=False)
            object.__setattr__(self, "sigma_samples", sig)
        if self.decomposition is not None:
            if not isinstance(self.decomposition, DecompositionSamples):
                raise wrong_type("decomposition", where, "a DecompositionSamples or None", self.decomposition)
            if self.decomposition.p_samples.shape != out.shape:
                raise invalid("decomposition", where, f"p_samples of shape {out.shape}", f"shape {self.decomposition.p_samples.shape}", show=False)
        object.__setattr__(self, "fit_info", dict(self.fit_info))

    def __getstate__(self) -> dict[str, Any]:
        # derived arrays cached on first use are recomputed after unpickling, not shipped
        state = dict(self.__dict__)
        for name in _cached_names(type(self)):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        arrays = [self.outcome_samples, self.sigma_samples]
        if self.decomposition is not None:
            d = self.decomposition
            arrays += [d.p_samples, d.sev_samples, d.rpv_cate_samples]
        for a in arrays:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(treatments={self.treatments!r}, n_visitors={self.n_visitors}, "
            f"n_samples={self.n_samples}, n_chains={self.n_chains}, claim_level='{self.claim_level}')"
        )

    # ---- sizes and labels ---------------------------------------------------------------
    @property
    def metric_family(self) -> MetricFamily:
        """The outcome family of this fit (what ``pt.fit`` dispatched on)."""
        return self._family

    @property
    def n_visitors(self) -> int:
        return self.outcome_samples.shape[0]

    @property
    def n_samples(self) -> int:
        """``S``: posterior draws over all chains."""
        return self.outcome_samples.shape[1]

    @property
    def n_draws(self) -> int:
        """Posterior draws per chain."""
        return self.n_samples // self.n_chains

    @property
    def n_treatments(self) -> int:
        """``K``, control included."""
        return len(self.treatments)

    @property
    def claim_level(self) -> ClaimLevel:
        """``CALIBRATED`` iff a calibration with a correction is applied (:meth:`ClaimLevel.of`)."""
        return ClaimLevel.of(self.calibration)

    # ---- samples ------------------------------------------------------------------------
    @cached_property
    def cate_samples(self) -> np.ndarray:
        """``(n, S, K-1)`` draws of each non-control treatment's CATE versus control."""
        out = self.outcome_samples
        c = out[..., 1:] - out[..., :1]
        c.flags.writeable = False
        return c

    @cached_property
    def ate_samples(self) -> np.ndarray:
        """``(S, K-1)`` draws of the average treatment effect over the observed visitors."""
        a = self.cate_samples.mean(axis=0, dtype=np.float64)
        a.flags.writeable = False
        return a

    def cate_mean(self) -> np.ndarray:
        """``(n, K-1)`` posterior-mean CATE per visitor."""
        return self.cate_samples.mean(axis=1, dtype=np.float64)

    # ---- intervals ----------------------------------------------------------------------
    def interval(self, draws: np.ndarray, level: float = 0.9, family: str = "cate", axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """Central credible interval of ``draws`` along the sample ``axis``.

        The one place intervals are computed. Raw: the equal-tailed ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles. With a calibration carrying a correction, the calibration's
        ``interval(draws, level=..., family=..., sample_size=n, axis=...)`` is returned instead:
        corrected where the artifact's own held-out validation supports the correction for that
        family and level, raw elsewhere (:mod:`pytyche.calibrate.evidence`;
        :meth:`family_claim_levels` says which).

        Parameters
        ----------
        draws
            Posterior draws, samples along ``axis``.
        level
            Nominal coverage in (0, 1).
        family
            One of ``"cate"``, ``"gate"``, ``"ate"``, ``"conversion_effect"``,
            ``"severity_effect"``.
        axis
            The sample axis of ``draws``.

        Returns
        -------
        (lo, hi)
            Arrays shaped like ``draws`` without ``axis``.
        """
        where = f"{type(self).__name__}.interval"
        level = check_float(level, "level", where, low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice(family, "family", where, INTERVAL_FAMILIES)
        draws = np.asarray(draws)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -draws.ndim <= axis < draws.ndim:
            raise invalid("axis", where, f"an int axis of the {draws.ndim}-d draws", axis)
        correction = None if self.calibration is None else getattr(self.calibration, "correction", None)
        if correction is not None:
            return self.calibration.interval(draws, level=level, family=family, sample_size=self.n_visitors, axis=int(axis))
        q = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=axis)
        return q[0], q[1]

    def family_claim_levels(self, level: float = 0.9) -> dict[str, ClaimLevel]:
        """Per quantity family, the claim level of its intervals at ``level``: ``CALIBRATED``
        where the calibration's correction is applied to that family at that level, else
        ``UNCALIBRATED`` (:attr:`claim_level` is one value for the whole posterior)."""
        return {f: ClaimLevel.of_family(self.calibration, f, level) for f in INTERVAL_FAMILIES}

    def cate_interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Per-visitor CATE interval: ``(lo, hi)`` each ``(n, K-1)``."""
        return self.interval(self.cate_samples, level, "cate", axis=1)

    def ate_interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """ATE interval: ``(lo, hi)`` each ``(K-1,)``."""
        return self.interval(self.ate_samples, level, "ate", axis=0)

    # ---- capability methods (pure) ------------------------------------------------------
    def has_decomposition(self) -> bool:
        """``True`` iff this posterior carries a hurdle (conversion x severity) decomposition."""
        return self.decomposition is not None

    def has_credible_segments(
        self, threshold: float = CREDIBLE_STABILITY, stability_method: str = DEFAULT_STABILITY_METHOD
    ) -> bool:
        """``True`` iff ``self.analyze()`` has 2+ segments and one scores ``>= threshold``.

        Pure: deterministic given the posterior (the policy-tree bootstrap is seeded), no state
        on the posterior changes. Delegates to
        :func:`pytyche.analysis.capabilities.has_credible_segments`, which computes only the
        default policy tree behind ``analyze()`` (not the recommendations). Segments with a NaN
        stability score never count, nor does the one segment of a one-leaf tree (the whole
        population: nothing was discovered). ``stability_method`` (extension): ``"posterior"``
        (default, docs/concepts.md's *Stability*) or ``"means"`` (see :meth:`fit_policy_tree`).
        """
        return delegate("has_credible_segments")(self, threshold, stability_method)

    # ---- delegations --------------------------------------------------------------------
    def fit_policy_tree(
        self,
        max_depth: int = 3,
        min_segment_share: float = 0.10,
        n_bootstrap: int = 50,
        bootstrap_seed: int = 0,
        stability_method: str = DEFAULT_STABILITY_METHOD,
    ) -> "PolicyTreeResult":
        """Fit the policy tree on this posterior's CATEs (:func:`pytyche.analysis.policy_tree.fit_policy_tree`)."""
        return delegate("fit_policy_tree")(
            self,
            max_depth=max_depth,
            min_segment_share=min_segment_share,
            n_bootstrap=n_bootstrap,
            bootstrap_seed=bootstrap_seed,
            stability_method=stability_method,
        )

    def analyze(self, **kwargs: Any) -> "AnalysisResult":
        """Analyse this posterior (:func:`pytyche.analysis.analyze.analyze_posterior`)."""
        return delegate("analyze_posterior")(self, **kwargs)

    def apply_calibration(self, calibration: Any) -> "BCFPosterior":
        """A copy of this posterior with ``calibration`` applied (:func:`pytyche.calibrate.apply.apply_calibration`).

        Raises ``ValueError`` naming the mismatched dimension(s) when the calibration's regime
        (metric, K, pooling) does not apply to this posterior.
        """
        from pytyche.calibrate.apply import apply_calibration

        return apply_calibration(self, calibration)

    # ---- diagnostics --------------------------------------------------------------------
    def _scalar_draws(self) -> dict[str, np.ndarray]:
        """Scalar quantities monitored by :meth:`rhat` / :meth:`ess`, each ``(S,)``."""
        out: dict[str, np.ndarray] = {}
        ate = self.ate_samples
        for j, name in enumerate(self.treatments[1:]):
            out[f"ate[{name}]"] = ate[:, j]
        if self.sigma_samples is not None:
            out["sigma"] = self.sigma_samples
        return out

    def _by_chain(self, draws: np.ndarray) -> np.ndarray:
        return np.asarray(draws, dtype=np.float64).reshape(self.n_chains, self.n_draws)

    def rhat(self) -> dict[str, float]:
        """Rank-normalised split R-hat of the monitored scalars.

        Keys: ``"ate[<treatment>]"`` per non-control treatment, ``"sigma"`` when the fit has a
        Gaussian component, and for hurdle fits ``"conversion_ate[<treatment>]"`` and
        ``"severity_ate[<treatment>]"``. NaN when a chain holds fewer than 4 draws.
        """
        from pytyche.bcf.diagnostics import rhat

        return self._diagnose(rhat)

    def ess(self) -> dict[str, float]:
        """Bulk effective sample size of the monitored scalars (keys as :meth:`rhat`)."""
        from pytyche.bcf.diagnostics import ess_bulk

        return self._diagnose(ess_bulk)

    def _diagnose(self, fn: Any) -> dict[str, float]:
        draws = self._scalar_draws()
        if self.n_draws < 4:
            return {k: float("nan") for k in draws}
        stacked = np.stack([self._by_chain(v) for v in draws.values()], axis=-1)  # (M, N, P)
        values = fn(stacked)
        return {k: float(v) for k, v in zip(draws, values)}


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class _SingleOutcomePosterior(BCFPosterior):
    """A posterior of one outcome (continuous or binary): it carries no hurdle decomposition."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decomposition is not None:
            raise invalid("decomposition", type(self).__name__, "None (no hurdle decomposition)", "a DecompositionSamples", show=False)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ContinuousBCFResult(_SingleOutcomePosterior):
    """Posterior of :func:`pytyche.bcf.fit_continuous_bcf`: ``outcome_samples`` are the mean
    outcome of each visitor under each treatment, in outcome units."""

    _family: ClassVar[MetricFamily] = MetricFamily.CONTINUOUS


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class BinaryBCFResult(_SingleOutcomePosterior):
    """Posterior of :func:`pytyche.bcf.fit_binary_bcf`: ``outcome_samples`` are the conversion
    probability ``Phi(mu(x) + tau_a(x))`` of each visitor under each treatment."""

    _family: ClassVar[MetricFamily] = MetricFamily.BINARY


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class HurdleBCFResult(BCFPosterior):
    """Posterior of :func:`pytyche.bcf.fit_hurdle_bcf`.

    ``decomposition.p_samples`` is the conversion probability ``Phi(latent)``,
    ``decomposition.sev_samples`` the expected severity given conversion
    ``exp(mu_log + sigma^2 / 2)``, ``outcome_samples = p * m`` the revenue per visitor (RPV) and
    ``cate_samples`` is ``decomposition.rpv_cate_samples`` (the same array).

    Attributes
    ----------
    pooling
        ``"joint"`` (shared-topology fit) or ``"independent"`` (two-stage composition).
    """

    pooling: str = "joint"

    _family: ClassVar[MetricFamily] = MetricFamily.HURDLE

    def __post_init__(self) -> None:
        super().__post_init__()
        where = type(self).__name__
        check_choice(self.pooling, "pooling", where, POOLING_MODES)
        if self.decomposition is None:
            raise invalid("decomposition", where, "a DecompositionSamples", None)

    @cached_property
    def cate_samples(self) -> np.ndarray:
        """``(n, S, K-1)`` RPV CATE draws (``decomposition.rpv_cate_samples``)."""
        return self.decomposition.rpv_cate_samples

    @cached_property
    def conversion_ate_samples(self) -> np.ndarray:
        """``(S, K-1)`` average change in conversion probability versus control."""
        a = self.decomposition.conversion_effect_samples.mean(axis=0, dtype=np.float64)
        a.flags.writeable = False
        return a

    @cached_property
    def severity_ate_samples(self) -> np.ndarray:
        """``(S, K-1)`` average change in expected severity given conversion versus control."""
        a = self.decomposition.severity_effect_samples.mean(axis=0, dtype=np.float64)
        a.flags.writeable = False
        return a

    def conversion_effect_interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Per-visitor interval of the conversion-probability effect: ``(lo, hi)`` each ``(n, K-1)``."""
        return self.interval(self.decomposition.conversion_effect_samples, level, "conversion_effect", axis=1)

    def severity_effect_interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Per-visitor interval of the expected-severity effect: ``(lo, hi)`` each ``(n, K-1)``."""
        return self.interval(self.decomposition.severity_effect_samples, level, "severity_effect", axis=1)

    def _scalar_draws(self) -> dict[str, np.ndarray]:
        out = super()._scalar_draws()
        for j, name in enumerate(self.treatments[1:]):
            out[f"conversion_ate[{name}]"] = self.conversion_ate_samples[:, j]
            out[f"severity_ate[{name}]"] = self.severity_ate_samples[:, j]
        return out


def build_decomposition(p: np.ndarray, sev: np.ndarray) -> tuple[DecompositionSamples, np.ndarray]:
    """Compose per-draw conversion ``p`` and severity ``sev`` (both ``(n, S, K)``).

    Returns the :class:`DecompositionSamples` and the ``(n, S, K)`` RPV draws ``p * sev``; the
    RPV CATE is computed from those same RPV draws, so ``rpv_cate == rpv[..., 1:] - rpv[..., :1]``
    holds exactly.
    """
    p = np.asarray(p, dtype=np.float32)
    sev = np.asarray(sev, dtype=np.float32)
    rpv = p * sev
    cate = rpv[..., 1:] - rpv[..., :1]
    for a in (p, sev, rpv, cate):
        a.flags.writeable = False
    return DecompositionSamples(p_samples=p, sev_samples=sev, rpv_cate_samples=cate), rpv
