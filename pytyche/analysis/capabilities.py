"""Capability getters the posterior result classes delegate to (glossary: capability methods).

``has_credible_segments(threshold)`` is ``True`` iff at least one segment of
``posterior.analyze().segments`` has ``stability_score >= threshold``. Those segments are the
leaves of the policy tree with the default settings (``max_depth=3``, ``min_segment_share=0.10``,
``n_bootstrap=50``, ``bootstrap_seed=0``), so only that tree and its bootstrap are computed, not
the recommendations. The scores are remembered per posterior object in a module-level table
keyed by ``id`` and guarded by a weak reference (nothing is stored on the frozen posterior; an
entry disappears with its posterior), so the getter is cheap after the first call and after
``posterior.analyze()`` with the default tree settings.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from pytyche._validation import check_float

#: the glossary's credibility cutoff of a stability score
CREDIBLE_STABILITY = 0.80

_SCORES: dict[int, tuple[weakref.ref, tuple[float, ...]]] = {}
_LOCK = threading.Lock()


def remember_stability(posterior: Any, scores: Sequence[float]) -> None:
    """Record the default-settings stability scores of ``posterior`` (internal)."""
    key = id(posterior)

    def _drop(ref: weakref.ref, key: int = key) -> None:
        with _LOCK:
            entry = _SCORES.get(key)
            if entry is not None and entry[0] is ref:
                del _SCORES[key]

    try:
        ref = weakref.ref(posterior, _drop)
    except TypeError:  # an object without weak-reference support is simply not cached
        return
    with _LOCK:
        _SCORES[key] = (ref, tuple(float(s) for s in scores))


def _recall(posterior: Any) -> tuple[float, ...] | None:
    with _LOCK:
        entry = _SCORES.get(id(posterior))
    if entry is not None and entry[0]() is posterior:
        return entry[1]
    return None


def has_credible_segments(posterior: Any, threshold: float = CREDIBLE_STABILITY) -> bool:
    """Whether any default policy-tree segment of ``posterior`` is credibly stable.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``).
    threshold
        Stability score in ``[0, 1]`` a segment must reach (default 0.80, the glossary's cutoff).

    Returns
    -------
    bool
        ``True`` iff some segment has ``stability_score >= threshold`` (NaN scores never count).

    Raises
    ------
    ValueError, TypeError
        On a threshold outside ``[0, 1]`` or a posterior without the fit-result interface.
    """
    th = check_float(threshold, "threshold", "has_credible_segments", low=0.0, high=1.0)
    scores = _recall(posterior)
    if scores is None:
        from pytyche.analysis.policy_tree import _fit

        scores = tuple(s.stability_score for s in _fit(posterior).result.segments)
        remember_stability(posterior, scores)
    return any(not math.isnan(s) and s >= th for s in scores)
