"""Registry of the DGP templates: ``make_generator(name, **params)`` and ``list_templates()``."""

from __future__ import annotations

import importlib
from typing import Any

from pytyche._validation import invalid
from dgps.base import SimGenerator

__all__ = ["TEMPLATE_ROLES", "make_generator", "list_templates", "template_doc", "templates_for"]

#: template name -> module under ``dgps.templates`` (each has ``make(**params)``)
_TEMPLATES: dict[str, str] = {
    "clustered_realistic": "dgps.templates.clustered_realistic",
    "null_effect": "dgps.templates.null_effect",
    "harmful_arm": "dgps.templates.harmful_arm",
    "binary_conversion": "dgps.templates.binary_conversion",
    "continuous_metric": "dgps.templates.continuous_metric",
    "many_arms": "dgps.templates.many_arms",
    "multi_arm_conversion": "dgps.templates.multi_arm_conversion",
    "drifting": "dgps.templates.drifting",
    "smooth_numeric": "dgps.templates.smooth_numeric",
    "opposing": "dgps.templates.opposing",
    "rare_segment": "dgps.templates.rare_segment",
    "interaction": "dgps.templates.interaction",
    "sparse_signal": "dgps.templates.sparse_signal",
    "structured_revenue": "dgps.templates.structured_revenue",
    "structured_conversion": "dgps.templates.structured_conversion",
    "structured_continuous": "dgps.templates.structured_continuous",
}

#: Which templates calibration artifacts are *fitted* on and which are *held out* to validate them.
#: Held out means held out: an artifact's fitting sweep never uses a "validate" template, and its
#: ``provenance["validation"]`` is measured only on "validate" templates of its regime. The
#: "benchmark" templates (null and many-arm stress cases) feed neither.
#:
#: Each regime's fit population spans the effect structures that move coverage (no effect, uniform
#: and harmful shifts, sparse segments, broad smooth effects, effects crossing zero, opposing
#: conversion and basket effects) through the ``structured_*`` templates (``dgps.structured``),
#: and each regime keeps two hand-built held-out templates (issue 24). The artifacts shipped
#: before these roles (``*_v1``) were fitted on ``drifting``, ``harmful_arm``,
#: ``binary_conversion`` and ``continuous_metric``, which are held out from the refit on.
#:
#: =====================  ==========  =======  ============================================
#: template               family      K        role
#: =====================  ==========  =======  ============================================
#: structured_revenue     hurdle      2, 3     fit (revenue_per_visitor, K = 2 and K = 3)
#: clustered_realistic    hurdle      3        fit (revenue_per_visitor, K = 3)
#: rare_segment           hurdle      3        validate (revenue_per_visitor, K = 3)
#: harmful_arm            hurdle      3        validate (revenue_per_visitor, K = 3)
#: smooth_numeric         hurdle      2        fit (revenue_per_visitor, K = 2)
#: opposing               hurdle      2        validate (revenue_per_visitor, K = 2)
#: drifting               hurdle      2        validate (revenue_per_visitor, K = 2)
#: structured_conversion  binary      2        fit (conversion_rate, K = 2)
#: interaction            binary      2        validate (conversion_rate, K = 2)
#: binary_conversion      binary      2        validate (conversion_rate, K = 2)
#: structured_continuous  continuous  2        fit (continuous, K = 2)
#: sparse_signal          continuous  2        validate (continuous, K = 2)
#: continuous_metric      continuous  2        validate (continuous, K = 2)
#: null_effect            hurdle      2+       benchmark (decision honesty on null data)
#: many_arms              hurdle      5        benchmark (regret with many arms)
#: multi_arm_conversion   binary      3+       benchmark (A/B/N conversion; no K >= 3 artifact yet)
#: =====================  ==========  =======  ============================================
TEMPLATE_ROLES: dict[str, str] = {
    "structured_revenue": "fit",
    "structured_conversion": "fit",
    "structured_continuous": "fit",
    "clustered_realistic": "fit",
    "smooth_numeric": "fit",
    "rare_segment": "validate",
    "harmful_arm": "validate",
    "opposing": "validate",
    "drifting": "validate",
    "interaction": "validate",
    "binary_conversion": "validate",
    "sparse_signal": "validate",
    "continuous_metric": "validate",
    "null_effect": "benchmark",
    "many_arms": "benchmark",
    "multi_arm_conversion": "benchmark",
}


def templates_for(role: str) -> list[str]:
    """Registered templates with ``role`` ("fit", "validate" or "benchmark"), sorted."""
    if role not in ("fit", "validate", "benchmark"):
        raise invalid("role", "templates_for", "'fit', 'validate' or 'benchmark'", role)
    return sorted(t for t, r in TEMPLATE_ROLES.items() if r == role)


def list_templates() -> list[str]:
    """Names of the registered templates, sorted."""
    return sorted(_TEMPLATES)


def _module(name: Any, where: str) -> Any:
    if not isinstance(name, str) or name not in _TEMPLATES:
        raise ValueError(
            f"The 'name' parameter of {where} must be one of {', '.join(repr(n) for n in list_templates())}. "
            f"Got {name!r} instead."
        )
    return importlib.import_module(_TEMPLATES[name])


def make_generator(name: str, **params: Any) -> SimGenerator:
    """Build the sim-mode generator of template ``name``.

    Parameters
    ----------
    name
        A registered template (see :func:`list_templates`).
    **params
        The template's ``make`` parameters: always ``seed``, ``n_visitors``, ``experiment_id``,
        plus the template's own (see its module docstring).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the registered ones) or a bad parameter value.
    TypeError
        For a parameter the template does not take.
    """
    return _module(name, "make_generator").make(**params)


def template_doc(name: str) -> str:
    """The template's documented truth (its module docstring)."""
    return _module(name, "template_doc").__doc__ or ""
