"""Where a lower layer's convenience methods find the higher layer they delegate to.

The layers of pytyche run ``contracts`` -> ``bcf`` -> ``calibrate``/``compare`` -> ``analysis``
-> ``experiment``: a module imports only from its own layer or the ones before it
(``tests/test_layering.py`` walks the import graph to check it). A fit result is a ``bcf``
object, yet the seeds give it ``posterior.analyze()``, ``posterior.fit_policy_tree()`` and
``posterior.has_credible_segments()``, which are analysis. Those methods do not import the
analysis layer; they ask `delegate` for the function by name, and the table below, the one place
that knows both layers, says which module holds it. The module is imported at call time, so
``import pytyche`` stays light and a fit never loads the analysis code it does not use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["delegate"]

#: function name -> the module that defines it
_DELEGATES: dict[str, str] = {
    "has_credible_segments": "pytyche.analysis.capabilities",
    "fit_policy_tree": "pytyche.analysis.policy_tree",
    "analyze_posterior": "pytyche.analysis.analyze",
}


def delegate(name: str) -> Callable[..., Any]:
    """The higher-layer function ``name`` (a key of the table), its module imported on demand."""
    return getattr(importlib.import_module(_DELEGATES[name]), name)
