"""Jit on first use: `lazy_jit` wraps a function with `jax.jit` when it is first called.

Importing pytyche builds no JAX object: a kernel module defines pure functions (the caller
decides whether to jit them, as in BlackJAX), and the drivers that run them compiled create
their `jax.jit` wrapper once, on first call, and then keep it for the life of the process, so
its compilation cache persists across calls exactly as a module-level ``jax.jit`` would.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax

__all__ = ['lazy_jit']


class _LazyJit:
    def __init__(self, fn: Callable, wrap: Callable[[Callable], Callable] | None, jit_kwargs: dict) -> None:
        self._fn = fn
        self._wrap = wrap
        self._jit_kwargs = jit_kwargs
        self._jitted: Callable | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def jitted(self) -> Callable:
        """The `jax.jit` of the function (with ``wrap`` applied), created on the first call."""
        if self._jitted is None:
            with self._lock:
                if self._jitted is None:
                    jitted = jax.jit(self._fn, **self._jit_kwargs)
                    self._jitted = jitted if self._wrap is None else self._wrap(jitted)
        return self._jitted

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted()(*args, **kwargs)


def lazy_jit(
    fn: Callable | None = None,
    /,
    *,
    wrap: Callable[[Callable], Callable] | None = None,
    **jit_kwargs: Any,
) -> Any:
    """``jax.jit(fn, **jit_kwargs)``, built on the first call rather than at definition.

    Usable as ``lazy_jit(fn, ...)`` or as a decorator ``@lazy_jit(...)``. ``wrap``, if given,
    wraps the jitted function once (e.g. `pytyche.bcf._eqx_checks.without_runtime_error_checks`).
    """
    if fn is None:
        return lambda f: _LazyJit(f, wrap, jit_kwargs)
    return _LazyJit(fn, wrap, jit_kwargs)
