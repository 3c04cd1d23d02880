"""pytyche's persistent JAX compilation cache: on by default, per user, never over a user's own.

Compiling the BCF sampler takes tens of seconds per shape (outcome kind, arm count, row bucket,
trees, chains); without a persistent cache every new Python process pays it again. The first time
pytyche uses JAX (importing :mod:`pytyche.bcf.sampler`, which a fit does; ``import pytyche``
never imports JAX) :func:`enable_persistent_cache` points JAX's compilation cache at a per-user
directory, so a new process that fits a shape some earlier process compiled loads the program
from disk and compiles nothing (``fit_info["n_compilations"] == 0``).

Where the cache lives
---------------------
``PYTYCHE_JAX_CACHE`` unset or empty
    the per-user cache directory, ``platformdirs.user_cache_path("pytyche") / "jax"``
    (``$XDG_CACHE_HOME/pytyche/jax``, by default ``~/.cache/pytyche/jax``, on Linux).
``PYTYCHE_JAX_CACHE=/some/path``
    that directory (``~`` expanded; created if missing).
``PYTYCHE_JAX_CACHE=off``
    no cache from pytyche (also ``0``, ``false``, ``no``, ``none``, ``disable``, ``disabled``;
    case-insensitive).

A user's own configuration always wins: when ``JAX_COMPILATION_CACHE_DIR`` is set in the
environment, ``jax_compilation_cache_dir`` is already set in ``jax.config``, or the cache is
switched off with ``jax_enable_compilation_cache=False``, pytyche changes nothing. When pytyche
does set the directory it also lowers ``jax_persistent_cache_min_compile_time_secs`` to 0 (unless
the user set it, in the environment or in ``jax.config``), because JAX's default of 1 s would
leave the sampler's small helper programs out of the cache and a new process would still
compile them.

JAX reads the cache setting at its first compilation in a process: a process that compiled
something with JAX before its first pytyche fit runs without the persistent cache.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_VAR", "OFF_VALUES", "default_cache_dir", "enable_persistent_cache", "resolve_cache_dir"]

#: the environment variable that moves pytyche's JAX cache or turns it off
ENV_VAR = "PYTYCHE_JAX_CACHE"
#: values of :data:`ENV_VAR` (lower-cased, stripped) that turn the cache off
OFF_VALUES = frozenset({"off", "0", "false", "no", "none", "disable", "disabled"})

_JAX_DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
_JAX_MIN_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
_JAX_MIN_TIME_DEFAULT = 1.0  # jax's own default of jax_persistent_cache_min_compile_time_secs

_lock = threading.Lock()
_done = False
_active: Path | None = None


def default_cache_dir() -> Path:
    """The per-user cache directory: ``platformdirs.user_cache_path("pytyche") / "jax"``."""
    import platformdirs

    return Path(platformdirs.user_cache_path("pytyche", appauthor=False)) / "jax"


def resolve_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory pytyche would use for the cache under ``environ``, or ``None`` when off.

    Reads :data:`ENV_VAR` only (see the module docstring); it does not look at JAX's own
    settings, which :func:`enable_persistent_cache` checks.

    Parameters
    ----------
    environ
        The environment to read :data:`ENV_VAR` from; default ``os.environ``. The default
        directory itself comes from :func:`default_cache_dir` (platformdirs reads the process
        environment, e.g. ``XDG_CACHE_HOME``).
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR, "").strip()
    if not raw:
        return default_cache_dir()
    if raw.lower() in OFF_VALUES:
        return None
    return Path(raw).expanduser()


def _user_configured(jax_config: object, env: Mapping[str, str]) -> bool:
    if env.get(_JAX_DIR_ENV, "").strip():
        return True
    if getattr(jax_config, "jax_compilation_cache_dir", None):
        return True
    return not getattr(jax_config, "jax_enable_compilation_cache", True)


def enable_persistent_cache(environ: Mapping[str, str] | None = None, *, force: bool = False) -> Path | None:
    """Point JAX's persistent compilation cache at pytyche's directory, once per process.

    Idempotent: the first call decides, later calls return the same answer (``force=True``
    decides again, for tests). Never raises: a directory that cannot be created turns the cache
    off with a warning.

    Parameters
    ----------
    environ
        The environment to read; default ``os.environ``.
    force
        Decide again even if an earlier call already did.

    Returns
    -------
    pathlib.Path or None
        The directory pytyche set, or ``None`` when it set nothing (turned off, or the user
        configured JAX's cache themselves).
    """
    global _done, _active
    with _lock:
        if _done and not force:
            return _active
        _done, _active = True, None
        import jax

        env = os.environ if environ is None else environ
        if _user_configured(jax.config, env):
            return None
        path = resolve_cache_dir(env)
        if path is None:
            return None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            warnings.warn(
                f"pytyche could not create its JAX compilation cache directory {str(path)!r} ({exc}); "
                f"running without a persistent cache. Set {ENV_VAR} to a writable directory, or to 'off'.",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        jax.config.update("jax_compilation_cache_dir", str(path))
        user_min_time = env.get(_JAX_MIN_TIME_ENV, "").strip() or (
            float(jax.config.jax_persistent_cache_min_compile_time_secs) != _JAX_MIN_TIME_DEFAULT
        )
        if not user_min_time:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        _active = path
        return path
