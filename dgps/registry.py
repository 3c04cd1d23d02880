"""Registry of the DGP templates: ``make_generator(name, **params)`` and ``list_templates()``."""

from __future__ import annotations

import importlib
from typing import Any

from dgps.base import SimGenerator

__all__ = ["make_generator", "list_templates", "template_doc"]

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
}


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
