"""Capability getters the posterior result classes delegate to (docs/concepts.md, *Layers* and *Stability*).

``has_credible_segments(threshold)`` is ``True`` iff ``posterior.analyze().segments`` holds a
credible segment: the tree has at least two leaves and one of them has ``stability_score >=
threshold`` (:func:`~pytyche.contracts.results.credible_flags`, the rule's one home; a one-leaf
tree is the whole population and discovers nothing). Those segments are the leaves of the policy
tree with the default settings (``max_depth=3``, ``min_segment_share=0.10``, ``n_bootstrap=50``,
``bootstrap_seed=0``) and the stability score of ``stability_method`` (default ``"posterior"``),
so only that tree and its bootstrap are computed, not the recommendations. The scores are
remembered per (posterior object, method) in a module-level table keyed by ``id`` and guarded by
a weak reference (nothing is stored on the frozen posterior; an entry disappears with its
posterior), so the getter is cheap after the first call and after ``posterior.analyze()`` with
the default tree settings.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from pytyche._validation import check_float

from pytyche.contracts.results import (  # noqa: F401 (CREDIBLE_STABILITY, is_credible, credible_segments re-exported)
    CREDIBLE_STABILITY,
    DEFAULT_STABILITY_METHOD,
    credible_flags,
    credible_segments,
    is_credible,
)

_SCORES: dict[tuple[int, str], tuple[weakref.ref, tuple[float, ...]]] = {}
_LOCK = threading.Lock()


def remember_stability(posterior: Any, scores: Sequence[float], method: str = DEFAULT_STABILITY_METHOD) -> None:
    """Record the default-settings stability scores of ``posterior`` under ``method`` (internal)."""
    key = (id(posterior), method)

    def _drop(ref: weakref.ref, key: tuple[int, str] = key) -> None:
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


def _recall(posterior: Any, method: str = DEFAULT_STABILITY_METHOD) -> tuple[float, ...] | None:
    with _LOCK:
        entry = _SCORES.get((id(posterior), method))
    if entry is not None and entry[0]() is posterior:
        return entry[1]
    return None


def has_credible_segments(
    posterior: Any, threshold: float = CREDIBLE_STABILITY, stability_method: str = DEFAULT_STABILITY_METHOD
) -> bool:
    """Whether the default policy tree of ``posterior`` has a credible segment.

    Parameters
    ----------
    posterior
        A fit result (``pt.fit``).
    threshold
        Stability score in ``[0, 1]`` a segment must reach (default ``CREDIBLE_STABILITY`` = 0.80, docs/concepts.md).
    stability_method
        ``"posterior"`` (default, docs/concepts.md's *Stability*) or ``"means"`` (see
        :func:`pytyche.analysis.policy_tree.fit_policy_tree`).

    Returns
    -------
    bool
        ``True`` iff the tree has at least two leaves and some segment has ``stability_score >=
        threshold`` (NaN scores never count; a one-leaf tree never has a credible segment).

    Raises
    ------
    ValueError, TypeError
        On a threshold outside ``[0, 1]``, an unknown ``stability_method`` or a posterior without
        the fit-result interface.
    """
    from pytyche.analysis.policy_tree import _fit, check_stability_method

    th = check_float(threshold, "threshold", "has_credible_segments", low=0.0, high=1.0)
    method = check_stability_method(stability_method, "has_credible_segments")
    scores = _recall(posterior, method)
    if scores is None:
        scores = tuple(s.stability_score for s in _fit(posterior, stability_method=method).result.segments)
        remember_stability(posterior, scores, method)
    return any(credible_flags(scores, th))
