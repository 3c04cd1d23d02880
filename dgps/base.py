"""Machinery shared by every DGP template: the sim-mode :class:`SimGenerator`.

A *template* (:class:`DGPTemplate` subclass) says how visitors look and what each treatment does
to them: ``draw_visitors`` (features + latent cluster) and ``expected`` (the true per-visitor,
per-arm outcome surface, possibly depending on the round). :class:`SimGenerator` turns a template
into a ``Generator`` for :class:`~pytyche.experiment.SequentialExperiment`:

``generator(round_idx, plan)``

1. draws ``plan.n_visitors`` visitors (stream 0 of ``SeedSequence([seed, round_idx])``),
2. routes each through the plan's cells by weight and then the cell's policy
   (:meth:`NextRoundPlan.assign`, stream 1), recording the ``cell`` column and the propensity
   columns from the probabilities the policy actually used,
3. draws every visitor's potential outcomes under every arm from the true surface (stream 2; so
   the same seed and round give the same visitors and outcomes whatever the plan -- common random
   numbers) and keeps the one of the assigned arm,
4. returns ``(ObservedExperimentData, CalibrationTruth)``: variants in the plan's treatment order
   (a treatment that drew no visitor this round is left out), truth rows in the same
   variant-major order with per-visitor expected outcomes under every treatment of the plan's
   universe, ``p``/``m`` for hurdle metrics, and the latent cluster ids.

Truth is conditional on the observed features
---------------------------------------------
The data are drawn from the *latent* surface (:meth:`DGPTemplate.surface`, which may depend on a
visitor's hidden cluster), but the truth a round returns is what a model that sees only the
features can estimate: :meth:`DGPTemplate.conditional_surface`, ``E[. | x]``. For a template whose
surface depends on a latent mixture component, the exact cluster posterior ``P(c | x)``
(:meth:`DGPTemplate.cluster_posterior`, from the known feature distributions) averages the
per-cluster surfaces:

- ``P(convert | x, a) = sum_c P(c|x) p_c(x, a)``;
- ``E[revenue | convert, x, a] = sum_c P(c|x) p_c(x, a) m_c(x, a) / sum_c P(c|x) p_c(x, a)``;
- ``E[Y | x, a] = sum_c P(c|x) p_c(x, a) m_c(x, a)`` (hurdle), ``sum_c P(c|x) p_c(x, a)``
  (binary), ``sum_c P(c|x) mean_c(x, a)`` (continuous).

So two visitors with identical features get identical truth. The latent surface's expected
outcome travels along as ``CalibrationTruth.latent_expected_outcome`` (the "omniscient" oracle
that knows the cluster; never a scoring target) and the cluster ids stay for segment-recovery
evaluation.

Outcome families: ``hurdle`` (conversion ``~ Bernoulli(p)``, revenue given conversion lognormal
with mean ``m`` and log-sd ``severity_sigma``: ``E[Y] = p·m``), ``binary`` (``Bernoulli(p)``),
``continuous`` (``Normal(mean, outcome_sd)``).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from pytyche._validation import Interval, check_int, invalid, validate, wrong_type
from pytyche.contracts.observed import CELL_COLUMN, ObservedExperimentData, VariantData, VisitorSchema, propensity_columns
from pytyche.contracts.truth import CalibrationTruth
from pytyche.experiment.plan import NextRoundPlan

__all__ = [
    "DGPTemplate",
    "Surface",
    "SimGenerator",
    "ARCHETYPES",
    "ArchetypeTemplate",
    "archetype_visitors",
    "archetype_posterior",
    "ARCHETYPE_SCHEMA",
    "param",
    "RevenueTemplate",
    "ConversionTemplate",
    "ContinuousTemplate",
    "FeatureTemplate",
]

Family = Literal["hurdle", "binary", "continuous"]


@dataclass(frozen=True)
class Surface:
    """The true outcome surface of a batch of visitors: ``(n, K)`` arrays over the template's arms.

    Hurdle: ``p`` (conversion probability) and ``m`` (expected severity given conversion);
    binary: ``p``; continuous: ``mean``.
    """

    p: np.ndarray | None = None
    m: np.ndarray | None = None
    mean: np.ndarray | None = None

    def expected(self) -> np.ndarray:
        if self.mean is not None:
            return self.mean
        if self.m is not None:
            return self.p * self.m  # type: ignore[operator]
        return self.p  # type: ignore[return-value]


class DGPTemplate(ABC):
    """A data-generating process: visitors, clusters and the true per-arm outcome surface.

    Subclasses set ``name``, ``metric``, ``family``, ``treatments`` (control first), ``schema``
    and implement :meth:`draw_visitors` and :meth:`surface`. A template is a frozen dataclass whose
    fields are its parameters, each declared with :func:`param` (default and constraint); the
    family bases :class:`RevenueTemplate`, :class:`ConversionTemplate` and
    :class:`ContinuousTemplate` set ``metric``/``family`` and declare the family's shared
    parameters.
    """

    name: str
    metric: str
    family: Family
    treatments: tuple[str, ...]
    schema: VisitorSchema
    severity_sigma: float = 0.6  # hurdle: log-sd of revenue given conversion
    outcome_sd: float = 1.0  # continuous: noise sd

    @abstractmethod
    def draw_visitors(self, rng: np.random.Generator, n: int, round_idx: int) -> tuple[pd.DataFrame, np.ndarray]:
        """``n`` visitors' schema features and latent cluster ids (``-1`` when none)."""

    @abstractmethod
    def surface(self, visitors: pd.DataFrame, clusters: np.ndarray, round_idx: int) -> Surface:
        """The latent per-arm outcome surface of these visitors in round ``round_idx`` (the data's law)."""

    def cluster_posterior(self, visitors: pd.DataFrame, round_idx: int) -> np.ndarray | None:
        """``(n, C)`` exact ``P(cluster | features)``, or ``None`` when :meth:`surface` ignores the cluster.

        Templates drawing visitors from :func:`archetype_visitors` inherit
        :class:`ArchetypeTemplate`'s implementation; a template with its own latent mixture must
        override this.
        """
        return None

    def conditional_surface(self, visitors: pd.DataFrame, round_idx: int) -> Surface:
        """The surface a model that sees only the features estimates: ``E[. | x]`` (module docstring)."""
        n = len(visitors)
        post = self.cluster_posterior(visitors, round_idx)
        if post is None:
            return self.surface(visitors, np.full(n, -1, dtype=np.int64), round_idx)
        parts = [self.surface(visitors, np.full(n, c, dtype=np.int64), round_idx) for c in range(post.shape[1])]
        w = [post[:, c][:, None] for c in range(post.shape[1])]
        if self.family == "continuous":
            return Surface(mean=sum(wc * s.mean for wc, s in zip(w, parts)))
        p = sum(wc * s.p for wc, s in zip(w, parts))
        if self.family == "binary":
            return Surface(p=p)
        rev = sum(wc * s.p * s.m for wc, s in zip(w, parts))
        m_prior = sum(wc * s.m for wc, s in zip(w, parts))  # only where no cluster converts at all
        m = np.divide(rev, p, out=np.array(m_prior, dtype=np.float64), where=p > 0)
        return Surface(p=p, m=m)

    @classmethod
    def constraints(cls) -> dict[str, Any]:
        """Each parameter's constraint (its :func:`param`), in field order: the order they are checked in."""
        return {f.name: f.metadata["constraint"] for f in fields(cls) if "constraint" in f.metadata}  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        table = self.constraints()
        validate({k: getattr(self, k) for k in table}, table, self.name)  # the registry name is the ``where``

    def params(self) -> dict[str, Any]:
        """The template's parameters (for records)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class SimGenerator:
    """A sim-mode ``Generator`` built from a :class:`DGPTemplate` (see the module docstring).

    Parameters
    ----------
    template
        The DGP.
    seed
        Master seed; round ``r`` uses ``SeedSequence([seed, r])`` (reproducible per round).
    n_visitors
        Round size used when a plan carries none (the sequential loop always sets
        ``plan.n_visitors`` from the schedule, which takes precedence).
    experiment_id
        Identifier recorded on the data (default: the template's name).
    """

    def __init__(self, template: DGPTemplate, *, seed: int = 0, n_visitors: int | None = None, experiment_id: str | None = None) -> None:
        if not isinstance(template, DGPTemplate):
            raise wrong_type("template", "SimGenerator", "a DGPTemplate", template)
        self.template = template
        self.seed = check_int(seed, "seed", "SimGenerator", low=0)
        self.n_visitors = None if n_visitors is None else check_int(n_visitors, "n_visitors", "SimGenerator", low=1)
        self.experiment_id = experiment_id or template.name

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.template.treatments

    @property
    def metric(self) -> str:
        return self.template.metric

    @property
    def name(self) -> str:
        return self.template.name

    def __repr__(self) -> str:
        return f"SimGenerator({self.template.name!r}, seed={self.seed}, treatments={list(self.treatments)})"

    def _streams(self, round_idx: int) -> list[np.random.Generator]:
        children = np.random.SeedSequence([self.seed, round_idx]).spawn(3)
        return [np.random.default_rng(c) for c in children]

    def population(self, n: int, round_idx: int = 0) -> tuple[pd.DataFrame, np.ndarray, Surface]:
        """Visitors, clusters and the *latent* surface (the data's law) of round ``round_idx``, no assignment.

        The truth a round scores against is ``self.template.conditional_surface(visitors, round_idx)``.
        """
        rng_v, _, _ = self._streams(round_idx)
        visitors, clusters = self.template.draw_visitors(rng_v, n, round_idx)
        return visitors, clusters, self.template.surface(visitors, clusters, round_idx)

    def __call__(self, round_idx: int, plan: NextRoundPlan) -> tuple[ObservedExperimentData, CalibrationTruth]:
        where = f"{type(self).__name__}({self.template.name!r})"
        round_idx = check_int(round_idx, "round_idx", where, low=0)
        if not isinstance(plan, NextRoundPlan):
            raise wrong_type("plan", where, "a NextRoundPlan", plan)
        n = plan.n_visitors if plan.n_visitors is not None else self.n_visitors
        if n is None:
            raise invalid("plan", where, "a plan carrying n_visitors (or a generator built with n_visitors)", "n_visitors=None", show=False)
        universe = tuple(plan.treatments)  # type: ignore[arg-type]
        unknown = [t for t in universe if t not in self.template.treatments]
        if unknown:
            raise invalid("plan", where, f"a plan over this DGP's treatments {list(self.template.treatments)}", f"treatments {list(universe)}", show=False)
        cols = [self.template.treatments.index(t) for t in universe]
        k = len(universe)

        rng_v, rng_a, rng_y = self._streams(round_idx)
        visitors, clusters = self.template.draw_visitors(rng_v, n, round_idx)
        surf = self.template.surface(visitors, clusters, round_idx)  # the data's law (may see the cluster)
        cond = self.template.conditional_surface(visitors, round_idx)  # the truth: E[. | x]
        assignment = plan.assign(visitors, rng_a)
        arm, probs = assignment.arm, assignment.probs

        # potential outcomes under every arm, one draw per (visitor, arm): common random numbers
        u = rng_y.random((n, len(self.template.treatments)))[:, cols]
        z = rng_y.standard_normal((n, len(self.template.treatments)))[:, cols]
        rows = np.arange(n)
        fam = self.template.family
        if fam == "hurdle":
            p, m = surf.p[:, cols], surf.m[:, cols]  # type: ignore[index]
            s = self.template.severity_sigma
            conv = u[rows, arm] < p[rows, arm]
            sev = np.exp(np.log(m[rows, arm]) - 0.5 * s * s + s * z[rows, arm])
            y = np.where(conv, sev, 0.0)
        elif fam == "binary":
            p, m = surf.p[:, cols], None  # type: ignore[index]
            y = (u[rows, arm] < p[rows, arm]).astype(np.int64)
        else:
            p = m = None
            y = surf.mean[:, cols][rows, arm] + self.template.outcome_sd * z[rows, arm]  # type: ignore[index]

        present = [a for a in range(k) if np.any(arm == a)]
        prop_cols = propensity_columns(len(present)) if len(present) >= 2 else ()
        frame = visitors.reset_index(drop=True).copy()
        frame[self.template.schema.outcome] = y
        frame[CELL_COLUMN] = assignment.cell
        for c, a in zip(prop_cols, present[1:]):
            frame[c] = probs[:, a]
        order = np.concatenate([np.flatnonzero(arm == a) for a in present]) if present else np.zeros(0, dtype=np.int64)
        variants = tuple(VariantData(universe[a], frame.iloc[np.flatnonzero(arm == a)].reset_index(drop=True)) for a in present)
        observed = ObservedExperimentData(self.experiment_id, self.template.metric, variants, self.template.schema, round_idx)
        truth = CalibrationTruth(
            cond.expected()[:, cols][order],
            universe,
            np.asarray(clusters)[order],
            None if fam != "hurdle" else cond.p[:, cols][order],  # type: ignore[index]
            None if fam != "hurdle" else cond.m[:, cols][order],  # type: ignore[index]
            latent_expected_outcome=surf.expected()[:, cols][order],
        )
        return observed, truth


# ---- shared visitor model: four customer archetypes -------------------------------------

#: The four archetypes (cluster id -> description) behind most templates' visitors.
ARCHETYPES = {
    0: "bargain hunters: mostly mobile, new (low tenure), few visits",
    1: "loyal regulars: mostly desktop, long tenure, many visits",
    2: "big-basket browsers: mostly tablet/desktop, mid tenure, moderate visits",
    3: "casual visitors: mixed device, short tenure, few visits",
}
_CLUSTER_WEIGHTS = np.array([0.30, 0.25, 0.20, 0.25])
_DEVICES = ("desktop", "mobile", "tablet")
_DEVICE_PROBS = np.array(
    [
        [0.10, 0.80, 0.10],
        [0.75, 0.20, 0.05],
        [0.35, 0.10, 0.55],
        [0.45, 0.45, 0.10],
    ]
)
_TENURE_MEAN = np.array([2.0, 36.0, 14.0, 6.0])  # months
_VISITS_MEAN = np.array([2.0, 12.0, 5.0, 3.0])  # visits in the last 30 days
_CHANNELS = ("email", "organic", "paid")

#: The archetype visitors' schema: ``device`` (categorical), ``tenure_months`` (numeric),
#: ``visits_30d`` (numeric), ``channel`` (categorical, uninformative).
ARCHETYPE_SCHEMA = VisitorSchema(
    {"device": "categorical", "tenure_months": "numeric", "visits_30d": "numeric", "channel": "categorical"},
    "outcome",
)


def archetype_visitors(
    rng: np.random.Generator,
    n: int,
    weights: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw ``n`` visitors from the four-archetype mixture (:data:`ARCHETYPES`).

    Features depend on the cluster: ``device`` from a per-cluster categorical, ``tenure_months``
    gamma with a per-cluster mean (shape 2), ``visits_30d`` Poisson with a per-cluster mean, and
    ``channel`` uniform (noise). Returns the features frame and the cluster ids.
    """
    w = _CLUSTER_WEIGHTS if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    clusters = rng.choice(len(w), size=n, p=w)
    u = rng.random(n)
    dev_cdf = np.cumsum(_DEVICE_PROBS[clusters], axis=1)
    device = np.asarray(_DEVICES, dtype=object)[np.minimum((dev_cdf <= u[:, None]).sum(axis=1), 2)]
    tenure = np.round(rng.gamma(2.0, _TENURE_MEAN[clusters] / 2.0), 1)
    visits = rng.poisson(_VISITS_MEAN[clusters]).astype(np.float64)
    channel = np.asarray(_CHANNELS, dtype=object)[rng.integers(0, 3, size=n)]
    frame = pd.DataFrame({"device": device, "tenure_months": tenure, "visits_30d": visits, "channel": channel})
    return frame, clusters.astype(np.int64)


def _log_interval_prob(dist: Any, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``log P(lo < T <= hi)`` for a scipy continuous distribution, without cancellation in either tail."""
    lower = hi <= dist.median()
    with np.errstate(divide="ignore"):
        # lower half: F(hi) - F(lo) = F(hi) (1 - F(lo)/F(hi)); upper half: S(lo) (1 - S(hi)/S(lo))
        a = np.where(lower, dist.logcdf(hi), dist.logsf(lo))
        b = np.where(lower, dist.logcdf(lo), dist.logsf(hi))
        return a + np.log1p(-np.exp(np.minimum(b - a, 0.0)))


def archetype_posterior(visitors: pd.DataFrame, weights: Sequence[float] | None = None) -> np.ndarray:
    """``(n, 4)`` exact ``P(cluster | device, tenure_months, visits_30d, channel)`` of :func:`archetype_visitors`.

    Bayes' rule over the mixture: ``P(c | x) ∝ w_c · P(device | c) · P(tenure | c) · P(visits | c)``
    (``channel`` is uniform in every cluster and cancels). ``tenure_months`` is a gamma draw rounded
    to 0.1, so its likelihood is the gamma probability of the rounding cell
    ``[t - 0.05, t + 0.05)`` (clipped at 0), not a density; ``visits_30d`` is Poisson. Computed in
    log space so extreme feature values do not underflow.
    """
    from scipy import stats

    w = _CLUSTER_WEIGHTS if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    dev = visitors["device"].to_numpy()
    tenure = visitors["tenure_months"].to_numpy(dtype=np.float64)
    visits = visitors["visits_30d"].to_numpy(dtype=np.float64)
    dev_idx = np.full(len(dev), -1)
    for j, d in enumerate(_DEVICES):
        dev_idx[dev == d] = j
    if np.any(dev_idx < 0):
        raise invalid("visitors", "archetype_posterior", f"devices among {list(_DEVICES)}", sorted(set(dev[dev_idx < 0].tolist())))
    lo, hi = np.maximum(tenure - 0.05, 0.0), tenure + 0.05
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
        log_dev = np.log(_DEVICE_PROBS)
    logp = np.empty((len(dev), len(w)))
    for c in range(len(w)):
        gamma = stats.gamma(2.0, scale=_TENURE_MEAN[c] / 2.0)
        logp[:, c] = (
            log_w[c]
            + log_dev[c, dev_idx]
            + _log_interval_prob(gamma, lo, hi)
            + stats.poisson.logpmf(visits, _VISITS_MEAN[c])
        )
    logp -= logp.max(axis=1, keepdims=True)
    post = np.exp(logp)
    return post / post.sum(axis=1, keepdims=True)


class ArchetypeTemplate(DGPTemplate):
    """A template whose visitors are the four-archetype mixture (:func:`archetype_visitors`).

    Draws visitors with :attr:`cluster_weights` (``None``: the documented 30/25/20/25%) and
    supplies the exact cluster posterior for the truth ``E[. | x]``.
    """

    schema = ARCHETYPE_SCHEMA
    cluster_weights: tuple[float, ...] | None = None

    def draw_visitors(self, rng: np.random.Generator, n: int, round_idx: int) -> tuple[pd.DataFrame, np.ndarray]:
        return archetype_visitors(rng, n, self.cluster_weights)

    def cluster_posterior(self, visitors: pd.DataFrame, round_idx: int) -> np.ndarray:
        return archetype_posterior(visitors, self.cluster_weights)


def engagement(visitors: pd.DataFrame) -> np.ndarray:
    """A smooth within-cluster modifier in about [0.8, 1.25]: more visits, higher propensity to buy."""
    v = visitors["visits_30d"].to_numpy(dtype=np.float64)
    return 1.0 + 0.25 * np.tanh((v - 5.0) / 5.0)


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> Interval:
    """A template parameter that is a finite real number within bounds (open ends as asked)."""
    closed = {(False, False): "both", (True, False): "right", (False, True): "left", (True, True): "neither"}
    return Interval(numbers.Real, low, high, closed=closed[low_open, high_open], loose=True)


def integer(low: int | None = None, high: int | None = None) -> Interval:
    """A template parameter that is an int within bounds."""
    return Interval(numbers.Integral, low, high, loose=True)


def param(default: Any, constraint: Any) -> Any:
    """A template parameter: a dataclass field with its ``default`` and the ``constraint`` it is checked against.

    The constraint (``real(...)``, ``integer(...)``, ...) is validated when the template is built
    (:meth:`DGPTemplate.constraints`); a bad value raises with the template's registry name.
    """
    return field(default=default, metadata={"constraint": constraint})


#: a scale that must be positive: ``conversion_scale``, ``severity_sigma``, ``outcome_sd``
POSITIVE = real(low=0.0, low_open=True)
#: the number of irrelevant noise features (:func:`noise_features`)
N_NOISE = integer(0, 200)


@dataclass(frozen=True)
class RevenueTemplate(DGPTemplate):
    """A hurdle template of ``revenue_per_visitor``: conversion, then a lognormal basket.

    Parameters
    ----------
    conversion_scale
        Multiplier on every conversion probability.
    severity_sigma
        Log-sd of the lognormal basket given conversion.
    """

    conversion_scale: float = param(1.0, POSITIVE)
    severity_sigma: float = param(0.6, POSITIVE)

    metric = "revenue_per_visitor"
    family = "hurdle"


class ConversionTemplate(DGPTemplate):
    """A binary template of ``conversion_rate`` (outcome ``1[converted]``)."""

    metric = "conversion_rate"
    family = "binary"


@dataclass(frozen=True)
class ContinuousTemplate(DGPTemplate):
    """A continuous template: ``Y = mean + outcome_sd · N(0, 1)``; subclasses set the ``metric``.

    Parameters
    ----------
    effect_scale
        Multiplier on the treatment effect (0: none).
    outcome_sd
        The noise sd (subclasses redeclare it with their default).
    """

    effect_scale: float = param(1.0, real())
    outcome_sd: float = param(1.0, POSITIVE)

    family = "continuous"


def noise_features(rng: np.random.Generator, n: int, k: int) -> pd.DataFrame:
    """``k`` irrelevant numeric features ``noise_1 .. noise_k``: independent ``N(0, 1)`` rounded to 0.01."""
    return pd.DataFrame({f"noise_{j + 1}": np.round(rng.standard_normal(n), 2) for j in range(k)})


def schema_with_noise(features: dict[str, str], n_noise: int) -> VisitorSchema:
    """The visitor schema of ``features`` (name -> type) plus the :func:`noise_features` columns."""
    return VisitorSchema({**features, **{f"noise_{j + 1}": "numeric" for j in range(n_noise)}}, "outcome")


@dataclass(frozen=True)
class FeatureTemplate(DGPTemplate):
    """A template whose visitors are its own features plus ``n_noise`` irrelevant ones.

    Subclasses set ``features`` (name -> ``"numeric"`` / ``"categorical"``) and implement
    :meth:`draw_features`; the schema and :meth:`draw_visitors` follow (the features first, then
    the noise columns, from the same stream). There is no latent cluster unless
    :meth:`clusters_of` says otherwise. ``n_noise`` defaults to 2 (a subclass may redeclare it).
    """

    features: ClassVar[Mapping[str, str]] = {}
    n_noise: int = param(2, N_NOISE)

    @property
    def schema(self) -> VisitorSchema:  # type: ignore[override]
        return schema_with_noise(dict(self.features), self.n_noise)

    @abstractmethod
    def draw_features(self, rng: np.random.Generator, n: int, round_idx: int) -> pd.DataFrame:
        """``n`` visitors' own features (the columns of ``features``)."""

    def clusters_of(self, features: pd.DataFrame) -> np.ndarray:
        """Latent cluster id per visitor (``-1``: none)."""
        return np.full(len(features), -1, dtype=np.int64)

    def draw_visitors(self, rng: np.random.Generator, n: int, round_idx: int) -> tuple[pd.DataFrame, np.ndarray]:
        frame = self.draw_features(rng, n, round_idx)
        return pd.concat([frame, noise_features(rng, n, self.n_noise)], axis=1), self.clusters_of(frame)


def feature_template(cls: type[DGPTemplate]) -> Any:
    """A registry ``make(*, seed, n_visitors, experiment_id, **params)`` for a dataclass template.

    The template's dataclass fields are its parameters (an unknown one raises ``TypeError``, a bad
    value the template's own ``ValueError``).
    """

    def make(*, seed: int = 0, n_visitors: int | None = None, experiment_id: str | None = None, **params: Any) -> SimGenerator:
        return SimGenerator(cls(**params), seed=seed, n_visitors=n_visitors, experiment_id=experiment_id)

    make.__doc__ = f"A ``{cls.name}`` generator; parameters are :class:`{cls.__name__}`'s fields (truth in its module docstring)."
    make.template_class = cls  # type: ignore[attr-defined]  (read by sweeps.template_params)
    return make
