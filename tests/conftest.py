"""Test configuration shared by every test module.

- JAX runs on the CPU with a persistent compilation cache in ``.jax_cache/`` so compiled MCMC
  programs are shared across test modules and across runs.
- Ray runs without auth and with a small object store (tests start and stop their own cluster,
  ``tests/_ray.py``); ``mlflow_uri`` is a fresh MLflow store per test module.
"""

from __future__ import annotations

import os
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_object_store_memory", str(200 * 1024 * 1024))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# pytyche never reads this; it only keeps MLflow from writing into the working tree by accident.
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{_ROOT / '.pytest_mlflow.db'}")


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
