"""``UncalibratedWarning`` and the once-per-owner helper that emits it.

``pytyche.experiment.sequential`` re-exports :class:`UncalibratedWarning`; a
``SequentialExperiment`` running uncalibrated calls :func:`warn_uncalibrated_once` with itself as
the owner on its first ``advance()``, so each instance warns exactly once whatever the active
warnings filters are.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any

__all__ = ["UncalibratedWarning", "warn_uncalibrated_once"]

_DEFAULT_MESSAGE = (
    "Running uncalibrated: posterior intervals are raw BCF quantile intervals, whose coverage moves "
    "with the regime and the sample size (at the default config, nominal 90% per-visitor CATE "
    "intervals covered about 95% at 2k-5k visitors and as little as 79% for a binary outcome at "
    "20k; small toy MCMC settings cover less). Supply an SBC-fitted Calibration "
    "(pt.Calibration.from_sweep(...)) to correct coverage where its evidence supports it, or "
    "pt.Calibration.skip() to state that uncalibrated intervals are intended."
)


class UncalibratedWarning(UserWarning):
    """Emitted once per owner (e.g. per ``SequentialExperiment``) running uncalibrated.

    Supply an SBC-fitted :class:`~pytyche.calibrate.Calibration` artifact to correct interval
    coverage and silence the warning.
    """


_lock = threading.Lock()
_warned: set[int] = set()


def _forget(key: int) -> None:
    with _lock:
        _warned.discard(key)


def warn_uncalibrated_once(owner: Any, message: str | None = None, *, stacklevel: int = 2) -> bool:
    """Emit :class:`UncalibratedWarning` the first time it is called for ``owner``.

    Parameters
    ----------
    owner
        The object the warning belongs to (an experiment, a fit driver...). Tracked by identity:
        the record is dropped when a weak-referenceable owner is garbage collected; an owner that
        cannot be weakly referenced is remembered for the life of the process.
    message
        Warning text; a default explaining the remedy is used when ``None``.
    stacklevel
        Passed to :func:`warnings.warn` (2 points at the caller of this helper's caller's line).

    Returns
    -------
    bool
        ``True`` when this call emitted the warning, ``False`` when ``owner`` had already warned.
    """
    if owner is None:
        raise ValueError("The 'owner' parameter of warn_uncalibrated_once must be an object, not None.")
    key = id(owner)
    with _lock:
        if key in _warned:
            return False
        _warned.add(key)
    try:
        weakref.finalize(owner, _forget, key)
    except TypeError:  # not weak-referenceable: keep the id for the process's life
        pass
    warnings.warn(message or _DEFAULT_MESSAGE, UncalibratedWarning, stacklevel=stacklevel + 1)
    return True
