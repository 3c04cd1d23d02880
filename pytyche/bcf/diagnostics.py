"""MCMC convergence diagnostics: rank-normalised split R-hat and bulk ESS.

Vectorised numpy implementations of the formulas of Vehtari, Gelman, Simpson, Carpenter and
Bürkner (2021), "Rank-normalization, folding, and localization: an improved R-hat for assessing
convergence of MCMC", Bayesian Analysis 16(2), the definitions Stan and ArviZ use:

- chains are split in halves (the middle draw dropped when the count is odd), so a trend within
  one chain shows up as between-chain disagreement;
- draws are rank-normalised: ``z = Phi^{-1}((r - 3/8) / (S + 1/4))`` with average ranks ``r``
  over all ``S`` pooled draws;
- ``R-hat = sqrt(var_plus / W)`` (Gelman-Rubin), ``var_plus = (N-1)/N W + B/N``, taken as the
  maximum of the bulk (rank-normalised) and tail (rank-normalised folded ``|x - median|``)
  values;
- bulk ESS = ``M N / tau`` on the rank-normalised split chains, ``tau = -1 + 2 sum_k P_k`` over
  Geyer's initial monotone sequence of paired autocorrelations ``P_k = rho_2k + rho_2k+1``, with
  ``rho_t = 1 - (W - mean_m acov_m(t)) / var_plus`` and autocovariances by FFT, truncated and
  capped (``tau >= 1 / log10(M N)``) exactly as Stan's and ArviZ's loops do.

Every function takes ``draws`` shaped ``(chains, draws, *params)`` and returns ``params``-shaped
arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = ["ess_bulk", "rank_normalize", "rhat", "split_chains"]


def _as_chains(draws: np.ndarray, name: str = "draws") -> np.ndarray:
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"The '{name}' parameter must be shaped (chains, draws, *params). Got shape {x.shape} instead.")
    if x.shape[1] < 4:
        raise ValueError(f"The '{name}' parameter must hold at least 4 draws per chain. Got {x.shape[1]} instead.")
    return x


def split_chains(draws: np.ndarray) -> np.ndarray:
    """Split each chain in two halves: ``(M, N, ...) -> (2M, N // 2, ...)``."""
    x = _as_chains(draws)
    half = x.shape[1] // 2
    first = x[:, :half]
    second = x[:, x.shape[1] - half :]
    return np.concatenate([first, second], axis=0)


def rank_normalize(draws: np.ndarray) -> np.ndarray:
    """Rank-normalise over all chains and draws jointly, per parameter."""
    x = np.asarray(draws, dtype=np.float64)
    m, n = x.shape[:2]
    flat = x.reshape(m * n, -1)
    ranks = rankdata(flat, axis=0, method="average")
    z = ndtri((ranks - 0.375) / (m * n + 0.25))
    return z.reshape(x.shape)


def _rhat_basic(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    chain_mean = x.mean(axis=1)
    chain_var = x.var(axis=1, ddof=1)
    between = n * chain_mean.var(axis=0, ddof=1)
    within = chain_var.mean(axis=0)
    var_plus = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(var_plus / within)
    # constant draws: identical everywhere -> 1; constant within chains but different -> inf
    out = np.where(within > 0, out, np.where(between > 0, np.inf, 1.0))
    return out


def rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (max of bulk and folded-tail), per parameter.

    Values near 1 indicate the chains agree; above 1.01 (strict) or 1.1 (lenient) flags a
    problem.
    """
    x = split_chains(draws)
    bulk = _rhat_basic(rank_normalize(x))
    folded = np.abs(x - np.median(x.reshape(-1, *x.shape[2:]), axis=0))
    tail = _rhat_basic(rank_normalize(folded))
    return np.maximum(bulk, tail)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased (divide by N) autocovariance of each chain along axis 1, by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n]
    return acov / n


def _ess(x: np.ndarray) -> np.ndarray:
    m, n = x.shape[:2]
    acov = _autocov(x)  # (M, N, ...)
    chain_var = acov[:, 0] * n / (n - 1)
    within = chain_var.mean(axis=0)
    var_plus = within * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within - acov.mean(axis=0)) / var_plus  # (N, ...)
    rho[0] = 1.0
    # Geyer's initial monotone sequence exactly as Stan / ArviZ run it: pair sums
    # P_k = rho_2k + rho_2k+1 are taken while the previous one is positive; the kept pairs
    # 0..K-1 are made non-increasing; the even term rho_2K of the first non-positive pair
    # is added when positive
    k_max = 1 + max(0, -(-(n - 2) // 2) - 1)  # pairs k >= 1 computed while 2k - 1 < n - 3
    pairs = rho[0 : 2 * k_max : 2] + rho[1 : 2 * k_max : 2]  # (k_max, ...)
    stops = pairs[1:] <= 0
    stopped = stops.any(axis=0)
    sentinel = np.ones((1,) + stops.shape[1:], dtype=bool)
    first = np.argmax(np.concatenate([stops, sentinel], axis=0), axis=0)
    k_stop = np.where(stopped, first + 1, k_max - 1)
    tail = np.take_along_axis(rho, (2 * k_stop)[None], axis=0)[0]
    tail = np.where(stopped, np.maximum(tail, 0.0), tail)
    keep = np.arange(k_max).reshape((-1,) + (1,) * (pairs.ndim - 1)) < k_stop
    monotone = np.minimum.accumulate(np.where(keep, pairs, np.inf), axis=0)
    tau = -1.0 + 2.0 * np.sum(np.where(keep, monotone, 0.0), axis=0) + tail
    tau = np.where(pairs[0] > 0, tau, 0.0)  # rho_1 <= -1: antithetic, capped below
    total = m * n
    tau = np.maximum(tau, 1.0 / np.log10(total))
    ess = total / tau
    return np.where(np.isfinite(var_plus) & (var_plus > 0), ess, np.nan)


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size (rank-normalised split chains), per parameter."""
    return _ess(rank_normalize(split_chains(draws)))
