"""A fresh local Ray cluster for one test module (the module-scoped ``ray_cluster`` fixtures).

Importable by any test module (``from tests._ray import local_ray``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_ray(module: str, **init: Any) -> Iterator[Any]:
    """Restart Ray locally with a 200 MiB object store and no dashboard or driver logs; ``init``
    adds ``ray.init`` arguments (``num_cpus``, ...). The test module named ``module`` is pickled
    by value, so workers can run the runners it defines; shut down and unregistered on exit."""
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[module])
    if ray.is_initialized():
        ray.shutdown()
    ray.init(**init, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[module])
