"""Compile equinox's runtime error checks out of a jitted function, so its program can be cached.

bartz's ``init`` guards its inputs with :func:`equinox.error_if` (``p_nonterminal`` in (0, 1), a
diagonal error-prior rate, unit binary error precision, not too many split-less predictors).
Under ``jax.jit`` those inputs are traced, so each check becomes a host callback in the
compiled program, and JAX never writes a program with host callbacks to its persistent
compilation cache: every new process would recompile the kernel's initialisation.

pytyche builds all four inputs itself, valid by construction (:mod:`pytyche.bcf.sampler`
validates the config and data first), so the checks can never fire on its calls.
:func:`without_runtime_error_checks` traces the wrapped function with equinox's error mode set to
``"off"``; a user who chose another mode than the default ``"raise"`` (``EQX_ON_ERROR=nan`` or
``breakpoint``) keeps it. Equinox reads the mode from ``equinox._errors.EQX_ON_ERROR`` at trace
time; it has no public per-call switch for checks inside a third-party function.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["without_runtime_error_checks"]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()


def without_runtime_error_checks(fn: F) -> F:
    """``fn`` called (and so traced, on a first call) with equinox's error checks off."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from equinox import _errors

        with _lock:
            saved = _errors.EQX_ON_ERROR
            if saved == "raise":
                _errors.EQX_ON_ERROR = "off"
            try:
                return fn(*args, **kwargs)
            finally:
                _errors.EQX_ON_ERROR = saved

    return wrapper  # type: ignore[return-value]
