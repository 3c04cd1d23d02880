"""pytyche's persistent JAX compilation cache (pytyche.bcf.jax_cache) and the compile counter.

The end-to-end check runs two fresh interpreters that share a temporary cache directory: the
second one fits the same shape and must compile nothing. The suite's own JAX cache variables
(``JAX_COMPILATION_CACHE_DIR`` ..., set in conftest) are removed from those children's
environment, so pytyche's default decides there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from pytyche.bcf import jax_cache

ROOT = Path(__file__).resolve().parents[1]

_FIT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from _data import continuous_dgp
import jax
import pytyche as pt
from pytyche.bcf import GPUBCFConfig
planted = continuous_dgp(60, seed=0)
cfg = GPUBCFConfig(num_trees_mu=4, num_trees_tau=2, num_burnin=4, num_draws=4, num_chains=1, chunk_size=4, bucket_min=64)
post = pt.fit(planted.observed, config=cfg)
print("RESULT " + json.dumps({{"n_compilations": post.fit_info["n_compilations"],
    "cache_dir": jax.config.jax_compilation_cache_dir,
    "ate": float(post.ate_samples.mean())}}))
"""


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "PYTYCHE_JAX_CACHE", "XDG_CACHE_HOME"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
    return env


def _run(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_a_new_process_fitting_a_compiled_shape_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    code = _FIT.format(tests=str(ROOT / "tests"))
    first = _run(code, _child_env(PYTYCHE_JAX_CACHE=str(cache)))
    assert first["cache_dir"] == str(cache) and first["n_compilations"] > 0
    assert any(cache.iterdir())  # programs were written
    second = _run(code, _child_env(PYTYCHE_JAX_CACHE=str(cache)))
    assert second["n_compilations"] == 0
    assert second["ate"] == first["ate"]  # the cached program computes the same draws


_PROBE = r"""
import json, sys
import pytyche
assert "jax" not in sys.modules  # import pytyche never imports jax
import pytyche.bcf.sampler  # pytyche's first use of JAX
import jax
print("RESULT " + json.dumps({"dir": jax.config.jax_compilation_cache_dir,
    "min_time": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def test_default_directory_follows_xdg_cache_home_and_is_set_lazily(tmp_path):
    res = _run(_PROBE, _child_env(XDG_CACHE_HOME=str(tmp_path)))
    assert res["dir"] == str(tmp_path / "pytyche" / "jax") and res["min_time"] == 0.0
    assert (tmp_path / "pytyche" / "jax").is_dir()


def test_the_environment_variable_turns_the_cache_off(tmp_path):
    res = _run(_PROBE, _child_env(PYTYCHE_JAX_CACHE="off", XDG_CACHE_HOME=str(tmp_path)))
    assert res == {"dir": None, "min_time": 1.0}
    assert not (tmp_path / "pytyche").exists()


def test_a_users_own_jax_cache_configuration_wins(tmp_path):
    mine = tmp_path / "mine"
    res = _run(_PROBE, _child_env(JAX_COMPILATION_CACHE_DIR=str(mine), XDG_CACHE_HOME=str(tmp_path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2.5"))
    assert res == {"dir": str(mine), "min_time": 2.5}
    assert not (tmp_path / "pytyche").exists()


# ---- in-process: the resolution rules (jax config saved and restored around each test) ---------


@pytest.fixture
def jax_settings():
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs", "jax_enable_compilation_cache")
    saved = {n: getattr(jax.config, n) for n in names}
    state = (jax_cache._done, jax_cache._active)
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    yield
    for n, v in saved.items():
        jax.config.update(n, v)
    jax_cache._done, jax_cache._active = state


def test_resolve_cache_dir_reads_the_environment_variable(tmp_path, monkeypatch):
    if sys.platform.startswith("linux"):  # platformdirs reads XDG_CACHE_HOME from the process
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert jax_cache.resolve_cache_dir({}) == tmp_path / "pytyche" / "jax"
        assert jax_cache.resolve_cache_dir({"PYTYCHE_JAX_CACHE": "  "}) == tmp_path / "pytyche" / "jax"
    assert jax_cache.resolve_cache_dir({"PYTYCHE_JAX_CACHE": str(tmp_path / "x")}) == tmp_path / "x"
    assert jax_cache.resolve_cache_dir({"PYTYCHE_JAX_CACHE": "~/c"}) == Path.home() / "c"
    for off in ("off", "OFF", "0", "false", "none", "Disabled"):
        assert jax_cache.resolve_cache_dir({"PYTYCHE_JAX_CACHE": off}) is None


def test_enable_sets_the_directory_once_and_respects_off_and_user_settings(tmp_path, jax_settings):
    target = tmp_path / "c"
    assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": str(target)}, force=True) == target
    assert jax.config.jax_compilation_cache_dir == str(target) and target.is_dir()
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    # idempotent: a later call without force keeps the first decision
    assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": "off"}) == target
    # a directory already configured (by the user) is left alone
    assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": str(tmp_path / "other")}, force=True) is None
    assert jax.config.jax_compilation_cache_dir == str(target)

    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": "off"}, force=True) is None
    assert jax.config.jax_compilation_cache_dir is None
    assert jax_cache.enable_persistent_cache({"JAX_COMPILATION_CACHE_DIR": "/elsewhere", "PYTYCHE_JAX_CACHE": str(target)}, force=True) is None
    assert jax.config.jax_compilation_cache_dir is None
    # a user's own minimum compile time is kept
    env = {"PYTYCHE_JAX_CACHE": str(target), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "3"}
    assert jax_cache.enable_persistent_cache(env, force=True) == target
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0
    # the user switched JAX's cache off: nothing set
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_enable_compilation_cache", False)
    assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": str(target)}, force=True) is None
    assert jax.config.jax_compilation_cache_dir is None


def test_an_unwritable_directory_warns_and_turns_the_cache_off(tmp_path, jax_settings):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="PYTYCHE_JAX_CACHE"):
        assert jax_cache.enable_persistent_cache({"PYTYCHE_JAX_CACHE": str(blocker / "sub")}, force=True) is None
    assert jax.config.jax_compilation_cache_dir is None


def test_in_the_suite_the_conftest_cache_is_kept():
    import pytyche.bcf.sampler  # noqa: F401  (pytyche's first use of JAX in this process)

    assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]


def test_equinox_checks_are_off_only_while_the_wrapped_call_runs(monkeypatch):
    from equinox import _errors

    from pytyche.bcf._eqx_checks import without_runtime_error_checks

    assert _errors.EQX_ON_ERROR in ("raise", "breakpoint", "nan", "off")  # the private name we rely on
    seen = []
    probe = without_runtime_error_checks(lambda: seen.append(_errors.EQX_ON_ERROR))
    monkeypatch.setattr(_errors, "EQX_ON_ERROR", "raise")
    probe()
    assert seen == ["off"] and _errors.EQX_ON_ERROR == "raise"
    monkeypatch.setattr(_errors, "EQX_ON_ERROR", "nan")  # a user's own mode is kept
    probe()
    assert seen == ["off", "nan"] and _errors.EQX_ON_ERROR == "nan"
    failing = without_runtime_error_checks(lambda: 1 / 0)
    monkeypatch.setattr(_errors, "EQX_ON_ERROR", "raise")
    with pytest.raises(ZeroDivisionError):
        failing()
    assert _errors.EQX_ON_ERROR == "raise"
