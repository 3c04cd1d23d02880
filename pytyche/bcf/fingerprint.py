"""The model a posterior comes from: a version constant and the options that change its draws.

A calibration artifact corrects the intervals of one model. When the sampler, its priors, or the
data a sequential round fits on change, the same data give other draws, and an artifact fitted on
the old model's coverage no longer describes the new one. :data:`MODEL_VERSION` names the model;
it is bumped with every change that alters the draws for given data and seed, and
``tests/test_model_fingerprint.py`` fails when the draws of a fixed small fit change while it is
not bumped. :func:`model_fingerprint` adds the options that select among a version's variants.

History (:data:`MODEL_HISTORY`):

1. The BCF with issue 16's options (per-arm tau forests on every row, contrast coding).
2. The tau forests fit their own arm's rows (2026-12-01): ``min_points_per_leaf`` counts them.
3. A sequential round fits with each round's design propensity as the prognostic forest's
   propensity covariate, not the routing cell's probability (2026-12-06): at a cold start the
   fit has no propensity covariate at all.

Records and artifacts written before fingerprints carry none; by their dates they describe
versions 1 or 2.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODEL_HISTORY", "MODEL_OPTIONS", "MODEL_VERSION", "model_fingerprint"]

#: the current model (see the module docstring); bump it with any change that alters the draws
MODEL_VERSION = 3

#: what each version changed
MODEL_HISTORY = {
    1: "BCF with per-arm tau forests on every row, contrast coding (issue 16's options)",
    2: "tau forests on their own arm's rows (min_points_per_leaf counts them), 2026-12-01",
    3: "sequential rounds fit on the design propensity, not the routing cell's probability, 2026-12-06",
}

#: the GPUBCFConfig options that select a variant of the model (they change the intervals)
MODEL_OPTIONS = ("tau_intercept", "tau_coding", "tau_leaf_sd")


def model_fingerprint(config: Any = None) -> dict[str, Any]:
    """``{"version": MODEL_VERSION, "tau_own_rows": ..., <MODEL_OPTIONS>: ...}`` of a fit.

    ``config`` is a :class:`~pytyche.bcf.config.GPUBCFConfig` or a mapping of its fields (a
    posterior's ``config``); absent options take the GPUBCFConfig defaults. ``tau_own_rows`` is
    the sampler's tau path (own rows under contrast coding, the default).
    """
    from pytyche.bcf import sampler
    from pytyche.bcf.config import GPUBCFConfig

    default = GPUBCFConfig()
    out: dict[str, Any] = {"version": MODEL_VERSION}
    for name in MODEL_OPTIONS:
        if config is None:
            value = getattr(default, name)
        elif isinstance(config, dict):
            value = config.get(name, getattr(default, name))
        else:
            value = getattr(config, name, getattr(default, name))
        out[name] = value
    out["tau_own_rows"] = bool(sampler._TAU_OWN_ROWS and out["tau_coding"] == "contrast")
    return out
