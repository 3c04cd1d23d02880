"""Count XLA compilations in this process: one pair of `jax.monitoring` listeners for all callers.

JAX records the backend-compile duration event around every executable it obtains, also when the
persistent compilation cache supplies it (then it records a cache-hit event inside that span too).
So two counts are kept, from the moment the listeners are installed:

- `backend_compiles`: every executable obtained (compiled or loaded from the persistent cache),
  what a sweep worker reports per task (``TaskResult.compiles``);
- `compilation_count`: executables JAX really compiled, ``backend_compiles`` minus cache hits, what
  a fit reports (``BCFDraws.n_compilations``, ``posterior.fit_info["n_compilations"]``).

This module imports JAX only when the listeners are installed, so a sweep worker can import it
before it decides which platform JAX may use.
"""

from __future__ import annotations

import threading

__all__ = ["BACKEND_COMPILE_EVENT", "CACHE_HIT_EVENT", "backend_compiles", "compilation_count", "install_compile_counter"]

#: the jax.monitoring duration event recorded once per executable JAX obtains
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
#: the jax.monitoring event recorded when the persistent cache supplies an executable
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"

_lock = threading.Lock()
_backend_compiles = 0
_cache_hits = 0
_installed = False


def _on_duration(event: str, duration: float, **kwargs: object) -> None:  # noqa: ARG001
    global _backend_compiles
    if event == BACKEND_COMPILE_EVENT:
        with _lock:
            _backend_compiles += 1


def _on_event(event: str, **kwargs: object) -> None:  # noqa: ARG001
    global _cache_hits
    if event == CACHE_HIT_EVENT:
        with _lock:
            _cache_hits += 1


def install_compile_counter() -> None:
    """Register the process-wide listeners (idempotent); earlier compilations are not counted."""
    global _installed
    with _lock:
        if _installed:
            return
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)
        _installed = True


def backend_compiles() -> int:
    """Executables JAX obtained (compiled or loaded from the persistent cache) since installation."""
    install_compile_counter()
    with _lock:
        return _backend_compiles


def compilation_count() -> int:
    """XLA compilations since installation: executables compiled, not loaded from the persistent cache.

    Installs the listeners on first call; compilations before that are not counted.
    """
    install_compile_counter()
    with _lock:
        return _backend_compiles - _cache_hits
