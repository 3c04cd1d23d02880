"""Ground truth for sim mode and calibration, segregated from analysis code.

``CalibrationTruth`` only travels inside a ``CalibrationBundle`` (or next to observed data in a
generator's return), never inside a posterior, so analysis code cannot peek at it.

What the truth is
-----------------
Every scored quantity is the one the posterior estimates: a function of the observed features
``x`` only, ``E[. | x]``. A DGP may generate data from a latent cluster the model never sees; the
truth averages it out with the exact cluster posterior ``P(c | x)`` (see ``dgps.base``), so two
visitors with identical features always have identical truth. Per family (``a`` an arm, ``0``
control, the sample the cumulative visitors the posterior was fitted on):

``expected_outcome[i, a]``
    ``E[Y | x_i, a]``: revenue per visitor (hurdle), conversion probability (binary), the mean
    (continuous). Drifting DGPs use the surface of the round visitor ``i`` arrived in.
``p[i, a]``, ``m[i, a]`` (hurdle)
    ``P(Y > 0 | x_i, a)`` and ``E[Y | Y > 0, x_i, a]``, so ``expected_outcome = p · m``.
``cate`` (per visitor)
    ``E[Y | x_i, a] - E[Y | x_i, 0]`` for every visitor and non-control arm.
``ate``
    the *sample* average of the conditional effects over the cumulative visitors the posterior
    was fitted on, ``mean_i cate[i, a]`` (a mixed/conditional SATE, not the population ATE), which
    is the average of the posterior's per-visitor CATE draws over the same visitors.
``gate``
    the same sample average restricted to a segment's members among those visitors.
``conversion_effect`` / ``severity_effect`` (hurdle)
    ``p[i, a] - p[i, 0]`` and ``m[i, a] - m[i, 0]`` per visitor.
oracle policy
    ``argmax_a E[Y | x_i, a]`` (:attr:`CalibrationTruth.optimal_arm`): attainable by a policy that
    sees ``x``. ``latent_expected_outcome`` (optional) is the data's own cluster-level
    ``E[Y | x_i, c_i, a]``: the "omniscient" oracle that knows the cluster, reported as an extra
    column only, never a scoring target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pytyche._validation import invalid, violated, wrong_type
from pytyche.contracts.observed import ObservedExperimentData


def _arm_column(name: str, arm: int) -> property:
    """A read-only property: column ``arm`` of the ``(n, K)`` array field ``name`` (``None`` when it is)."""

    def get(self: Any) -> np.ndarray | None:
        values = getattr(self, name)
        return None if values is None else values[:, arm]

    return property(get, doc=f"``{name}[:, {arm}]`` (``None`` when ``{name}`` is).")


@dataclass(frozen=True)
class CalibrationTruth:
    """Per-visitor ground truth, aligned to the round's own variant-major row order.

    Attributes
    ----------
    expected_outcome
        ``(n, K)`` true ``E[Y | x, arm]`` of each visitor under every arm (revenue per visitor for
        hurdle metrics, conversion probability for binary, the mean for continuous).
    p, m
        ``(n, K)`` true conversion probability and expected severity given conversion (hurdle
        metrics only; ``None`` otherwise). ``expected_outcome == p * m`` then.
    cluster_ids
        ``(n,)`` the DGP's latent mixture component of each visitor (``-1`` when none); kept for
        segment-recovery evaluation, never used to score.
    treatments
        Arm names, control first (the K of the arrays).
    latent_expected_outcome
        Optional ``(n, K)`` expected outcome given the features *and* the latent cluster (the
        omniscient oracle's view; see the module docstring). ``None`` when not recorded.
    """

    expected_outcome: np.ndarray
    treatments: tuple[str, ...]
    cluster_ids: np.ndarray
    p: np.ndarray | None = None
    m: np.ndarray | None = None
    latent_expected_outcome: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = "CalibrationTruth"
        eo = np.asarray(self.expected_outcome, dtype=np.float64)
        k = len(self.treatments)
        if eo.ndim != 2 or eo.shape[1] != k or k < 2:
            raise violated("'expected_outcome' parameter", w, f"be (n, K) with K = len(treatments) >= 2. Got {eo.shape} with {k} treatments.")
        if not np.all(np.isfinite(eo)):
            raise violated("'expected_outcome' parameter", w, "be finite.")
        n = eo.shape[0]
        cid = np.asarray(self.cluster_ids)
        if cid.shape != (n,):
            raise violated("'cluster_ids' parameter", w, f"be ({n},). Got {cid.shape} instead.")
        if (self.p is None) != (self.m is None):
            raise violated("'p' and 'm' parameters", w, "be given together (hurdle truth) or both None.")
        if self.p is not None:
            p, m = np.asarray(self.p, dtype=np.float64), np.asarray(self.m, dtype=np.float64)
            if p.shape != eo.shape or m.shape != eo.shape:
                raise violated("'p' and 'm' parameters", w, f"both be {eo.shape}. Got {p.shape} and {m.shape} instead.")
            if np.any((p < 0) | (p > 1)):
                raise violated("'p' parameter", w, "hold probabilities in [0, 1].")
            if not np.allclose(p * m, eo, rtol=1e-6, atol=1e-9):
                raise violated("'expected_outcome' parameter", w, "equal p * m for hurdle truth.")
            object.__setattr__(self, "p", p)
            object.__setattr__(self, "m", m)
        if self.latent_expected_outcome is not None:
            lat = np.asarray(self.latent_expected_outcome, dtype=np.float64)
            if lat.shape != eo.shape or not np.all(np.isfinite(lat)):
                raise violated("'latent_expected_outcome' parameter", w, f"be a finite {eo.shape} array or None. Got shape {lat.shape} instead.")
            object.__setattr__(self, "latent_expected_outcome", lat)
        object.__setattr__(self, "expected_outcome", eo)
        object.__setattr__(self, "cluster_ids", cid)
        object.__setattr__(self, "treatments", tuple(self.treatments))

    @property
    def n(self) -> int:
        return self.expected_outcome.shape[0]

    @property
    def cate(self) -> np.ndarray:
        """``(n, K-1)`` true CATE of each non-control arm versus control."""
        return self.expected_outcome[:, 1:] - self.expected_outcome[:, :1]

    @property
    def optimal_arm(self) -> np.ndarray:
        """``(n,)`` index of the truth-optimal arm per visitor."""
        return np.argmax(self.expected_outcome, axis=1)

    # K = 2 conveniences: control (0) and treatment (1) columns of the hurdle truth
    p0 = _arm_column("p", 0)
    p1 = _arm_column("p", 1)
    m0 = _arm_column("m", 0)
    m1 = _arm_column("m", 1)

    def take(self, index: np.ndarray) -> "CalibrationTruth":
        """Rows reordered/selected by ``index`` (used to re-index into cumulative order)."""
        idx = np.asarray(index)
        return CalibrationTruth(
            self.expected_outcome[idx],
            self.treatments,
            self.cluster_ids[idx],
            None if self.p is None else self.p[idx],
            None if self.m is None else self.m[idx],
            None if self.latent_expected_outcome is None else self.latent_expected_outcome[idx],
        )

    @staticmethod
    def concat(parts: "list[CalibrationTruth]") -> "CalibrationTruth":
        if not parts:
            raise ValueError("CalibrationTruth.concat needs at least one part.")
        hurdle = parts[0].p is not None
        latent = all(t.latent_expected_outcome is not None for t in parts)
        return CalibrationTruth(
            np.concatenate([t.expected_outcome for t in parts]),
            parts[0].treatments,
            np.concatenate([t.cluster_ids for t in parts]),
            np.concatenate([t.p for t in parts]) if hurdle else None,  # type: ignore[misc]
            np.concatenate([t.m for t in parts]) if hurdle else None,  # type: ignore[misc]
            np.concatenate([t.latent_expected_outcome for t in parts]) if latent else None,  # type: ignore[misc]
        )


@dataclass(frozen=True)
class CalibrationBundle:
    """Observed data with its ground truth: the only place the two travel together."""

    observed: ObservedExperimentData
    truth: CalibrationTruth

    def __post_init__(self) -> None:
        if not isinstance(self.observed, ObservedExperimentData):
            raise wrong_type("observed", "CalibrationBundle", "ObservedExperimentData", self.observed)
        if not isinstance(self.truth, CalibrationTruth):
            raise wrong_type("truth", "CalibrationBundle", "CalibrationTruth", self.truth)
        if self.truth.n != self.observed.n_visitors:
            raise violated("'truth' parameter", "CalibrationBundle", f"have one row per visitor ({self.observed.n_visitors}). Got {self.truth.n} instead.")
        if tuple(self.truth.treatments) != self.observed.variant_names:
            raise violated("'truth' parameter", "CalibrationBundle", f"name the same treatments as observed {list(self.observed.variant_names)}. Got {list(self.truth.treatments)} instead.")


QUANTITY_FAMILIES = ("cate", "gate", "ate", "conversion_effect", "severity_effect")


#: equal bins of the probability integral transform in :attr:`CalibrationRecord.pit_counts`:
#: 40 puts both ends of every default level's central interval (0.5 to 0.95) on a bin edge
PIT_BINS = 40

@dataclass(frozen=True)
class CalibrationRecord:
    """One coverage measurement: (replication, round, quantity family, nominal level).

    ``coverage`` is the fraction of the ``n_targets`` true quantities (visitors for ``cate``,
    segments for ``gate``, arms for ``ate``, ...) that fell inside their nominal central interval;
    ``mean_width`` the intervals' mean width. The regime (``metric``, ``n_treatments``,
    ``pooling`` and the MCMC settings ``num_trees_mu``, ``num_trees_tau``, ``num_draws``,
    ``num_chains``; ``num_burnin`` for information) and ``sample_size`` select the calibration
    layer it feeds. ``calibrated`` marks coverage of calibrated intervals (validation sweeps),
    which never feeds a correction.

    Fit-time observables, to test whether residual miscalibration moves with them (all computable
    without the truth; ``None`` when not applicable or not measured):

    ``converters``
        Visitors with a non-zero outcome per arm, control first (binary and hurdle metrics).
    ``min_converters``
        The fewest converters of any arm.
    ``posterior_sd_rel``
        Mean posterior sd of the family's targets over the sd of the observed outcome.
    ``effect_to_noise``
        Mean absolute posterior-mean of the family's targets over the sd of the observed outcome.

    Every level at once (the same on each level's record of a family), for corrections that need
    fewer datasets than one coverage indicator per level and for one-sided coverage:

    ``pit_counts``
        How many targets' truths fall in each of :data:`PIT_BINS` equal bins of their probability
        integral transform among the raw draws (the share of draws below the truth, ties counted
        half): the rank statistic of simulation-based calibration, uniform when the posterior is
        calibrated. Central coverage at the default levels and one-sided coverage at any multiple
        of ``1 / PIT_BINS`` are sums of bins (:func:`pit_coverage`).
    ``z_sq_mean``
        Mean over the targets of the squared standardized error ``((truth - mean) / sd)^2`` of the
        raw draws (targets with ``sd = 0`` left out; ``None`` when all are): about 1 when the
        posterior's spread is right, its square root the factor an interval is too narrow by.

    ``model_version``
        The :data:`~pytyche.bcf.fingerprint.MODEL_VERSION` of the fit (``None`` on records that
        predate model versions): an artifact is fitted from records of one model.

    Every field after ``task_id`` is optional: records written before they existed still load.
    """

    replication: int
    round_idx: int
    family: str
    nominal: float
    coverage: float
    n_targets: int
    mean_width: float
    metric: str
    n_treatments: int
    pooling: str
    sample_size: int
    template: str = ""
    task_id: str = ""
    num_trees_mu: int | None = None
    num_trees_tau: int | None = None
    num_burnin: int | None = None
    num_draws: int | None = None
    num_chains: int | None = None
    calibrated: bool = False
    converters: tuple[int, ...] | None = None
    min_converters: int | None = None
    posterior_sd_rel: float | None = None
    effect_to_noise: float | None = None
    pit_counts: tuple[int, ...] | None = None
    z_sq_mean: float | None = None
    model_version: int | None = None

    def __post_init__(self) -> None:
        w = "CalibrationRecord"
        if self.family not in QUANTITY_FAMILIES:
            raise invalid("family", w, f"one of {', '.join(QUANTITY_FAMILIES)}", self.family)
        for name in ("nominal", "coverage"):
            v = float(getattr(self, name))
            if not (0.0 <= v <= 1.0):
                raise invalid(name, w, "in [0, 1]", v)
        if self.n_targets < 1:
            raise invalid("n_targets", w, ">= 1", self.n_targets)
        if not math.isfinite(float(self.mean_width)) or self.mean_width < 0:
            raise invalid("mean_width", w, "a finite number >= 0", self.mean_width)
        if self.pooling not in ("joint", "independent", "none"):
            raise invalid("pooling", w, "'joint', 'independent' or 'none'", self.pooling)
        for name in ("num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains", "min_converters", "model_version"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
                raise invalid(name, w, "None or an int >= 0", v)
        if not isinstance(self.calibrated, (bool, np.bool_)):
            raise invalid("calibrated", w, "a bool", self.calibrated)
        if self.converters is not None:
            conv = tuple(int(c) for c in self.converters)
            if len(conv) != self.n_treatments or any(c < 0 for c in conv):
                raise invalid("converters", w, f"None or {self.n_treatments} counts >= 0", self.converters)
            object.__setattr__(self, "converters", conv)
        for name in ("posterior_sd_rel", "effect_to_noise", "z_sq_mean"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(float(v)) or float(v) < 0):
                raise invalid(name, w, "None or a finite number >= 0", v)
        if self.pit_counts is not None:
            counts = tuple(int(c) for c in self.pit_counts)
            if len(counts) != PIT_BINS or any(c < 0 for c in counts) or sum(counts) != self.n_targets:
                raise invalid("pit_counts", w, f"None or {PIT_BINS} counts >= 0 summing to n_targets ({self.n_targets})", self.pit_counts, show=False)
            object.__setattr__(self, "pit_counts", counts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("converters", "pit_counts"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out


#: the CalibrationRecord fields older records may lack (filled with their defaults)
OPTIONAL_RECORD_FIELDS = (
    "template", "task_id", "num_trees_mu", "num_trees_tau", "num_burnin", "num_draws", "num_chains",
    "calibrated", "converters", "min_converters", "posterior_sd_rel", "effect_to_noise", "pit_counts", "z_sq_mean",
    "model_version",
)

